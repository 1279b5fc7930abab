-- Annotation and response columns of the parsed lines (stage_parsed, from 01_parse.sql), with the
-- JSON kind of every checked value.

CREATE OR REPLACE TEMP TABLE stage_annotations AS
SELECT entry, line, read_rule, read_error, json_state,
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
FROM stage_parsed WHERE json_state <> 'skipped';

CREATE OR REPLACE TEMP TABLE stage_responses AS
WITH unnested AS (
    SELECT entry, unnest(range(1, len(j.responses) + 1)) AS position, unnest(j.responses) AS r
    FROM stage_parsed WHERE json_state = 'object' AND len(j.responses) > 0
)
SELECT entry, position::INTEGER AS position,
       CASE WHEN trim(json_text(r.response_id)) = '' THEN 'an empty string'
            ELSE json_kind(r.response_id) END AS response_id_kind,
       json_text(r.response_id) AS response_id,
       json_kind(r.text) AS text_kind, json_text(r.text) AS text,
       CASE WHEN left(r.text::VARCHAR, 1) = '"' THEN length(json_text(r.text)) END AS text_chars,
       -- ranks are stored as INTEGER (and rank gaps too): a whole number beyond that is out of range
       CASE WHEN regexp_full_match(r.rank::VARCHAR, '-?[0-9]+') AND TRY_CAST(r.rank::VARCHAR AS INTEGER) IS NULL
            THEN 'a whole number out of range' ELSE json_kind(r.rank) END AS rank_kind,
       TRY_CAST(CASE WHEN json_kind(r.rank) = 'integer' THEN r.rank::VARCHAR END AS INTEGER) AS rank,
       json_kind(r.dropped) AS dropped_kind, coalesce(r.dropped::VARCHAR = 'true', false) AS dropped,
       json_kind(r.drop_reason) AS drop_reason_kind, json_text(r.drop_reason) AS drop_reason,
       json_kind(r.edited_from) AS edited_from_kind, json_text(r.edited_from) AS edited_from
FROM unnested;
