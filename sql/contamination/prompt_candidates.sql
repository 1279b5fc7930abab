-- The forms (match_forms) that share an LSH bucket (match_bands) with an example's prompt (eval_bands:
-- example, band, bucket); prefpipe.contamination keeps those whose true Jaccard reaches the threshold.
SELECT e.example, f.prompt_key, f.normalised, f.batch_id
FROM (SELECT DISTINCT e.example, b.prompt_seq  -- the band compared after the bucket (sql/dedup/candidates.sql)
      FROM eval_bands e JOIN match_bands b ON b.bucket = e.bucket AND xor(b.band, e.band) = 0) e
JOIN match_forms f USING (prompt_seq) ORDER BY ALL
