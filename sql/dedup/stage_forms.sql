-- The batch's forms not in the warehouse yet (stage_new_prompts: prompt_clusters rows, numbered from
-- getvariable('first_seq') in order of first appearance; each its own cluster until the batch's edges join it)
-- and their LSH buckets (stage_bands: prompt_bands rows). Reads batch_prompts, batch_forms, batch_bands
-- (prefpipe.dedup.cluster_prompts).
CREATE OR REPLACE TEMP TABLE stage_new_prompts AS
SELECT prompt_key, getvariable('first_seq') + row_number() OVER (ORDER BY ord) - 1 AS prompt_seq, normalised,
       prompt_key AS cluster_id, split_key, ord
FROM (SELECT f.prompt_key, arg_min(f.normalised, f.ord) AS normalised, min(f.ord) AS ord,
             arg_min(p.prompt_id, f.ord) AS split_key
      FROM batch_forms f JOIN batch_prompts p USING (ord) ANTI JOIN prompt_clusters c USING (prompt_key)
      GROUP BY f.prompt_key);

CREATE OR REPLACE TEMP TABLE stage_bands AS
SELECT n.prompt_seq, b.band, b.bucket FROM stage_new_prompts n JOIN batch_bands b USING (ord);
