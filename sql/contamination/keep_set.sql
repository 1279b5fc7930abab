-- Keep one set version's examples and grams (examples: evalset, version, made_by, example, example_id, normalised;
-- completions: evalset, version, example_id, text; prefpipe.contamination.stage_sets), replacing any rows of it
-- made before; the examples last (sql/ddl/010_evalset_grams.sql).
DELETE FROM evalset_examples WHERE (evalset, version) IN (SELECT DISTINCT evalset, version FROM examples);
DELETE FROM evalset_grams WHERE (evalset, version) IN (SELECT DISTINCT evalset, version FROM examples);
INSERT INTO evalset_grams
SELECT DISTINCT evalset, version, (SELECT any_value(made_by) FROM examples), 13, example_id, unnest(grams13(text))
FROM completions;
INSERT INTO evalset_grams
SELECT DISTINCT evalset, version, (SELECT any_value(made_by) FROM examples), 7, NULL,
       unnest(grams7(text, 1))
FROM completions;
INSERT INTO evalset_examples SELECT * FROM examples;
