-- The LSH buckets of the batch's new forms (stage_bands: prompt_bands rows), from those of its forms (batch_buckets:
-- first, buckets, one per band; prefpipe.dedup).
CREATE OR REPLACE TEMP TABLE stage_bands AS
SELECT n.prompt_seq, (generate_subscripts(b.buckets, 1) - 1)::UTINYINT AS band, unnest(b.buckets) AS bucket
FROM stage_new_prompts n JOIN batch_buckets b USING (first);
