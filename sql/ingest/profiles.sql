-- The distinct value profiles of a batch's responses, each with how many responses have it: the Great
-- Expectations suite checks these, not the responses one by one (prefpipe.expectations); the columns it checks
-- are these, `responses` aside, and sql/ingest/03_rules.sql maps a failing profile back to its responses.
SELECT text_chars, rank, response_id_kind, text_kind, rank_kind, dropped_kind, drop_reason_kind, edited_from_kind,
       count(*) AS responses
FROM stage_responses GROUP BY ALL
