-- A CSV table's rows as source_rows(source_line, its columns), every cell text (sql/adapters/ turns cells
-- into JSON values); source_line = the file line (the header is line 1). The path is bound, never pasted.
CREATE OR REPLACE TEMP TABLE source_rows AS
SELECT row_number() OVER () + 1 AS source_line, *
FROM read_csv(getvariable('source_path'), all_varchar = true, header = true);
