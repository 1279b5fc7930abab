-- Per subset: the latest accuracy of two models and the difference. Edit the two names.
WITH pair AS (SELECT 'a' AS first_model, 'b' AS second_model)
SELECT l1.evalset, l1.name AS subset, round(l1.value, 4) AS first, round(l2.value, 4) AS second,
       round(l2.value - l1.value, 4) AS delta
FROM pair
JOIN leaderboard l1 ON l1.model_id = pair.first_model AND l1.level = 'subset'
JOIN leaderboard l2 ON l2.model_id = pair.second_model AND l2.level = 'subset'
     AND l2.evalset = l1.evalset AND l2.name = l1.name
ORDER BY abs(l2.value - l1.value) DESC, l1.evalset, subset;
