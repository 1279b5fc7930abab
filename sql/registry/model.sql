-- The registry row of model $1.
SELECT * FROM models WHERE model_id = $1
