-- Pairs from the ranks of the valid annotations of one batch (InstructGPT-style).
-- Comparable: not dropped, and ranked or the edit. The edit counts as rank 0, so it beats every
-- other comparable response. One pair per two comparable responses with different ranks; ties
-- make none; a pair whose two texts are identical is not made (and counted).
-- weight = 1 / pairs of the annotation. Output: stage_pairs, stage_pair_counts.

-- Identical texts within an annotation share a text_group, so the self-join compares integers.
CREATE OR REPLACE TEMP TABLE comparable AS
SELECT entry, position,
       CASE WHEN edited_from IS NOT NULL THEN 0 ELSE rank END AS rank,
       dense_rank() OVER (PARTITION BY entry ORDER BY text) AS text_group
FROM valid_responses
WHERE NOT dropped AND (rank IS NOT NULL OR edited_from IS NOT NULL);

-- Every two comparable responses, the better first (ties in list order).
CREATE OR REPLACE TEMP TABLE candidate_pairs AS
SELECT a.entry, a.position AS chosen_position, b.position AS rejected_position,
       b.rank - a.rank AS margin, a.text_group = b.text_group AS identical
FROM comparable a JOIN comparable b
  ON a.entry = b.entry AND (a.rank < b.rank OR (a.rank = b.rank AND a.position < b.position));

CREATE OR REPLACE TEMP TABLE stage_pair_counts AS
SELECT count(*) FILTER (margin > 0 AND NOT identical) AS pairs,
       count(*) FILTER (margin = 0) AS ties,
       count(*) FILTER (margin > 0 AND identical) AS identical_texts
FROM candidate_pairs;

CREATE OR REPLACE TEMP TABLE stage_pairs AS
SELECT entry, chosen_position, rejected_position, margin, 1.0 / count(*) OVER (PARTITION BY entry) AS weight
FROM candidate_pairs WHERE margin > 0 AND NOT identical;

DROP TABLE comparable;  -- read again by nothing (sql/ingest/03_rules.sql says why it matters)
DROP TABLE candidate_pairs;
