-- The $1 clusters of the most prompts.
SELECT cluster_id, prompts, annotations, splits, example FROM clusters WHERE prompts > 1
ORDER BY prompts DESC, cluster_id LIMIT $1
