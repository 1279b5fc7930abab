-- Load one validated batch. Runs inside one transaction (the caller's BEGIN ... COMMIT), so the
-- warehouse holds the whole batch or none of it. Annotations whose key is already in the
-- warehouse are replaced, with their responses and pairs.

CREATE OR REPLACE TEMP TABLE replaced_keys AS
SELECT annotation_seq FROM annotations SEMI JOIN valid_annotations USING (annotation_id);

DELETE FROM comparisons WHERE annotation_seq IN (SELECT annotation_seq FROM replaced_keys);
DELETE FROM responses WHERE annotation_seq IN (SELECT annotation_seq FROM replaced_keys);
DELETE FROM annotations WHERE annotation_seq IN (SELECT annotation_seq FROM replaced_keys);

CREATE OR REPLACE TEMP TABLE load_keys AS
SELECT entry, (SELECT coalesce(max(annotation_seq), 0) FROM annotations) + row_number() OVER (ORDER BY entry)
       AS annotation_seq
FROM valid_annotations;

INSERT INTO annotations
SELECT k.annotation_seq, v.annotation_id, getvariable('batch_id'), v.line, v.prompt_id, v.prompt,
       v.annotator_id, v.metadata, v.split
FROM valid_annotations v JOIN load_keys k USING (entry);

INSERT INTO responses
SELECT k.annotation_seq, r.position, r.response_id, r.text, r.rank, r.dropped, r.drop_reason, r.edited_from
FROM valid_responses r JOIN load_keys k USING (entry);

INSERT INTO comparisons
SELECT k.annotation_seq, p.chosen_position, p.rejected_position, p.margin, p.weight
FROM stage_pairs p JOIN load_keys k USING (entry);

INSERT INTO quarantine (batch_id, source, line, annotation_id, rule, reason, raw)
SELECT getvariable('batch_id'), getvariable('source'), line, annotation_id, rule, reason, raw
FROM stage_quarantine;

INSERT INTO batches (batch_id, source, format, rows_in, loaded, replaced, quarantined, skipped,
                     pairs, ties, identical_texts)
SELECT getvariable('batch_id'), getvariable('source'), getvariable('format'),
       getvariable('rows_in'), (SELECT count(*) FROM valid_annotations),
       (SELECT count(*) FROM replaced_keys), (SELECT count(*) FROM stage_quarantine),
       getvariable('skipped'), pairs, ties, identical_texts
FROM stage_pair_counts;
