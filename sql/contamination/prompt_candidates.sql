-- The forms (match_forms) that share an LSH bucket (match_bands) with an example's prompt (eval_bands:
-- example, band, bucket); prefpipe.contamination keeps those whose true Jaccard reaches the threshold.
SELECT e.example, f.prompt_key, f.normalised, f.batch_id
FROM (SELECT DISTINCT e.example, b.prompt_seq FROM eval_bands e JOIN match_bands b USING (band, bucket)) e
JOIN match_forms f USING (prompt_seq) ORDER BY ALL
