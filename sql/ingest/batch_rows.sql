-- The rows of the batch $1 (a file's sha256), if it was ingested before.
SELECT rows_in FROM batches WHERE batch_id = $1
