-- Load one validated batch. Runs inside one transaction (the caller's BEGIN ... COMMIT), so the
-- warehouse holds the whole batch or none of it. Annotations whose key is already in the
-- warehouse are replaced, with their responses and pairs.

CREATE OR REPLACE TEMP TABLE replaced_keys AS
SELECT annotation_id FROM annotations SEMI JOIN valid_annotations USING (annotation_id);

DELETE FROM pairs WHERE annotation_id IN (SELECT annotation_id FROM replaced_keys);
DELETE FROM responses WHERE annotation_id IN (SELECT annotation_id FROM replaced_keys);
DELETE FROM annotations WHERE annotation_id IN (SELECT annotation_id FROM replaced_keys);

INSERT INTO annotations
SELECT annotation_id, getvariable('batch_id'), line, prompt_id, prompt, annotator_id, metadata
FROM valid_annotations;

INSERT INTO responses
SELECT annotation_id, response_id, position, text, rank, dropped, drop_reason, edited_from
FROM valid_responses;

INSERT INTO pairs
SELECT annotation_id, prompt_id, annotator_id, chosen_id, rejected_id, margin, weight, split,
       getvariable('batch_id')
FROM stage_pairs;

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
