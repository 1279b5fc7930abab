-- Canonical annotations in a JSON array: each item is one annotation, as a JSON Lines line would be.
CREATE OR REPLACE TEMP TABLE adapted AS
SELECT line, 0 AS sub, raw, NULL AS read_rule, NULL AS read_error, NULL AS skip_reason FROM records;
