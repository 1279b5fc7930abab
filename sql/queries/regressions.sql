-- Every subset, section or score of the latest night that dropped more than the threshold against the
-- previous night (the view `regressions`, sql/views/eval.sql), in a stable order.
SELECT * FROM regressions ORDER BY model_id, evalset, level, name;
