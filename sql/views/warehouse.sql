-- The warehouse tables, as read from their latest Parquet copy (getvariable('tables'), written by
-- prefpipe.lake.publish_tables after every ingest, training run, registry change and nightly run).
-- The warehouse's pairs and curation views (sql/ddl/002, 003) are then defined over these.
CREATE OR REPLACE VIEW batches AS SELECT * FROM read_parquet(getvariable('tables') || '/batches.parquet');
CREATE OR REPLACE VIEW annotations AS SELECT * FROM read_parquet(getvariable('tables') || '/annotations.parquet');
CREATE OR REPLACE VIEW responses AS SELECT * FROM read_parquet(getvariable('tables') || '/responses.parquet');
CREATE OR REPLACE VIEW comparisons AS SELECT * FROM read_parquet(getvariable('tables') || '/comparisons.parquet');
CREATE OR REPLACE VIEW quarantine AS SELECT * FROM read_parquet(getvariable('tables') || '/quarantine.parquet');
CREATE OR REPLACE VIEW models AS SELECT * FROM read_parquet(getvariable('tables') || '/models.parquet');
CREATE OR REPLACE VIEW evalsets AS SELECT * FROM read_parquet(getvariable('tables') || '/evalsets.parquet');
