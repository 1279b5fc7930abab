-- The canonical long table (CSV or Parquet, one row per response) as cells: source_rows(source_line, the
-- file's columns) -> long_cells(row, prompt_id, prompt, annotator_id, annotation_id, response_id, text,
-- rank, dropped, drop_reason, edited_from), every cell a JSON value (csv_scalar and csv_prompt: 00_macros.sql).
-- After long_columns.sql: the required columns (prompt_id, prompt, response_id, text) were checked, the others
-- may be empty.

CREATE OR REPLACE TEMP VIEW long_cells AS
SELECT source_line AS row, to_json(prompt_id) AS prompt_id,
       CASE WHEN getvariable('layout') = 'csv' THEN csv_prompt(prompt::VARCHAR) ELSE to_json(prompt) END AS prompt,
       to_json(annotator_id) AS annotator_id, to_json(annotation_id) AS annotation_id,
       to_json(response_id) AS response_id, to_json(text) AS text,
       CASE WHEN getvariable('layout') = 'csv' THEN csv_scalar(rank::VARCHAR) ELSE to_json(rank) END AS rank,
       CASE WHEN getvariable('layout') = 'csv' THEN csv_scalar(dropped::VARCHAR) ELSE to_json(dropped) END AS dropped,
       to_json(drop_reason) AS drop_reason, to_json(edited_from) AS edited_from
FROM source_rows;
