-- Load one validated batch. Runs inside one transaction (the caller's BEGIN ... COMMIT), so the
-- warehouse holds the whole batch or none of it. Annotations whose key is already in the
-- warehouse are replaced, with their responses and pairs.

CREATE OR REPLACE TEMP TABLE replaced_keys AS
SELECT annotation_seq FROM annotations SEMI JOIN valid_annotations USING (annotation_id);

DELETE FROM contamination WHERE annotation_id IN (
    SELECT annotation_id FROM annotations WHERE annotation_seq IN (SELECT annotation_seq FROM replaced_keys));
DELETE FROM comparisons WHERE annotation_seq IN (SELECT annotation_seq FROM replaced_keys);
DELETE FROM responses WHERE annotation_seq IN (SELECT annotation_seq FROM replaced_keys);
DELETE FROM annotations WHERE annotation_seq IN (SELECT annotation_seq FROM replaced_keys);

CREATE OR REPLACE TEMP TABLE load_keys AS
SELECT entry, (SELECT coalesce(max(annotation_seq), 0) FROM annotations) + row_number() OVER (ORDER BY entry)
       AS annotation_seq
FROM valid_annotations;

INSERT INTO annotations (annotation_seq, annotation_id, batch_id, line, prompt_id, prompt, annotator_id, metadata,
                         split, prompt_key)
SELECT k.annotation_seq, v.annotation_id, getvariable('batch_id'), v.line, v.prompt_id, v.prompt,
       v.annotator_id, v.metadata, v.split, v.prompt_key
FROM valid_annotations v JOIN load_keys k USING (entry);

-- The batch's prompt clusters (prefpipe.dedup): younger clusters it joined to older ones are renamed, its new
-- forms added.
INSERT INTO cluster_merges (batch_id, cluster_id, split, merged_cluster_id, merged_split)
SELECT getvariable('batch_id'), cluster_id, split_of(split_key), merged_cluster_id, split_of(merged_split_key)
FROM stage_merges;
UPDATE prompt_clusters SET cluster_id = m.cluster_id FROM stage_merges m
WHERE prompt_clusters.cluster_id = m.merged_cluster_id;
INSERT INTO prompt_clusters
SELECT prompt_key, prompt_seq, normalised, cluster_id, split_key, getvariable('batch_id') FROM stage_new_prompts;
INSERT INTO prompt_bands SELECT * FROM stage_bands;

INSERT INTO responses
SELECT k.annotation_seq, r.position, r.response_id, r.text, r.rank, r.dropped, r.drop_reason, r.edited_from
FROM valid_responses r JOIN load_keys k USING (entry);

INSERT INTO comparisons
SELECT k.annotation_seq, p.chosen_position, p.rejected_position, p.margin, p.weight
FROM stage_pairs p JOIN load_keys k USING (entry);

INSERT INTO contamination BY NAME  -- prefpipe.contamination
SELECT * REPLACE (coalesce(batch_id, getvariable('batch_id')) AS batch_id) FROM stage_contamination;

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
