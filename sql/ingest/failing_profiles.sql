-- The response profiles that failed the GX suite (`failed`, a data frame registered by prefpipe.ingest).
CREATE OR REPLACE TEMP TABLE failing_profiles AS SELECT * FROM failed;
