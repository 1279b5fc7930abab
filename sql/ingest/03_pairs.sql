-- Pairs from the ranks of the valid annotations of one batch (InstructGPT-style).
-- Comparable: not dropped, and ranked or the edit. The edit counts as rank 0, so it beats every
-- other comparable response. One pair per two comparable responses with different ranks; ties
-- make none; a pair whose two texts are identical is not made (and counted).
-- weight = 1 / pairs of the annotation; split from a stable hash (md5) of prompt_id.

CREATE OR REPLACE TEMP TABLE comparable AS
SELECT annotation_id, response_id, position, text,
       CASE WHEN edited_from IS NOT NULL THEN 0 ELSE rank END AS rank
FROM valid_responses
WHERE NOT dropped AND (rank IS NOT NULL OR edited_from IS NOT NULL);

CREATE OR REPLACE TEMP TABLE candidate_pairs AS
SELECT a.annotation_id, a.response_id AS chosen_id, b.response_id AS rejected_id,
       b.rank - a.rank AS margin, a.text = b.text AS identical
FROM comparable a JOIN comparable b
  ON a.annotation_id = b.annotation_id
 AND (a.rank < b.rank OR (a.rank = b.rank AND a.position < b.position));

CREATE OR REPLACE TEMP TABLE stage_pairs AS
WITH made AS (
    SELECT annotation_id, chosen_id, rejected_id, margin FROM candidate_pairs
    WHERE margin > 0 AND NOT identical
)
SELECT m.annotation_id, v.prompt_id, v.annotator_id, m.chosen_id, m.rejected_id, m.margin,
       1.0 / count(*) OVER (PARTITION BY m.annotation_id) AS weight,
       CASE WHEN md5_number_lower(v.prompt_id) % 1000000 < getvariable('train_share') * 1000000 THEN 'train'
            WHEN md5_number_lower(v.prompt_id) % 1000000
                 < (getvariable('train_share') + getvariable('validation_share')) * 1000000 THEN 'validation'
            ELSE 'test' END AS split
FROM made m JOIN valid_annotations v USING (annotation_id);

CREATE OR REPLACE TEMP TABLE stage_pair_counts AS
SELECT count(*) FILTER (margin > 0 AND NOT identical) AS pairs,
       count(*) FILTER (margin = 0) AS ties,
       count(*) FILTER (margin > 0 AND identical) AS identical_texts
FROM candidate_pairs;
