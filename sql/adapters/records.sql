-- The source records an adapter reads: readable JSON objects only. Each record's JSON is checked once
-- here; sql/adapters/entries.sql reports the others (blank, unreadable, not JSON, not an object).
CREATE OR REPLACE TEMP TABLE source_states AS
SELECT line, CASE WHEN read_error IS NOT NULL THEN 'unreadable'
                  WHEN trim(raw, ' ' || chr(9) || chr(13)) = '' THEN 'blank'
                  ELSE coalesce(lower(try(json_type(raw))), 'invalid') END AS state
FROM source_records;

CREATE OR REPLACE TEMP VIEW records AS
SELECT line, raw FROM source_records SEMI JOIN (SELECT line FROM source_states WHERE state = 'object') USING (line);
