-- The dedup settings the warehouse's clusters were made with (no row: never clustered), and how many of its
-- annotations have no form yet (loaded before prefpipe 0.4) of how many.
SELECT s.ngram, s.permutations, s.bands, s.threshold, s.signature,
       -- a filter, not count(*) FILTER: row groups without a NULL are skipped by their statistics
       (SELECT count(*) FROM annotations WHERE prompt_key IS NULL) AS unclustered,
       (SELECT count(*) FROM annotations) AS annotations
FROM (SELECT 1) LEFT JOIN cluster_settings s ON true
