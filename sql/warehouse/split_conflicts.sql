-- The $1 newest merges of clusters in different splits.
SELECT * FROM split_conflicts ORDER BY merged_at DESC LIMIT $1
