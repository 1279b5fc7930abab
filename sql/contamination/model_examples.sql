-- The examples of a set's version ($1, $2) that match what a model trained on (trained_keys: prompt forms,
-- trained_ids: annotation ids, of its snapshot's training split).
SELECT DISTINCT example_id FROM contamination
WHERE evalset = $1 AND version = $2
  AND (prompt_key IN (SELECT prompt_key FROM trained_keys) OR annotation_id IN (SELECT annotation_id FROM trained_ids))
ORDER BY 1
