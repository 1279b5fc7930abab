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

-- One row per loaded annotation: where it came from, K, drops, edits, ties and pairs.
CREATE OR REPLACE VIEW annotation_summary AS
WITH counted AS (
    SELECT annotation_seq, count(*) AS k, count(*) FILTER (dropped) AS drops,
           count(*) FILTER (edited_from IS NOT NULL) AS edits
    FROM responses GROUP BY annotation_seq
), tie_groups AS (  -- comparable responses sharing a rank: n of them make n(n-1)/2 ties
    SELECT annotation_seq, count(*) AS n FROM responses
    WHERE NOT dropped AND rank IS NOT NULL AND edited_from IS NULL GROUP BY annotation_seq, rank
), ties AS (
    SELECT annotation_seq, sum(n * (n - 1) // 2) AS ties FROM tie_groups GROUP BY annotation_seq
), paired AS (
    SELECT annotation_seq, count(*) AS pairs FROM comparisons GROUP BY annotation_seq
)
SELECT a.annotation_seq, a.annotation_id, a.prompt_id, a.annotator_id, b.source, b.format, c.k, c.drops, c.edits,
       coalesce(t.ties, 0) AS ties, coalesce(p.pairs, 0) AS pairs
FROM annotations a JOIN batches b USING (batch_id) JOIN counted c USING (annotation_seq)
LEFT JOIN ties t USING (annotation_seq) LEFT JOIN paired p USING (annotation_seq);

CREATE OR REPLACE VIEW source_stats AS
SELECT source, format, count(*) AS annotations, sum(pairs) AS pairs, sum(ties) AS ties, sum(drops) AS drops,
       sum(edits) AS edits, round(avg(k), 2) AS mean_k
FROM annotation_summary GROUP BY ALL ORDER BY annotations DESC, source;

CREATE OR REPLACE VIEW annotator_stats AS
SELECT annotator_id, count(*) AS annotations, sum(pairs) AS pairs, sum(ties) AS ties, sum(drops) AS drops,
       sum(edits) AS edits, round(avg(k), 2) AS mean_k
FROM annotation_summary GROUP BY ALL ORDER BY annotations DESC, annotator_id;

-- Every judgment of two comparable responses (ties included): verdict 'a' (response_a better), 'b'
-- or 'tie', with response_a < response_b so that judgments of the same two responses line up.
CREATE OR REPLACE VIEW judgments AS
WITH comparable AS (
    SELECT a.annotation_seq, a.prompt_id, a.annotator_id, r.response_id,
           CASE WHEN r.edited_from IS NOT NULL THEN 0 ELSE r.rank END AS rank
    FROM responses r JOIN annotations a USING (annotation_seq)
    WHERE NOT r.dropped AND (r.rank IS NOT NULL OR r.edited_from IS NOT NULL)
)
SELECT x.prompt_id, x.response_id AS response_a, y.response_id AS response_b, x.annotator_id, x.annotation_seq,
       CASE WHEN x.rank < y.rank THEN 'a' WHEN x.rank > y.rank THEN 'b' ELSE 'tie' END AS verdict
FROM comparable x JOIN comparable y ON x.annotation_seq = y.annotation_seq AND x.response_id < y.response_id;

-- The same two responses of a prompt judged more than once: counts of each verdict.
CREATE OR REPLACE VIEW judged_units AS
SELECT prompt_id, response_a, response_b, count(*) AS n,
       count(*) FILTER (verdict = 'a') AS n_a, count(*) FILTER (verdict = 'b') AS n_b,
       count(*) FILTER (verdict = 'tie') AS n_tie
FROM judgments GROUP BY ALL HAVING count(*) > 1;

-- Agreement where a prompt was judged more than once: the share of judgments that agree with their
-- unit's most common verdict, and Fleiss' kappa over the verdicts a / b / tie (units may have
-- different numbers of judgments: P_i = sum n_ij (n_ij - 1) / (n_i (n_i - 1))). Which response is
-- `a` is arbitrary, so chance agreement uses symmetric marginals: p_a = p_b = (n_a + n_b) / 2n.
CREATE OR REPLACE VIEW agreement AS
WITH totals AS (
    SELECT count(*) AS units, sum(n) AS judgments, sum(greatest(n_a, n_b, n_tie)) AS with_majority,
           avg((n_a * (n_a - 1) + n_b * (n_b - 1) + n_tie * (n_tie - 1)) / (n * (n - 1))) AS observed,
           2 * pow((sum(n_a) + sum(n_b)) / (2 * sum(n)), 2) + pow(sum(n_tie) / sum(n), 2) AS expected
    FROM judged_units
)
SELECT units, judgments, round(with_majority / judgments, 4) AS majority_share,
       round((observed - expected) / nullif(1 - expected, 0), 4) AS fleiss_kappa
FROM totals WHERE units > 0;
