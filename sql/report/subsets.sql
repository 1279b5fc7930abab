-- The morning report: each subset of each model's latest run on each set, its accuracy then and the previous
-- night, and the accuracy of always picking the longer answer (level length_bias), which the model should beat.
SELECT n.model_id, n.evalset, n.name AS subset, n.examples, n.value AS accuracy, p.value AS previous,
       b.value AS longer_answer
FROM latest_runs r
JOIN eval_summary n ON n.model_id = r.model_id AND n.evalset = r.evalset AND n.run_id = r.latest_run_id
LEFT JOIN eval_summary p ON p.model_id = r.model_id AND p.evalset = r.evalset AND p.run_id = r.previous_run_id
     AND p.level = 'subset' AND p.name = n.name
LEFT JOIN eval_summary b ON b.model_id = r.model_id AND b.evalset = r.evalset AND b.run_id = r.latest_run_id
     AND b.level = 'length_bias' AND b.name = n.name
WHERE n.level = 'subset'
ORDER BY n.model_id, n.evalset, n.name;
