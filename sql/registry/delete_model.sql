-- The row of model $1, before it is replaced.
DELETE FROM models WHERE model_id = $1
