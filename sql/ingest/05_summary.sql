-- What a validated batch holds, for its summary (one row): rows in, skipped by reason and quarantined by
-- rule (most first), annotations to load, pairs, ties, identical texts, and the first quarantined entry.
CREATE OR REPLACE TEMP TABLE batch_counts AS
SELECT (SELECT count(*) FROM stage_parsed) AS rows_in,
       (SELECT list((skip_reason, n) ORDER BY n DESC, skip_reason)
        FROM (SELECT skip_reason, count(*) AS n FROM stage_parsed WHERE skip_reason IS NOT NULL GROUP BY ALL))
           AS skipped_by_reason,
       (SELECT list((rule, n) ORDER BY n DESC, rule) FROM (SELECT rule, count(*) AS n FROM stage_quarantine GROUP BY ALL))
           AS quarantined_by_rule,
       (SELECT count(*) FROM valid_annotations) AS loaded,
       c.pairs, c.ties, c.identical_texts,
       (SELECT format('line {}: {}', line, reason) FROM stage_quarantine ORDER BY entry LIMIT 1) AS first_quarantined
FROM stage_pair_counts c;

DROP TABLE stage_parsed;  -- the lines as read (the raw text of each): counted, and read again by nothing
SELECT * FROM batch_counts;
