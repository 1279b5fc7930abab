-- Parse the staged lines of one batch: stage_lines(line, raw, read_rule, read_error) -> stage_annotations,
-- stage_responses. Each line is parsed once; leaf values stay raw JSON text so their JSON type
-- can be checked (a rank of "2" or 2.0 must be an error, not silently cast).

-- The JSON type of a raw JSON value, in words used in quarantine reasons. (Values are cast to
-- VARCHAR first: on the JSON type, v[1] would be a JSON path, not the first character.)
CREATE OR REPLACE TEMP MACRO json_kind(v) AS CASE
    WHEN v IS NULL THEN 'missing'
    WHEN left(v::VARCHAR, 1) = '"' THEN 'string'
    WHEN v::VARCHAR IN ('true', 'false') THEN 'boolean'
    WHEN left(v::VARCHAR, 1) = '{' THEN 'object'
    WHEN left(v::VARCHAR, 1) = '[' THEN 'list'
    WHEN regexp_full_match(v::VARCHAR, '-?[0-9]{1,18}') THEN 'integer'
    ELSE 'decimal' END;

-- The text of a JSON string (or of an integer used as an id). Unescape only when needed.
CREATE OR REPLACE TEMP MACRO json_text(v) AS CASE
    WHEN v IS NULL OR left(v::VARCHAR, 1) <> '"' THEN v::VARCHAR
    WHEN contains(v::VARCHAR, '\') THEN from_json(v, '"VARCHAR"')
    ELSE (v::VARCHAR)[2:-2] END;

CREATE OR REPLACE TEMP TABLE stage_parsed AS
SELECT line, raw, read_rule, read_error,
       try(from_json(raw, '{"prompt_id": "JSON", "prompt": "JSON", "annotator_id": "JSON",
           "annotation_id": "JSON", "metadata": "JSON", "responses": [{"response_id": "JSON",
           "text": "JSON", "rank": "JSON", "dropped": "JSON", "drop_reason": "JSON",
           "edited_from": "JSON"}]}')) AS j
FROM stage_lines
WHERE read_error IS NOT NULL OR trim(raw, ' ' || chr(9) || chr(13)) <> '';  -- blank lines are skipped

CREATE OR REPLACE TEMP TABLE stage_annotations AS
SELECT line, read_rule, read_error,
       CASE WHEN read_error IS NOT NULL THEN 'unreadable'
            WHEN j IS NULL THEN 'invalid'
            WHEN ltrim(raw)[1] <> '{' THEN 'not_object' ELSE 'object' END AS json_state,
       json_kind(j.prompt_id) AS prompt_id_kind, json_text(j.prompt_id) AS prompt_id,
       json_kind(j.prompt) AS prompt_kind, j.prompt AS prompt,
       json_kind(j.annotator_id) AS annotator_id_kind,
       coalesce(json_text(j.annotator_id), 'anonymous') AS annotator_id,
       json_kind(j.annotation_id) AS annotation_id_kind,
       coalesce(json_text(j.annotation_id),
                json_text(j.prompt_id) || '/' || coalesce(json_text(j.annotator_id), 'anonymous'))
           AS annotation_id,
       json_kind(j.metadata) AS metadata_kind, j.metadata AS metadata,
       len(j.responses) AS n_responses
FROM stage_parsed;

CREATE OR REPLACE TEMP TABLE stage_responses AS
WITH unnested AS (
    SELECT line, unnest(range(1, len(j.responses) + 1)) AS position, unnest(j.responses) AS r
    FROM stage_parsed WHERE len(j.responses) > 0
)
SELECT line, position,
       CASE WHEN trim(json_text(r.response_id)) = '' THEN 'an empty string'
            ELSE json_kind(r.response_id) END AS response_id_kind,
       json_text(r.response_id) AS response_id,
       json_kind(r.text) AS text_kind, json_text(r.text) AS text,
       CASE WHEN json_kind(r.text) = 'string' THEN length(json_text(r.text)) END AS text_chars,
       json_kind(r.rank) AS rank_kind,
       CASE WHEN json_kind(r.rank) = 'integer' THEN r.rank::BIGINT END AS rank,
       json_kind(r.dropped) AS dropped_kind, coalesce(r.dropped = 'true', false) AS dropped,
       json_kind(r.drop_reason) AS drop_reason_kind, json_text(r.drop_reason) AS drop_reason,
       json_kind(r.edited_from) AS edited_from_kind, json_text(r.edited_from) AS edited_from
FROM unnested;
