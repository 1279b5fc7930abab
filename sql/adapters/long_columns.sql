-- The columns a long table may leave out, added empty to source_rows (from sql/readers/), so that
-- long_table.sql and ratings_table.sql read every one of them. The required ones were checked before.
ALTER TABLE source_rows ADD COLUMN IF NOT EXISTS prompt_id VARCHAR;
ALTER TABLE source_rows ADD COLUMN IF NOT EXISTS annotator_id VARCHAR;
ALTER TABLE source_rows ADD COLUMN IF NOT EXISTS annotation_id VARCHAR;
ALTER TABLE source_rows ADD COLUMN IF NOT EXISTS response_id VARCHAR;
ALTER TABLE source_rows ADD COLUMN IF NOT EXISTS text VARCHAR;
ALTER TABLE source_rows ADD COLUMN IF NOT EXISTS response VARCHAR;
ALTER TABLE source_rows ADD COLUMN IF NOT EXISTS rank VARCHAR;
ALTER TABLE source_rows ADD COLUMN IF NOT EXISTS dropped VARCHAR;
ALTER TABLE source_rows ADD COLUMN IF NOT EXISTS drop_reason VARCHAR;
ALTER TABLE source_rows ADD COLUMN IF NOT EXISTS edited_from VARCHAR;
