-- The annotations whose prompt or a response matches the latest version of a set of getvariable('exclude')
-- (excluded_annotations), and per set how many annotations and examples that is (excluded_per_set).
CREATE OR REPLACE TEMP TABLE excluded_annotations AS
WITH matches AS (
    SELECT c.* FROM contamination c JOIN latest_evalsets e ON e.name = c.evalset AND e.version = c.version
    WHERE list_contains(getvariable('exclude'), c.evalset))
SELECT DISTINCT annotation_seq, annotation_id, evalset, example_id
FROM (SELECT a.annotation_seq, a.annotation_id, m.evalset, m.example_id  -- two equi-joins, not one OR
      FROM annotations a JOIN matches m USING (prompt_key)
      UNION ALL
      SELECT a.annotation_seq, a.annotation_id, m.evalset, m.example_id
      FROM annotations a JOIN matches m USING (annotation_id));

CREATE OR REPLACE TEMP TABLE excluded_per_set AS
SELECT evalset, count(DISTINCT annotation_seq) AS annotations, count(DISTINCT example_id) AS examples
FROM excluded_annotations GROUP BY 1;
