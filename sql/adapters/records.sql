-- The source records an adapter reads: readable JSON objects that hold no key twice. Each record's JSON
-- is checked once here; sql/adapters/entries.sql reports the others (blank, unreadable, not JSON, not an
-- object, a repeated key).
CREATE OR REPLACE TEMP TABLE source_states AS
SELECT line, state, CASE WHEN state = 'object' THEN try(repeated_key(raw)) END AS repeated_key
FROM (
    SELECT line, raw, CASE WHEN read_error IS NOT NULL THEN 'unreadable'
                           WHEN trim(raw, ' ' || chr(9) || chr(13)) = '' THEN 'blank'
                           ELSE coalesce(lower(try(json_type(raw))), 'invalid') END AS state
    FROM source_records
);

CREATE OR REPLACE TEMP VIEW records AS
SELECT line, raw FROM source_records
SEMI JOIN (SELECT line FROM source_states WHERE state = 'object' AND repeated_key IS NULL) USING (line);
