-- What the id $1 names: whether a model has it, whether a combination has it, and the model's path, loss and
-- training pairs (NULL when no model has it).
SELECT count(m.model_id) > 0 AS model, (SELECT count(*) FROM combos WHERE name = $1) > 0 AS combo,
       any_value(m.path) AS path, any_value(m.loss) AS loss, any_value(m.pairs) AS pairs
FROM (SELECT 1) LEFT JOIN models m ON m.model_id = $1
