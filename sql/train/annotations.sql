-- The training data: one row per annotation that has pairs, with its compared responses and pairs
-- (positions index into `positions`). `rank` is the effective rank: the human edit counts as 0, as in
-- the pair build, so the Plackett-Luce ranking and the pairs agree. getvariable('splits'): a list.
CREATE OR REPLACE TEMP VIEW train_annotations AS
WITH compared AS (
    SELECT annotation_seq, chosen_position AS position FROM comparisons
    UNION
    SELECT annotation_seq, rejected_position FROM comparisons
), unit_responses AS (
    SELECT r.annotation_seq, list(r.position ORDER BY r.position) AS positions,
           list(r.text ORDER BY r.position) AS texts,
           list(CASE WHEN r.edited_from IS NOT NULL THEN 0 ELSE r.rank END ORDER BY r.position) AS ranks
    FROM responses r SEMI JOIN compared c ON c.annotation_seq = r.annotation_seq AND c.position = r.position
    GROUP BY r.annotation_seq
), unit_pairs AS (
    SELECT annotation_seq, list({'chosen': chosen_position, 'rejected': rejected_position, 'margin': margin,
                                 'weight': weight} ORDER BY chosen_position, rejected_position) AS pairs
    FROM comparisons GROUP BY annotation_seq
)
SELECT a.annotation_id, a.split, a.prompt::VARCHAR AS prompt, a.annotator_id, b.source, a.batch_id,
       r.positions, r.texts, r.ranks, p.pairs
FROM annotations a
JOIN batches b USING (batch_id)
JOIN unit_responses r USING (annotation_seq)
JOIN unit_pairs p USING (annotation_seq)
WHERE list_contains(getvariable('splits'), a.split)
  AND a.annotation_seq NOT IN (SELECT annotation_seq FROM excluded_annotations);  -- prefpipe.contamination
