-- What a re-clustering clusters: every distinct prompt of the warehouse (JSON text), each with the prompt id
-- and annotation it first appears with, and all its annotations (prefpipe.dedup.cluster_prompts reads cluster_source).
CREATE OR REPLACE TEMP VIEW cluster_source AS
SELECT prompt::VARCHAR AS prompt, arg_min(prompt_id, annotation_seq) AS prompt_id, min(annotation_seq) AS first,
       list(annotation_seq) AS entries
FROM annotations GROUP BY 1;
