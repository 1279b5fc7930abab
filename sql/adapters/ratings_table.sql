-- Ratings as a table (HelpSteer: one row per response with a numeric score) as cells: source_rows ->
-- long_cells (as long_table.sql). Higher score = better rank (dense: 9, 9, 7 -> 1, 1, 2); equal scores
-- tie; an empty score leaves the response unranked; a score that is not a number quarantines the
-- annotation. Rows group by annotation_id, else prompt_id, else prompt; prompt_id defaults to a hash of
-- the prompt, response_id to the row's place in its annotation. The text is `text`, else `response`.

CREATE OR REPLACE TEMP VIEW long_cells AS
WITH scored AS (
    SELECT *, coalesce(annotation_id::VARCHAR, prompt_id::VARCHAR, prompt::VARCHAR) AS annotation,
           TRY_CAST(score::VARCHAR AS DOUBLE) AS number
    FROM source_rows
)
SELECT source_line AS row,
       to_json(coalesce(prompt_id::VARCHAR, stable_id('prompt', prompt::VARCHAR))) AS prompt_id,
       CASE WHEN getvariable('layout') = 'csv' THEN csv_prompt(prompt::VARCHAR) ELSE to_json(prompt) END AS prompt,
       to_json(annotator_id) AS annotator_id, to_json(annotation_id) AS annotation_id,
       to_json(coalesce(response_id::VARCHAR,
                        (row_number() OVER (PARTITION BY annotation ORDER BY source_line))::VARCHAR)) AS response_id,
       to_json(coalesce(text, response)) AS text,
       CASE WHEN score IS NULL THEN NULL WHEN number IS NULL THEN to_json('score ' || score)
            ELSE to_json(dense_rank() OVER (PARTITION BY annotation ORDER BY number DESC)) END AS rank,
       NULL::JSON AS dropped, NULL::JSON AS drop_reason, NULL::JSON AS edited_from
FROM scored;
