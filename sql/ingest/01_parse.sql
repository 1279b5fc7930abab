-- Parse the lines of one batch once: lines_source(line, raw, read_rule, read_error) -> stage_parsed.
-- lines_source is the reader's stream (canonical JSONL) or a table (long tables, 00_long_table.sql).
-- Leaf values stay raw JSON text so that their JSON type can be checked: a rank of "2" or 2.0 must be
-- an error, not silently cast. Within a batch, `line` is the key of an annotation.

-- The JSON type of a raw JSON value, in words used in quarantine reasons. (Cast to VARCHAR first:
-- on the JSON type, v[1] would be a JSON path, not the first character.)
CREATE OR REPLACE TEMP MACRO json_kind(v) AS CASE
    WHEN v IS NULL THEN 'missing'
    WHEN left(v::VARCHAR, 1) = '"' THEN 'string'
    WHEN TRY_CAST(v::VARCHAR AS BIGINT) IS NOT NULL AND regexp_full_match(v::VARCHAR, '-?[0-9]+') THEN 'integer'
    WHEN v::VARCHAR IN ('true', 'false') THEN 'boolean'
    WHEN left(v::VARCHAR, 1) = '{' THEN 'object'
    WHEN left(v::VARCHAR, 1) = '[' THEN 'list'
    ELSE 'decimal' END;

-- The text of a JSON string (or of an integer used as an id). Unescape only when needed.
CREATE OR REPLACE TEMP MACRO json_text(v) AS CASE
    WHEN v IS NULL OR left(v::VARCHAR, 1) <> '"' THEN v::VARCHAR
    WHEN contains(v::VARCHAR, '\') THEN from_json(v, '"VARCHAR"')
    ELSE (v::VARCHAR)[2:-2] END;

CREATE OR REPLACE TEMP TABLE stage_parsed AS
WITH parsed AS (
    SELECT line, raw, read_rule, read_error,
           try(from_json(raw, '{"prompt_id": "JSON", "prompt": "JSON", "annotator_id": "JSON",
               "annotation_id": "JSON", "metadata": "JSON", "responses": [{"response_id": "JSON",
               "text": "JSON", "rank": "JSON", "dropped": "JSON", "drop_reason": "JSON",
               "edited_from": "JSON"}]}')) AS j
    FROM lines_source
)
SELECT line, raw, read_rule, read_error, j,
       CASE WHEN read_error IS NOT NULL THEN 'unreadable'
            WHEN j IS NOT NULL AND (left(raw, 1) = '{' OR ltrim(raw)[1] = '{') THEN 'object'
            WHEN j IS NOT NULL THEN 'not_object'
            WHEN trim(raw, ' ' || chr(9) || chr(13)) = '' THEN 'blank'  -- skipped, and counted
            ELSE 'invalid' END AS json_state
FROM parsed;
