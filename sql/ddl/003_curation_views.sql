-- Views for the curator. Idempotent.

-- What each batch brought, newest first.
CREATE OR REPLACE VIEW batch_counts AS
SELECT batch_id[:12] AS batch, source, format, rows_in, loaded, replaced, quarantined, skipped,
       pairs, ties, identical_texts, ingested_at
FROM batches ORDER BY ingested_at DESC;

-- Quarantined annotations per batch and rule.
CREATE OR REPLACE VIEW quarantine_by_rule AS
SELECT batch_id[:12] AS batch, source, rule, count(*) AS annotations
FROM quarantine GROUP BY ALL ORDER BY batch, annotations DESC;

-- Two annotators judged the same two responses (matched by response_id within a prompt).
CREATE OR REPLACE VIEW judged_twice AS
SELECT a.prompt_id, a.annotator_id AS annotator_a, b.annotator_id AS annotator_b,
       a.chosen_id AS a_chosen, a.rejected_id AS a_rejected,
       a.chosen_id = b.chosen_id AS agree,
       a.annotation_id AS annotation_a, b.annotation_id AS annotation_b
FROM pairs a JOIN pairs b
  ON a.prompt_id = b.prompt_id AND a.annotator_id < b.annotator_id
 AND least(a.chosen_id, a.rejected_id) = least(b.chosen_id, b.rejected_id)
 AND greatest(a.chosen_id, a.rejected_id) = greatest(b.chosen_id, b.rejected_id);

-- How often two annotators order the same pair the same way (pairs both ranked strictly).
CREATE OR REPLACE VIEW annotator_agreement AS
SELECT annotator_a, annotator_b, count(DISTINCT prompt_id) AS prompts, count(*) AS shared_pairs,
       count(*) FILTER (agree) AS agreed, round(avg(agree::INTEGER), 4) AS agreement
FROM judged_twice GROUP BY ALL ORDER BY shared_pairs DESC;

-- Pairs that one annotator ordered one way and another the other way.
CREATE OR REPLACE VIEW contradictory_pairs AS
SELECT prompt_id, a_chosen AS response_a, a_rejected AS response_b,
       annotator_a AS prefers_a, annotator_b AS prefers_b, annotation_a, annotation_b
FROM judged_twice WHERE NOT agree;
