-- The lines of a JSON Lines file (source_stream: line, raw, read_rule, read_error) as source records.
CREATE OR REPLACE TEMP TABLE source_records AS SELECT line, raw, read_rule, read_error FROM source_stream;
