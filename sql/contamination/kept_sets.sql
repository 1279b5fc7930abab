-- The set versions whose examples and grams are kept, made by $1 (sql/ddl/010_evalset_grams.sql).
SELECT DISTINCT evalset, version FROM evalset_examples WHERE made_by = $1
