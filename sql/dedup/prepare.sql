-- The prompts to cluster, numbered in order of first appearance (batch_prompts, from cluster_source), and
-- the empty tables that prefpipe.dedup fills chunk by chunk with their forms and LSH buckets.
CREATE OR REPLACE TEMP TABLE batch_prompts AS
SELECT row_number() OVER (ORDER BY first) AS ord, prompt, prompt_id, first, entries
FROM cluster_source;  -- no two prompts share a first

CREATE OR REPLACE TEMP TABLE batch_forms (ord BIGINT, prompt_key VARCHAR);

CREATE OR REPLACE TEMP TABLE batch_texts (ord BIGINT, normalised VARCHAR);

CREATE OR REPLACE TEMP TABLE batch_bands (ord BIGINT, band UTINYINT, bucket UBIGINT);

SET VARIABLE first_seq = (SELECT coalesce(max(prompt_seq), 0) + 1 FROM prompt_clusters);
