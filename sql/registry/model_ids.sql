-- Every registered model id.
SELECT model_id FROM models
