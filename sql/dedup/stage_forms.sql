-- The batch's forms (batch_texts: first, normalised; prefpipe.dedup) by their key, the md5 of the form's UTF-8 bytes
-- (batch_forms: first, prompt_key; prefpipe.dedup.prompt_key), and those not in the warehouse yet (stage_new_prompts:
-- prompt_clusters rows, numbered from getvariable('first_seq') in order of first appearance; each its own cluster
-- until the batch's edges join it).
CREATE OR REPLACE TEMP TABLE batch_forms AS SELECT first, left(md5(normalised), 16) AS prompt_key FROM batch_texts;

CREATE OR REPLACE TEMP TABLE stage_new_prompts AS
WITH firsts AS (  -- where each new form first appears, numbered (its text and prompt id joined after: no string
    -- aggregated)
    SELECT prompt_key, first, getvariable('first_seq') + row_number() OVER (ORDER BY first) - 1 AS prompt_seq
    FROM (SELECT prompt_key, min(first) AS first FROM batch_forms ANTI JOIN prompt_clusters USING (prompt_key)
          GROUP BY prompt_key))
SELECT n.prompt_key, n.prompt_seq, f.normalised, n.prompt_key AS cluster_id, p.prompt_id AS split_key, n.first
FROM firsts n JOIN batch_texts f USING (first) JOIN batch_prompts p USING (first);
