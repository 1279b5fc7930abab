-- The near-duplicate clusters in one row: how many, over how many prompts, how many are shared by more than one
-- prompt (and their prompts), and the split conflicts recorded.
SELECT count(*) AS clusters, sum(prompts) AS prompts, count(*) FILTER (prompts > 1) AS shared,
       sum(prompts) FILTER (prompts > 1) AS prompts_in_shared, (SELECT count(*) FROM split_conflicts) AS split_conflicts
FROM clusters
