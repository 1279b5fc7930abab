-- A combination's row (the one under its name was deleted first: delete_combo.sql).
INSERT INTO combos (name, models, weights, transform, "references", quantile, quantiles, method, min_references,
                    too_few, reference_lm, samples, seed)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
