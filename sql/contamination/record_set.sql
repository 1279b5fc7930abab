-- A set's version (getvariable evalset, version) checked against the whole warehouse: its matches replace any
-- earlier ones, and the check is recorded with how many it found.
DELETE FROM contamination WHERE evalset = getvariable('evalset') AND version = getvariable('version');
INSERT INTO contamination BY NAME SELECT * FROM prompt_matches;
INSERT INTO contamination BY NAME
SELECT m.* REPLACE (a.batch_id AS batch_id) FROM response_matches m JOIN annotations a USING (annotation_id);
INSERT INTO contamination_checks
SELECT getvariable('evalset'), getvariable('version'), count(*), now() FROM contamination
WHERE evalset = getvariable('evalset') AND version = getvariable('version');
