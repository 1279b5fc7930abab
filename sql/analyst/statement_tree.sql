-- The parse tree of the query $1 as JSON (DuckDB's own parser), to see that it only reads.
SELECT json_serialize_sql($1::VARCHAR)
