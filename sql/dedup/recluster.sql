-- Clustering a whole warehouse once (prefpipe.dedup.recluster), after cluster_prompts staged every
-- prompt of `annotations`: store the forms and buckets, count the pairs whose split changes (moved, pairs:
-- the last statement's row), then give each annotation its form and its cluster's split.
INSERT INTO prompt_clusters
SELECT n.prompt_key, n.prompt_seq, n.normalised, n.cluster_id, n.split_key, arg_min(a.batch_id, a.annotation_seq)
FROM stage_new_prompts n JOIN stage_prompt_keys k USING (prompt_key) JOIN annotations a ON a.prompt::VARCHAR = k.prompt
GROUP BY ALL;

INSERT INTO prompt_bands SELECT * FROM stage_bands;

CREATE OR REPLACE TEMP TABLE recluster_moves AS
SELECT count(*) FILTER (a.split <> split_of(k.split_key)) AS moved, count(*) AS pairs
FROM comparisons JOIN annotations a USING (annotation_seq) JOIN stage_prompt_keys k ON a.prompt::VARCHAR = k.prompt;

UPDATE annotations SET prompt_key = k.prompt_key, split = split_of(k.split_key)
FROM stage_prompt_keys k WHERE annotations.prompt::VARCHAR = k.prompt;
