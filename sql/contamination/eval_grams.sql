-- The 13-grams of the completions of the sets being checked (completions: evalset, version, example_id, text), and
-- every 7-gram of them (eval_grams7: what sql/contamination/response_matches.sql looks for first).
CREATE OR REPLACE TEMP TABLE eval_grams AS
SELECT DISTINCT evalset, version, example_id, unnest(grams13(text)) AS gram FROM completions;

CREATE OR REPLACE TEMP TABLE eval_grams7 AS
SELECT DISTINCT unnest(ngram_hashes(word_hashes(text), 7, 1)) AS gram FROM completions;
