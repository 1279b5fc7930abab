-- The batch's forms (batch_texts: ord, normalised; batch_buckets: ord, buckets, one per band; prefpipe.dedup) by
-- their key, the md5 of the form's UTF-8 bytes (batch_forms: ord, prompt_key; prefpipe.dedup.prompt_key); those not
-- in the warehouse yet (stage_new_prompts: prompt_clusters rows, numbered from getvariable('first_seq') in order of
-- first appearance; each its own cluster until the batch's edges join it) and their LSH buckets (stage_bands:
-- prompt_bands rows).
CREATE OR REPLACE TEMP TABLE batch_forms AS SELECT ord, left(md5(normalised), 16) AS prompt_key FROM batch_texts;

CREATE OR REPLACE TEMP TABLE stage_new_prompts AS
WITH firsts AS (  -- each new form's first ord, numbered (its text and prompt id joined after: no string aggregated)
    SELECT prompt_key, ord, getvariable('first_seq') + row_number() OVER (ORDER BY ord) - 1 AS prompt_seq
    FROM (SELECT prompt_key, min(ord) AS ord FROM batch_forms ANTI JOIN prompt_clusters USING (prompt_key)
          GROUP BY prompt_key))
SELECT n.prompt_key, n.prompt_seq, f.normalised, n.prompt_key AS cluster_id, p.prompt_id AS split_key, n.ord
FROM firsts n JOIN batch_texts f USING (ord) JOIN batch_prompts p USING (ord);

CREATE OR REPLACE TEMP TABLE stage_bands AS
SELECT n.prompt_seq, (generate_subscripts(b.buckets, 1) - 1)::UTINYINT AS band, unnest(b.buckets) AS bucket
FROM stage_new_prompts n JOIN batch_buckets b USING (ord);
