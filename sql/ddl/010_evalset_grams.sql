-- What a batch is checked against, kept for each registered set version (prefpipe.contamination.stage_sets) so that
-- no ingest reads and hashes the sets again: each example's normalised prompt, and the word n-grams of the
-- completions (n = 13: each example's; n = 7: every 7-gram, example_id NULL), as DuckDB's hash() makes them.
-- `made_by` names the DuckDB version, the Unicode version and a hash of the SQL and normal form that made them
-- (prefpipe.contamination.made_by): rows made by another are made again (hash() may change between DuckDB
-- releases). A set's examples are written last: a set whose examples are there is whole.
CREATE TABLE IF NOT EXISTS evalset_grams (
    evalset VARCHAR NOT NULL, version VARCHAR NOT NULL, made_by VARCHAR NOT NULL, n UTINYINT NOT NULL,
    example_id VARCHAR, gram UBIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS evalset_examples (
    evalset VARCHAR NOT NULL, version VARCHAR NOT NULL, made_by VARCHAR NOT NULL, example INTEGER NOT NULL,
    example_id VARCHAR NOT NULL, normalised VARCHAR NOT NULL
);
