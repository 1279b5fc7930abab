-- The edges of a batch: a new form and any other form (stored or new) that share an LSH bucket in one band and whose
-- true Jaccard over word $1-grams reaches $2 (sql/dedup/forms.sql), as the seqs of each one's cluster (a stored form:
-- its cluster's oldest form; a new form: itself).
WITH candidates AS (  -- each pair once, the older first (stored forms are numbered before new ones); the stored
    -- buckets joined alone, not in a union with the new ones (a weekly batch against 16M stored rows: 0.27 -> 0.18 s),
    -- on the bucket, the band compared after: a join on one key column is one DuckDB pushes a Bloom filter of the
    -- batch's buckets into the stored ones' scan for (this query, weekly: 0.22 -> 0.13 s). Not `o.band = n.band`,
    -- which the optimiser makes a second key again. The band is needed: a short form has one bucket in every band.
    SELECT DISTINCT o.prompt_seq AS a, n.prompt_seq AS b
    FROM stage_bands n JOIN prompt_bands o ON o.bucket = n.bucket AND xor(o.band, n.band) = 0
    UNION
    SELECT o.prompt_seq, n.prompt_seq FROM stage_bands n JOIN stage_bands o USING (band, bucket)
    WHERE o.prompt_seq < n.prompt_seq
), forms AS (
    SELECT p.prompt_seq, p.normalised, c.prompt_seq AS cluster_seq
    FROM prompt_clusters p JOIN prompt_clusters c ON c.prompt_key = p.cluster_id
    WHERE p.prompt_seq IN (SELECT a FROM candidates)
    UNION ALL SELECT prompt_seq, normalised, prompt_seq FROM stage_new_prompts)
SELECT fa.cluster_seq, fb.cluster_seq
FROM candidates JOIN forms fa ON fa.prompt_seq = a JOIN forms fb ON fb.prompt_seq = b
WHERE jaccard(fa.normalised, fb.normalised, $1) >= $2
