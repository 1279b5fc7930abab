-- A record format's entries (adapted_entries) are the lines that sql/ingest/01_parse.sql parses.
CREATE OR REPLACE TEMP VIEW lines_source AS SELECT * FROM adapted_entries;
