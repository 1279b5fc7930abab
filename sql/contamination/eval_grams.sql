-- The 13-grams of the completions of the sets being checked (completions: evalset, version, example_id, text).
CREATE OR REPLACE TEMP TABLE eval_grams AS
SELECT DISTINCT evalset, version, example_id, unnest(grams13(text)) AS gram FROM completions;
