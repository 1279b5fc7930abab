-- After an adapter: its annotations, plus the source records it never saw (blank, unreadable, not a
-- JSON object, a key held twice), as the entries of the batch. Input: source_records, source_states and
-- the adapter's table adapted(line, sub, raw, read_rule, read_error, skip_reason), `sub` ordering entries
-- of a line.
CREATE OR REPLACE TEMP TABLE adapted_entries AS
SELECT row_number() OVER (ORDER BY line, sub) AS entry, line, raw, read_rule, read_error, skip_reason
FROM (
    SELECT line, sub, raw, read_rule, read_error, skip_reason FROM adapted
    UNION ALL
    SELECT line, 0, raw,
           CASE WHEN state = 'unreadable' THEN read_rule WHEN state IN ('invalid', 'object') THEN 'json'
                ELSE 'object' END,
           CASE WHEN state = 'unreadable' THEN read_error WHEN state = 'invalid' THEN 'line is not valid JSON'
                WHEN state = 'object' THEN format('key "{}" appears twice in one object: readers disagree on '
                                                  'which value wins', repeated_key)
                ELSE 'line is a JSON value but not an object' END,
           CASE WHEN state = 'blank' THEN 'blank line' END
    FROM source_records JOIN source_states USING (line) WHERE state <> 'object' OR repeated_key IS NOT NULL
);
