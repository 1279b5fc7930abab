-- A model's row (the one under its id was deleted first: delete_model.sql).
INSERT INTO models (model_id, path, base, loss, hyperparameters, batch_ids, pairs, data_hash, metrics, reference,
                    excluded, kind, judge)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
