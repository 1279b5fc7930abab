-- Near-duplicate prompt clusters (prefpipe.dedup). A prompt is its normalised form (NFKC, case-folded,
-- punctuation stripped, whitespace collapsed; a message list by its user turns); a cluster is a connected
-- component of equal forms and MinHash LSH pairs verified by their true Jaccard. The split of a pair is its
-- prompt's cluster's when it was loaded (a hash of the split_key of the cluster's oldest prompt), and never
-- changes after.
CREATE TABLE IF NOT EXISTS prompt_clusters (
    prompt_key  VARCHAR NOT NULL,  -- md5 of the normalised form (16 hex)
    prompt_seq  BIGINT  NOT NULL,  -- order first seen; the key in the LSH index
    normalised  VARCHAR NOT NULL,
    cluster_id  VARCHAR NOT NULL,  -- prompt_key of the cluster's oldest prompt
    split_key   VARCHAR NOT NULL,  -- the prompt_id first seen with the form; the cluster's split is its hash
    batch_id    VARCHAR NOT NULL   -- where the form was first seen
);
-- A batch whose prompts joined two clusters: the younger one is merged into the older one. Its pairs keep
-- their split; the batch's own pairs take the older cluster's. Where the splits differ, a conflict.
CREATE TABLE IF NOT EXISTS cluster_merges (
    batch_id          VARCHAR NOT NULL,
    cluster_id        VARCHAR NOT NULL,  -- the older cluster, which remains
    split             VARCHAR NOT NULL,
    merged_cluster_id VARCHAR NOT NULL,
    merged_split      VARCHAR NOT NULL,
    merged_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The LSH index: each form's bucket in each band (its MinHash rows hashed together); forms that share a bucket
-- are candidates, kept when their true Jaccard reaches the threshold.
CREATE TABLE IF NOT EXISTS prompt_bands (
    prompt_seq BIGINT NOT NULL, band UTINYINT NOT NULL, bucket UBIGINT NOT NULL
);
-- The clustering's parameters (one row): a warehouse clustered with others is clustered again.
CREATE TABLE IF NOT EXISTS cluster_settings (
    ngram INTEGER NOT NULL, permutations INTEGER NOT NULL, bands INTEGER NOT NULL, threshold DOUBLE NOT NULL
);
ALTER TABLE annotations ADD COLUMN IF NOT EXISTS prompt_key VARCHAR;  -- NULL: not yet clustered
-- The MinHash signature of the buckets (prefpipe.minhash.NAME); the clusters made before 0.10 were rensa's.
ALTER TABLE cluster_settings ADD COLUMN IF NOT EXISTS signature VARCHAR;
UPDATE cluster_settings SET signature = 'rensa' WHERE signature IS NULL;

-- Matches of evaluation-set examples in the warehouse (prefpipe.contamination): the example's prompt equals a
-- warehouse prompt once normalised (exact), is a verified near-duplicate of one (near; similarity = Jaccard),
-- or one of its completions shares a 13-gram with a warehouse response (ngram13; similarity = the share of
-- the example's 13-grams found). A prompt match names the prompt's form (every annotation of it matches).
CREATE TABLE IF NOT EXISTS contamination (
    evalset       VARCHAR NOT NULL,
    version       VARCHAR NOT NULL,
    example_id    VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,  -- exact | near | ngram13
    prompt_key    VARCHAR,           -- exact, near: the warehouse prompt
    annotation_id VARCHAR,           -- ngram13: the annotation and response
    response_id   VARCHAR,
    batch_id      VARCHAR NOT NULL,  -- the batch the prompt was first seen in, or the response's
    similarity    DOUBLE  NOT NULL,
    found_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Each set version checked against the whole warehouse (when registered, or once on upgrading).
CREATE TABLE IF NOT EXISTS contamination_checks (
    evalset VARCHAR NOT NULL, version VARCHAR NOT NULL, matches BIGINT NOT NULL, checked_at TIMESTAMPTZ NOT NULL
);
-- What `prefpipe train --exclude-evalset` left out of a model's data.
ALTER TABLE models ADD COLUMN IF NOT EXISTS excluded JSON;

CREATE OR REPLACE VIEW clusters AS
SELECT c.cluster_id, count(DISTINCT c.prompt_key) AS prompts, count(a.annotation_seq) AS annotations,
       list(DISTINCT a.split ORDER BY a.split) FILTER (a.split IS NOT NULL) AS splits,
       min(c.normalised)[:80] AS example
FROM prompt_clusters c LEFT JOIN annotations a USING (prompt_key)
GROUP BY c.cluster_id;

-- Merges that joined clusters of different splits, with the pairs now in each split.
CREATE OR REPLACE VIEW split_conflicts AS
SELECT m.batch_id[:12] AS batch, m.cluster_id, m.split, m.merged_cluster_id, m.merged_split, m.merged_at,
       (SELECT count(*) FROM comparisons p JOIN annotations a USING (annotation_seq)
        JOIN prompt_clusters c USING (prompt_key) WHERE c.cluster_id = m.cluster_id) AS cluster_pairs
FROM cluster_merges m WHERE m.split <> m.merged_split;
