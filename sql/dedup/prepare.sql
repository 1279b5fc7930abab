-- The prompts to cluster (batch_prompts, from cluster_source), each known by where it first appears (`first`: no two
-- prompts share one), whose forms and LSH buckets prefpipe.dedup makes chunk by chunk.
CREATE OR REPLACE TEMP TABLE batch_prompts AS SELECT prompt, prompt_id, first, entries FROM cluster_source;

SET VARIABLE first_seq = (SELECT coalesce(max(prompt_seq), 0) + 1 FROM prompt_clusters);
