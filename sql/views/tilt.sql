-- Analyst views over the reward-tilt analyses (prefpipe/tilt_tables.py, analysis=tilt/run_date=/run_id=/):
-- getvariable('tilt_prompt_files') and getvariable('tilt_frontier_files'), the files of every whole run.
-- tilt_prompts: a row per prompt and β (kind 'tilt') or n (kind 'best_of_n'); tilt_frontier: the same
-- averaged over the prompts, the points of the reward–KL frontier (frontier.png beside them).
CREATE OR REPLACE VIEW tilt_prompts AS
SELECT * FROM read_parquet(getvariable('tilt_prompt_files'), hive_partitioning = true, union_by_name = true);

CREATE OR REPLACE VIEW tilt_frontier AS
SELECT * FROM read_parquet(getvariable('tilt_frontier_files'), hive_partitioning = true, union_by_name = true);
