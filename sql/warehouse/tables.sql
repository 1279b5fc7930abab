-- The warehouse's own tables (not its views, not the temp tables of an ingest), by name.
SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() ORDER BY 1
