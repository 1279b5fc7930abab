-- Clustering a whole warehouse once (prefpipe.dedup.recluster), after cluster_prompts staged every
-- prompt of `annotations`: store the forms and buckets, count the pairs whose split changes (moved, pairs:
-- the last statement's row), then give each annotation its form and its cluster's split.
INSERT INTO prompt_clusters  -- the batch of the form's first annotation: where its first prompt first appears
SELECT n.prompt_key, n.prompt_seq, n.normalised, n.cluster_id, n.split_key, a.batch_id
FROM stage_new_prompts n JOIN batch_prompts p USING (first) JOIN annotations a ON a.annotation_seq = p.first;

INSERT INTO prompt_bands SELECT * FROM stage_bands;

CREATE OR REPLACE TEMP TABLE recluster_moves AS
SELECT count(*) FILTER (a.split <> split_of(k.split_key)) AS moved, count(*) AS pairs
FROM comparisons JOIN annotations a USING (annotation_seq) JOIN stage_entry_keys k ON k.entry = a.annotation_seq;

UPDATE annotations SET prompt_key = k.prompt_key, split = split_of(k.split_key)
FROM stage_entry_keys k WHERE annotations.annotation_seq = k.entry;
