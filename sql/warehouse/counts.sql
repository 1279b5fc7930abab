-- What `prefpipe stats` counts first: the rows of the warehouse's main tables.
SELECT (SELECT count(*) FROM batches) AS batches, (SELECT count(*) FROM annotations) AS annotations,
       (SELECT count(*) FROM responses) AS responses, (SELECT count(*) FROM comparisons) AS pairs,
       (SELECT count(*) FROM quarantine) AS quarantine
