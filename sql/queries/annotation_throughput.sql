-- Annotation throughput per week: annotations, annotators, annotations per annotator, pairs, ties, drops
-- and edits. An annotation's week is its metadata.annotated_at (an ISO time) when the batch gives one,
-- else the week its batch was ingested.
WITH dated AS (
    SELECT s.*, coalesce(try_cast(json_extract_string(a.metadata, '$.annotated_at') AS TIMESTAMPTZ),
                         b.ingested_at) AS annotated_at
    FROM annotation_summary s JOIN annotations a USING (annotation_seq) JOIN batches b ON b.batch_id = a.batch_id
)
SELECT date_trunc('week', annotated_at)::DATE AS week, count(*) AS annotations,
       count(DISTINCT annotator_id) AS annotators, round(count(*) / count(DISTINCT annotator_id), 1) AS per_annotator,
       sum(pairs) AS pairs, sum(ties) AS ties, sum(drops) AS drops, sum(edits) AS edits
FROM dated
GROUP BY ALL
ORDER BY week;
