-- Per-annotation rules. An entry is one annotation of the batch; `line` is where it is in the file.
-- Inputs: stage_annotations, stage_responses, and failing_profiles: the value profiles that the
-- Great Expectations suite (schemas/responses.gx.json) failed, with rule and message.
-- Output: stage_quarantine (one row per quarantined entry, every broken rule in its reason),
-- valid_annotations and valid_responses (everything else, whole annotations only).

CREATE OR REPLACE TEMP TABLE response_errors AS
SELECT r.entry, r.position, f.rule, format('responses[{}].{}', r.position, f.message) AS reason
FROM stage_responses r JOIN failing_profiles f
  ON  r.text_chars IS NOT DISTINCT FROM f.text_chars AND r.rank IS NOT DISTINCT FROM f.rank
  AND r.response_id_kind = f.response_id_kind AND r.text_kind = f.text_kind AND r.rank_kind = f.rank_kind
  AND r.dropped_kind = f.dropped_kind AND r.drop_reason_kind = f.drop_reason_kind
  AND r.edited_from_kind = f.edited_from_kind;

CREATE OR REPLACE TEMP TABLE annotation_facts AS
SELECT entry,
       count(*) FILTER (edited_from IS NOT NULL) AS edits,
       count(*) FILTER (NOT dropped AND (rank IS NOT NULL OR edited_from IS NOT NULL)) AS comparable
FROM stage_responses GROUP BY entry;

CREATE OR REPLACE TEMP TABLE repeated_ids AS
SELECT entry, string_agg(DISTINCT response_id, ', ') AS response_ids
FROM (SELECT entry, response_id FROM stage_responses WHERE response_id IS NOT NULL
      GROUP BY entry, response_id HAVING count(*) > 1)
GROUP BY entry;

CREATE OR REPLACE TEMP TABLE broken_edits AS
SELECT e.entry, e.position, e.edited_from
FROM stage_responses e
WHERE e.edited_from IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM stage_responses o
    WHERE o.entry = e.entry AND o.response_id = e.edited_from AND o.position <> e.position);

CREATE OR REPLACE TEMP TABLE rule_errors AS
WITH a AS (SELECT * FROM stage_annotations LEFT JOIN annotation_facts USING (entry)),
errors(entry, priority, position, rule, reason) AS (
    SELECT entry, 0, 0, read_rule, read_error FROM a WHERE json_state = 'unreadable'
    UNION ALL
    SELECT entry, 1, 0, 'json', 'line is not valid JSON' FROM a WHERE json_state = 'invalid'
    UNION ALL
    SELECT entry, 2, 0, 'object', 'line is a JSON value but not an object' FROM a
    WHERE json_state = 'not_object'
    UNION ALL
    SELECT entry, 1, 0, 'json', format('key "{}" appears twice in one object: readers disagree on which value wins',
                                       repeated_key)
    FROM a JOIN (SELECT entry, repeated_key FROM stage_parsed WHERE repeated_key IS NOT NULL) USING (entry)
    UNION ALL
    SELECT entry, 3, 0, 'prompt_id', 'prompt_id: must be a non-empty string, got '
        || CASE WHEN prompt_id_kind IN ('string', 'integer') THEN 'an empty string' ELSE prompt_id_kind END
    FROM a WHERE json_state = 'object'
      AND (prompt_id_kind NOT IN ('string', 'integer') OR trim(prompt_id) = '')
    UNION ALL
    SELECT entry, 4, 0, 'prompt', 'prompt: must be a non-empty string or a list of {role, content} messages, got '
        || CASE WHEN prompt_kind IN ('string', 'list') THEN 'an empty or malformed ' || prompt_kind ELSE prompt_kind END
    FROM a WHERE json_state = 'object' AND NOT coalesce(CASE prompt_kind
        WHEN 'string' THEN trim(json_text(prompt)) <> ''
        WHEN 'list' THEN len(from_json(prompt, '["JSON"]')) > 0 AND list_bool_and(list_transform(
            from_json(prompt, '["JSON"]'), lambda m: left(m::VARCHAR, 1) = '{'
                AND json_type(m, 'role') = 'VARCHAR' AND json_type(m, 'content') = 'VARCHAR'
                AND trim(m ->> 'role') <> ''))
        ELSE false END, false)
    UNION ALL
    SELECT entry, 5, 0, 'annotator_id', 'annotator_id: must be a non-empty string, got ' || annotator_id_kind
    FROM a WHERE json_state = 'object' AND (annotator_id_kind NOT IN ('string', 'integer', 'missing')
        OR trim(annotator_id) = '')
    UNION ALL
    SELECT entry, 6, 0, 'annotation_id', 'annotation_id: must be a non-empty string, got ' || annotation_id_kind
    FROM a WHERE json_state = 'object' AND (annotation_id_kind NOT IN ('string', 'integer', 'missing')
        OR trim(annotation_id) = '')
    UNION ALL
    SELECT entry, 7, 0, 'metadata', 'metadata: must be an object, got ' || metadata_kind
    FROM a WHERE json_state = 'object' AND metadata_kind NOT IN ('object', 'missing')
    UNION ALL
    SELECT entry, 8, 0, 'responses',
           format('responses: must be a list of 2 to {} responses, got {}', getvariable('max_responses'),
                  CASE WHEN n_responses IS NULL THEN coalesce(lower(json_type(s.raw, '$.responses')), 'missing')
                       ELSE n_responses || ' responses' END)
    FROM a JOIN (SELECT entry, raw FROM stage_parsed) s USING (entry)
    WHERE json_state = 'object' AND NOT coalesce(n_responses BETWEEN 2 AND getvariable('max_responses'), false)
    UNION ALL
    SELECT entry, 9, position, rule, reason FROM response_errors
    UNION ALL
    SELECT entry, 10, 0, 'response_id', format('response_id: {} repeated within the annotation', response_ids)
    FROM repeated_ids
    UNION ALL
    SELECT entry, 11, 0, 'edits', format('more than one edit ({} responses have edited_from)', edits)
    FROM a WHERE edits > 1
    UNION ALL
    SELECT entry, 12, position, 'edited_from',
           format('responses[{}].edited_from: names no other response of the annotation ({})', position, edited_from)
    FROM broken_edits
    UNION ALL
    SELECT entry, 13, 0, 'comparable', format('fewer than two comparable responses ({} ranked, not dropped)', comparable)
    FROM a WHERE n_responses BETWEEN 2 AND getvariable('max_responses') AND comparable < 2
)
SELECT * FROM errors;

-- Of the annotations that break no other rule, a key seen in an earlier entry is quarantined.
CREATE OR REPLACE TEMP TABLE repeated_keys AS
WITH ok AS (
    SELECT entry, annotation_id, first_value(entry) OVER (PARTITION BY annotation_id ORDER BY entry) AS first_entry,
           first_value(line) OVER (PARTITION BY annotation_id ORDER BY entry) AS first_line
    FROM stage_annotations ANTI JOIN rule_errors USING (entry)
)
SELECT entry, 14 AS priority, 0 AS position, 'duplicate_key' AS rule,
       format('annotation key {} repeats line {}', annotation_id, first_line) AS reason
FROM ok WHERE entry <> first_entry;

CREATE OR REPLACE TEMP TABLE stage_quarantine AS
SELECT e.entry, a.line, CASE WHEN a.json_state = 'object' THEN a.annotation_id END AS annotation_id,
       arg_min(e.rule, e.priority * 1000 + e.position) AS rule,
       string_agg(e.reason, '; ' ORDER BY e.priority, e.position) AS reason,
       s.raw
FROM (SELECT * FROM rule_errors UNION ALL SELECT * FROM repeated_keys) e
JOIN stage_annotations a USING (entry) JOIN (SELECT entry, raw FROM stage_parsed) s USING (entry)
GROUP BY e.entry, a.line, a.json_state, a.annotation_id, s.raw;

CREATE OR REPLACE TEMP TABLE valid_annotations AS
SELECT entry, line, annotation_id, prompt_id, prompt, annotator_id, metadata,
       NULL::VARCHAR AS prompt_key, NULL::VARCHAR AS split  -- set by prefpipe.dedup: the prompt's cluster
FROM stage_annotations ANTI JOIN stage_quarantine USING (entry);

CREATE OR REPLACE TEMP TABLE valid_responses AS
SELECT entry, response_id, position, text, rank, dropped, drop_reason, edited_from
FROM stage_responses SEMI JOIN valid_annotations USING (entry);

-- The staged rows are all in the tables above now: what nothing reads again leaves DuckDB's buffer pool
-- (PREFPIPE_MEMORY_LIMIT), which a large batch would otherwise spill to disk for the steps that follow.
DROP TABLE stage_responses;
DROP TABLE stage_annotations;
DROP TABLE annotation_facts;
