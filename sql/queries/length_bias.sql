-- Length bias per subset (latest runs): the accuracy of "always pick the longer answer" beside each
-- model's accuracy, and how often the model itself prefers the longer answer.
WITH latest AS (SELECT s.* FROM eval_scores s JOIN run_order o USING (model_id, evalset, run_date, run_id)
                WHERE o.recency = 1)
SELECT evalset, subset, model_id, count(*) AS examples,
       round(avg((chosen_chars > rejected_chars)::INTEGER), 4) AS longer_is_chosen,
       round(avg(credit), 4) AS model_accuracy,
       round(avg(((score_gap > 0) = (chosen_chars > rejected_chars))::INTEGER), 4) AS model_prefers_longer
FROM latest
GROUP BY ALL
ORDER BY evalset, subset, model_id;
