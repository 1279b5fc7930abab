-- Parse the entries of one batch once: lines_source -> stage_parsed.
-- lines_source(entry, line, raw, read_rule, read_error, skip_reason) is the reader's stream: one
-- canonical annotation per entry as JSON text (canonical JSONL: entry = line), or a table made by a
-- format adapter (sql/adapters/) or the long-table reader. `entry` is the key of an annotation within
-- the batch; `line` is where it is in the file (a line, a row, or an item of a JSON array).
-- Leaf values stay raw JSON text so that their JSON type can be checked: a rank of "2" or 2.0 must be
-- an error, not silently cast. The macros json_kind and json_text are in 00_macros.sql.

CREATE OR REPLACE TEMP TABLE stage_parsed AS
WITH parsed AS (
    SELECT entry, line, raw, read_rule, read_error, skip_reason,
           try(from_json(raw, '{"prompt_id": "JSON", "prompt": "JSON", "annotator_id": "JSON",
               "annotation_id": "JSON", "metadata": "JSON", "responses": [{"response_id": "JSON",
               "text": "JSON", "rank": "JSON", "dropped": "JSON", "drop_reason": "JSON",
               "edited_from": "JSON"}]}')) AS j
    FROM lines_source
)
SELECT entry, line, raw, read_rule, read_error, j,
       CASE WHEN skip_reason IS NOT NULL THEN 'skipped'
            WHEN read_error IS NOT NULL THEN 'unreadable'
            WHEN j IS NOT NULL AND (left(raw, 1) = '{' OR ltrim(raw)[1] = '{') THEN 'object'
            WHEN j IS NOT NULL THEN 'not_object'
            WHEN trim(raw, ' ' || chr(9) || chr(13)) = '' THEN 'skipped'
            ELSE 'invalid' END AS json_state,
       -- adapters write their own records (sql/adapters/records.sql checks the source's)
       CASE WHEN getvariable('check_repeated_keys') AND j IS NOT NULL AND read_error IS NULL
            THEN try(repeated_key(raw)) END AS repeated_key,
       CASE WHEN skip_reason IS NOT NULL THEN skip_reason
            WHEN read_error IS NULL AND j IS NULL AND trim(raw, ' ' || chr(9) || chr(13)) = '' THEN 'blank line'
            END AS skip_reason  -- skipped entries are counted, never quarantined
FROM parsed;
