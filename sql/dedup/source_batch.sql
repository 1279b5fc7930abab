-- What the ingest clusters: the validated batch's distinct prompts (JSON text), each with the prompt id and
-- entry it first appears with, and all its entries (prefpipe.dedup.cluster_prompts reads cluster_source).
CREATE OR REPLACE TEMP VIEW cluster_source AS
SELECT prompt::VARCHAR AS prompt, arg_min(prompt_id, entry) AS prompt_id, min(entry) AS first, list(entry) AS entries
FROM valid_annotations GROUP BY 1;
