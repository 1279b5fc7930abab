-- (model id, folder, reference folder of a DPO policy or NULL) of every active model.
SELECT model_id, path, reference FROM models WHERE active ORDER BY model_id
