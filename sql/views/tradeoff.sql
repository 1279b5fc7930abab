-- Analyst views over the probability–quality trade-off analyses (prefpipe/tradeoff.py,
-- analysis=tradeoff/run_date=/run_id=/): getvariable('tradeoff_sample_files') and
-- getvariable('tradeoff_corpus_files'), the files of every whole run. tradeoff_samples: a row per sampled
-- response (kind 'model') or per outcome of the toy (kind 'toy'); tradeoff_corpora: a row per sampling setting
-- (or per resampled corpus of the toy), with its means and the string- and corpus-level correlations.
CREATE OR REPLACE VIEW tradeoff_samples AS
SELECT * FROM read_parquet(getvariable('tradeoff_sample_files'), hive_partitioning = true, union_by_name = true);

CREATE OR REPLACE VIEW tradeoff_corpora AS
SELECT * FROM read_parquet(getvariable('tradeoff_corpus_files'), hive_partitioning = true, union_by_name = true);
