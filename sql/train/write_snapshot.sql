-- The training annotations (train_annotations, sql/train/annotations.sql) to the Parquet file $1, in a stable order.
COPY (SELECT * FROM train_annotations ORDER BY annotation_id) TO $1 (FORMAT parquet)
