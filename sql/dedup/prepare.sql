-- The prompts to cluster, numbered in order of first appearance (batch_prompts, from cluster_source), whose forms
-- and LSH buckets prefpipe.dedup makes chunk by chunk.
CREATE OR REPLACE TEMP TABLE batch_prompts AS
SELECT row_number() OVER (ORDER BY first) AS ord, prompt, prompt_id, first, entries
FROM cluster_source;  -- no two prompts share a first

SET VARIABLE first_seq = (SELECT coalesce(max(prompt_seq), 0) + 1 FROM prompt_clusters);
