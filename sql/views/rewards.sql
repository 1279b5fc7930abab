-- Analyst views over the rewards runs (prefpipe/rewards.py): getvariable('candidate_files') and
-- getvariable('reward_files'), the files of every whole run. Hive partitions: run_date, run_id.
CREATE OR REPLACE VIEW reward_candidates AS
SELECT * FROM read_parquet(getvariable('candidate_files'), hive_partitioning = true, union_by_name = true);

-- One row per candidate and model; joins reward_candidates on (run_id, prompt_id, response_id).
CREATE OR REPLACE VIEW rewards AS
SELECT * FROM read_parquet(getvariable('reward_files'), hive_partitioning = true, union_by_name = true);
