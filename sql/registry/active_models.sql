-- (model id, folder, reference folder of a DPO policy or NULL, a judge's settings as JSON or NULL) of every
-- active model.
SELECT model_id, path, reference, judge::VARCHAR FROM models WHERE active ORDER BY model_id
