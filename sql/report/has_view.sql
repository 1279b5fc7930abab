-- Whether the analysts' connection has the view $1 (a registry table's copy exists).
SELECT count(*) > 0 FROM duckdb_views() WHERE view_name = $1
