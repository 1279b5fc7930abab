-- Analyst views over the results lake (schemas/results.md). getvariable('score_files') and
-- getvariable('summary_files'): the files of the lake's run folders (prefpipe.lake.result_runs, which
-- leaves out anything else found there); getvariable('regression_threshold'): how far a value may drop
-- before it counts as a regression. Hive partitions: evalset, model, run_date, run_id.
-- Results written before prefpipe 0.2 call the score gap (best chosen - best rejected) `margin`, the word
-- that means a rank gap in `pairs`; both are read as score_gap, and their diagnostics renamed to match.
-- model_kind (classifier, dpo, judge, combination) is written from 0.9: NULL in older runs.
CREATE OR REPLACE VIEW eval_scores AS
SELECT COLUMNS(lambda c: c NOT IN ('margin', 'score_gap')),
       coalesce(*COLUMNS(lambda c: c IN ('score_gap', 'margin'))) AS score_gap
FROM (FROM read_parquet(getvariable('score_files'), hive_partitioning = true, union_by_name = true)
      UNION ALL BY NAME SELECT NULL::VARCHAR AS model_kind WHERE false);

CREATE OR REPLACE VIEW eval_summary AS
SELECT * REPLACE (CASE WHEN level = 'diagnostic' THEN replace(name, 'margin_', 'score_gap_') ELSE name END AS name)
FROM (FROM read_parquet(getvariable('summary_files'), hive_partitioning = true, union_by_name = true)
      UNION ALL BY NAME SELECT NULL::VARCHAR AS model_kind WHERE false);

-- Every run of a model on a set, newest first (recency 1 = the latest).
CREATE OR REPLACE VIEW run_order AS
SELECT model_id, evalset, run_date, run_id, code_version,
       row_number() OVER (PARTITION BY model_id, evalset ORDER BY run_date DESC, run_id DESC) AS recency
FROM (SELECT DISTINCT model_id, evalset, run_date, run_id, code_version FROM eval_summary);

-- Per run: how many of the set's examples the model's training data matched, and its headline (the score, or
-- for a set of custom subsets their accuracy) over the others (prefpipe.contamination); NULL where not known
-- (a model trained elsewhere, results before 0.4).
CREATE OR REPLACE VIEW run_contamination AS
SELECT model_id, evalset, run_id,
       max(value) FILTER (name = 'contaminated_examples')::BIGINT AS contaminated_examples,
       max(value) FILTER (name = 'contaminated_share') AS contaminated_share,
       coalesce(max(value) FILTER (level = 'decontaminated' AND name = 'score'),
                max(value) FILTER (level = 'decontaminated' AND name = 'custom')) AS decontaminated_score
FROM eval_summary WHERE level IN ('contamination', 'decontaminated')
GROUP BY ALL;

-- The latest run per model and set: its subsets, sections and scores.
CREATE OR REPLACE VIEW leaderboard AS
SELECT s.model_id, s.model_kind, s.evalset, s.run_date, s.run_id, s.level, s.name, s.value, s.examples,
       c.contaminated_examples, c.contaminated_share
FROM eval_summary s JOIN run_order o USING (model_id, evalset, run_date, run_id)
LEFT JOIN run_contamination c USING (model_id, evalset, run_id)
WHERE o.recency = 1;

CREATE OR REPLACE VIEW history AS
SELECT s.model_id, s.model_kind, s.evalset, s.run_date, s.run_id, s.level, s.name, s.value, s.examples,
       c.contaminated_examples, c.contaminated_share
FROM eval_summary s LEFT JOIN run_contamination c USING (model_id, evalset, run_id);

-- Per model and set: its latest run, and the latest run of an earlier date (the previous night; NULL when none).
CREATE OR REPLACE VIEW latest_runs AS
WITH latest AS (SELECT model_id, evalset, run_date, run_id FROM run_order WHERE recency = 1),
previous AS (
    SELECT o.model_id, o.evalset, o.run_date, o.run_id FROM run_order o JOIN latest l USING (model_id, evalset)
    WHERE o.run_date < l.run_date
    QUALIFY row_number() OVER (PARTITION BY o.model_id, o.evalset ORDER BY o.run_date DESC, o.run_id DESC) = 1)
SELECT l.model_id, l.evalset, l.run_date AS latest_date, l.run_id AS latest_run_id,
       p.run_date AS previous_date, p.run_id AS previous_run_id
FROM latest l LEFT JOIN previous p USING (model_id, evalset);

-- The latest run against the previous night: the accuracies and scores (not the diagnostics, where lower is
-- not worse) that dropped more than the threshold.
CREATE OR REPLACE VIEW regressions AS
SELECT n.model_id, n.evalset, n.level, n.name, p.value AS previous, n.value AS latest, n.value - p.value AS change,
       r.previous_date, r.latest_date
FROM latest_runs r
JOIN eval_summary n ON n.model_id = r.model_id AND n.evalset = r.evalset AND n.run_id = r.latest_run_id
JOIN eval_summary p ON p.model_id = r.model_id AND p.evalset = r.evalset AND p.run_id = r.previous_run_id
     AND p.level = n.level AND p.name = n.name
WHERE n.level IN ('subset', 'section', 'score') AND n.value < p.value - getvariable('regression_threshold');
