-- A normalised copy ($1, at $2, its record $3) of the model $4: that model's training record, metrics and
-- reference (a positive affine map changes no comparison).
INSERT INTO models (model_id, path, base, loss, hyperparameters, batch_ids, pairs, data_hash, metrics, reference, kind)
SELECT $1, $2, base, loss, $3, batch_ids, pairs, data_hash, metrics, reference, kind FROM models WHERE model_id = $4
