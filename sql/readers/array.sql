-- The items of a JSON array as source_records(line, raw, read_rule, read_error); line = the item's number.
CREATE OR REPLACE TEMP TABLE source_records AS
SELECT row_number() OVER () AS line, json::VARCHAR AS raw, NULL::VARCHAR AS read_rule, NULL::VARCHAR AS read_error
FROM read_json_objects(getvariable('source_path'), format = 'array');
