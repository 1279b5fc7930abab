-- The rows of a table (source_rows, from csv.sql or parquet.sql) as JSON records, for an adapter that reads
-- records (a public format given as a table with its fields as columns).
CREATE OR REPLACE TEMP TABLE source_records AS
SELECT source_line AS line, json_merge_patch(to_json(t), '{"source_line": null}')::VARCHAR AS raw,
       NULL::VARCHAR AS read_rule, NULL::VARCHAR AS read_error
FROM source_rows t;
