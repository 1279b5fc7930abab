-- The kept grams of the set versions being checked (checked_sets: evalset, version; sql/ddl/010_evalset_grams.sql):
-- eval_grams, each example's 13-grams, and eval_grams7, every 7-gram of any of them (what
-- sql/contamination/response_matches.sql looks for first).
CREATE OR REPLACE TEMP TABLE eval_grams AS
SELECT evalset, version, example_id, gram FROM evalset_grams SEMI JOIN checked_sets USING (evalset, version)
WHERE n = 13;

CREATE OR REPLACE TEMP TABLE eval_grams7 AS
SELECT DISTINCT gram FROM evalset_grams SEMI JOIN checked_sets USING (evalset, version) WHERE n = 7;
