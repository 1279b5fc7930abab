-- Warehouse responses (checked_responses: annotation_id, response_id, text) that share a 13-gram of words with
-- a completion of an evaluation-set example (eval_grams: evalset, version, example_id, gram): a row per
-- (example, response); similarity = the share of the example's 13-grams that the response holds.
CREATE OR REPLACE TEMP VIEW response_matches AS
WITH grams AS (
    SELECT annotation_id, response_id, unnest(grams13(text)) AS gram FROM checked_responses
), hits AS (
    SELECT g.annotation_id, g.response_id, e.evalset, e.version, e.example_id, count(DISTINCT e.gram) AS shared
    FROM grams g JOIN eval_grams e USING (gram)
    GROUP BY ALL
), sizes AS (
    SELECT evalset, version, example_id, count(*) AS grams FROM eval_grams GROUP BY ALL
)
SELECT h.evalset, h.version, h.example_id, 'ngram13' AS kind, NULL::VARCHAR AS prompt_key, h.annotation_id,
       h.response_id, NULL::VARCHAR AS batch_id, h.shared / s.grams AS similarity
FROM hits h JOIN sizes s USING (evalset, version, example_id);
