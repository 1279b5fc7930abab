-- A Parquet table's rows as source_rows(source_line, its columns); source_line = the row (from 1).
CREATE OR REPLACE TEMP TABLE source_rows AS
SELECT row_number() OVER () AS source_line, * FROM read_parquet(getvariable('source_path'));
