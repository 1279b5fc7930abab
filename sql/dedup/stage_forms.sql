-- The batch's forms not in the warehouse yet (stage_new_prompts: prompt_clusters rows, numbered from
-- getvariable('first_seq') in order of first appearance; each its own cluster until the batch's edges join it)
-- and their LSH buckets (stage_bands: prompt_bands rows). Reads batch_prompts, batch_forms, batch_texts and
-- batch_bands (prefpipe.dedup.cluster_prompts).
CREATE OR REPLACE TEMP TABLE stage_new_prompts AS
WITH firsts AS (  -- each new form's first ord, numbered (its text and prompt id joined after: no string aggregated)
    SELECT prompt_key, ord, getvariable('first_seq') + row_number() OVER (ORDER BY ord) - 1 AS prompt_seq
    FROM (SELECT prompt_key, min(ord) AS ord FROM batch_forms ANTI JOIN prompt_clusters USING (prompt_key)
          GROUP BY prompt_key))
SELECT n.prompt_key, n.prompt_seq, f.normalised, n.prompt_key AS cluster_id, p.prompt_id AS split_key, n.ord
FROM firsts n JOIN batch_texts f USING (ord) JOIN batch_prompts p USING (ord);

CREATE OR REPLACE TEMP TABLE stage_bands AS
SELECT n.prompt_seq, b.band, b.bucket FROM stage_new_prompts n JOIN batch_bands b USING (ord);

-- What is not read again goes now: the buckets of every form (16 rows a prompt) and the forms' texts take DuckDB's
-- buffer pool (PREFPIPE_MEMORY_LIMIT) from the joins that follow (at 1M prompts, half a gigabyte).
DROP TABLE batch_bands;
DROP TABLE batch_texts;
