-- The registered combinations (all, or the one named $1; only the active ones with $2), read by
-- prefpipe.config.Combination.from_row.
SELECT * EXCLUDE (created_at, active)
FROM combos
WHERE ($1 IS NULL OR name = $1) AND (active OR NOT $2)
ORDER BY name
