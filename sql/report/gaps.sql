-- The morning report: the score gap (best chosen − best rejected) of every example of each model's latest run
-- on each set, for its calibration figure.
SELECT e.model_id, e.evalset, e.score_gap
FROM latest_runs r
JOIN eval_scores e ON e.model_id = r.model_id AND e.evalset = r.evalset AND e.run_id = r.latest_run_id
WHERE e.score_gap IS NOT NULL
ORDER BY e.model_id, e.evalset;
