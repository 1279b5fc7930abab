-- What the split by exact prompt (md5 of prompt_id, before prefpipe 0.4) would have leaked: held-out pairs
-- whose prompt has a near-duplicate (same cluster) in that split's training set. Needs the warehouse's
-- split_of macro and its train_share / validation_share variables.
WITH exact AS (
    SELECT a.annotation_seq, c.cluster_id, split_of(a.prompt_id) AS exact_split
    FROM annotations a JOIN prompt_clusters c USING (prompt_key)
), trained AS (SELECT DISTINCT cluster_id FROM exact WHERE exact_split = 'train')
SELECT e.exact_split AS split, count(*) AS pairs,
       count(*) FILTER (e.cluster_id IN (SELECT cluster_id FROM trained)) AS leaked_pairs
FROM comparisons JOIN exact e USING (annotation_seq)
WHERE e.exact_split <> 'train'
GROUP BY ALL ORDER BY split;
