-- Whether DuckDB's httpfs extension is installed on this machine (it is never installed on demand).
SELECT count(*) > 0 FROM duckdb_extensions() WHERE extension_name = 'httpfs' AND installed
