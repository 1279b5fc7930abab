-- Candidate pairs of a batch: a new form and any other form (stored or new) that share an LSH bucket, with
-- both normalised forms (for the true Jaccard) and the seq of each one's cluster (a stored form: its cluster's
-- oldest form; a new form: itself).
WITH bands AS (SELECT prompt_seq, band, bucket FROM prompt_bands UNION ALL SELECT * FROM stage_bands),
candidates AS (
    SELECT DISTINCT least(n.prompt_seq, o.prompt_seq) AS a, greatest(n.prompt_seq, o.prompt_seq) AS b
    FROM stage_bands n JOIN bands o USING (band, bucket) WHERE n.prompt_seq <> o.prompt_seq
), forms AS (
    SELECT p.prompt_seq, p.normalised, c.prompt_seq AS cluster_seq
    FROM prompt_clusters p JOIN prompt_clusters c ON c.prompt_key = p.cluster_id
    WHERE p.prompt_seq IN (SELECT a FROM candidates)
    UNION ALL SELECT prompt_seq, normalised, prompt_seq FROM stage_new_prompts)
SELECT fa.normalised, fb.normalised, fa.cluster_seq, fb.cluster_seq
FROM candidates JOIN forms fa ON fa.prompt_seq = a JOIN forms fb ON fb.prompt_seq = b
