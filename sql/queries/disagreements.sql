-- The examples two models disagree on (latest runs): one gets credit, the other does not. Edit the names.
WITH pair AS (SELECT 'a' AS first_model, 'b' AS second_model),
latest AS (SELECT s.* FROM eval_scores s JOIN run_order o USING (model_id, evalset, run_date, run_id)
           WHERE o.recency = 1)
SELECT x.evalset, x.subset, x.example_id, x.credit AS first_credit, y.credit AS second_credit,
       round(x.score_gap, 4) AS first_score_gap, round(y.score_gap, 4) AS second_score_gap
FROM pair
JOIN latest x ON x.model_id = pair.first_model
JOIN latest y ON y.model_id = pair.second_model AND y.evalset = x.evalset AND y.example_id = x.example_id
WHERE x.credit <> y.credit
ORDER BY x.evalset, x.subset, x.example_id;
