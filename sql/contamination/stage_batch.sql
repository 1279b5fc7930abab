-- A batch's matches (prompt_matches, and its responses' 13-grams), loaded with the batch (its batch_id then).
CREATE OR REPLACE TEMP TABLE stage_contamination AS
SELECT * FROM prompt_matches UNION ALL SELECT * FROM response_matches;
