-- Canonical lines from a long table (one row per response), after long_table.sql or ratings_table.sql.
-- Input: the view long_cells(row, prompt_id, prompt, annotator_id, annotation_id, response_id, text, rank,
-- dropped, drop_reason, edited_from) with every cell a JSON value. Rows group into annotations by
-- annotation_id (default prompt_id/annotator_id); an annotation's line is its first row. Output: the
-- entries of the batch (lines_source, as sql/ingest/01_parse.sql reads them).
CREATE OR REPLACE TEMP TABLE long_lines AS
WITH keyed AS (
    SELECT *, coalesce(annotation_id ->> '$',
                       (prompt_id ->> '$') || '/' || coalesce(annotator_id ->> '$', 'anonymous')) AS key
    FROM long_cells
)
SELECT min(row) AS line,
       json_object('prompt_id', first(prompt_id ORDER BY row), 'prompt', first(prompt ORDER BY row),
                   'annotator_id', first(annotator_id ORDER BY row),
                   'annotation_id', first(annotation_id ORDER BY row),
                   'responses', to_json(list(json_object(
                       'response_id', response_id, 'text', text, 'rank', rank, 'dropped', dropped,
                       'drop_reason', drop_reason, 'edited_from', edited_from) ORDER BY row)))::VARCHAR AS raw,
       CASE WHEN count(DISTINCT prompt) > 1 OR count(DISTINCT prompt_id) > 1 OR count(DISTINCT annotator_id) > 1
            THEN 'rows' END AS read_rule,
       CASE WHEN count(DISTINCT prompt) > 1 OR count(DISTINCT prompt_id) > 1 OR count(DISTINCT annotator_id) > 1
            THEN format('rows {} of annotation {} disagree on prompt_id, prompt or annotator_id',
                        string_agg(row::VARCHAR, ', ' ORDER BY row), key) END AS read_error
FROM keyed GROUP BY key;

CREATE OR REPLACE TEMP VIEW lines_source AS
SELECT line AS entry, line, raw, read_rule, read_error, NULL::VARCHAR AS skip_reason FROM long_lines;
