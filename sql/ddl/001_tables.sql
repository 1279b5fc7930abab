-- The warehouse. Idempotent: run on every connect. No primary keys: the loader keeps keys unique
-- (replace-by-key inside one transaction), and unindexed tables load several times faster.
CREATE TABLE IF NOT EXISTS batches (
    batch_id      VARCHAR NOT NULL,  -- sha256 of the file's bytes
    source        VARCHAR NOT NULL,
    format        VARCHAR NOT NULL,
    rows_in       BIGINT  NOT NULL,  -- = loaded + quarantined + skipped
    loaded        BIGINT  NOT NULL,
    replaced      BIGINT  NOT NULL,  -- loaded annotations whose key was already in the warehouse
    quarantined   BIGINT  NOT NULL,
    skipped       BIGINT  NOT NULL,
    pairs         BIGINT  NOT NULL,
    ties          BIGINT  NOT NULL,
    identical_texts BIGINT NOT NULL,
    ingested_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS annotations (
    annotation_seq BIGINT NOT NULL,  -- a number for joins inside the warehouse; never reused
    annotation_id VARCHAR NOT NULL,  -- the annotation key
    batch_id      VARCHAR NOT NULL,
    line          BIGINT  NOT NULL,
    prompt_id     VARCHAR NOT NULL,
    prompt        JSON    NOT NULL,  -- a JSON string, or a list of {role, content} messages
    annotator_id  VARCHAR NOT NULL,
    metadata      JSON,
    split         VARCHAR NOT NULL   -- train / validation / test, by a stable hash (md5) of prompt_id
);

CREATE TABLE IF NOT EXISTS responses (
    annotation_seq BIGINT NOT NULL,
    position      INTEGER NOT NULL,  -- 1-based place in the annotation's list
    response_id   VARCHAR NOT NULL,
    text          VARCHAR NOT NULL,
    rank          BIGINT,            -- NULL: not ranked, so not compared
    dropped       BOOLEAN NOT NULL,
    drop_reason   VARCHAR,
    edited_from   VARCHAR            -- set on the one human edit: best of its annotation
);

CREATE TABLE IF NOT EXISTS quarantine (
    batch_id      VARCHAR NOT NULL,
    source        VARCHAR NOT NULL,
    line          BIGINT  NOT NULL,
    annotation_id VARCHAR,           -- when it could be read
    rule          VARCHAR NOT NULL,  -- the first rule broken
    reason        VARCHAR NOT NULL,  -- every rule broken, with field and value
    raw           VARCHAR,
    quarantined_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The pairs, stored narrow (numbers only: a million annotations make ~15 million pairs); the view
-- `pairs` (002_pairs_view.sql) gives them with ids, texts and split.
CREATE TABLE IF NOT EXISTS comparisons (
    annotation_seq    BIGINT  NOT NULL,
    chosen_position   INTEGER NOT NULL,
    rejected_position INTEGER NOT NULL,
    margin            INTEGER NOT NULL,  -- rank gap; the edit counts as rank 0
    weight            DOUBLE  NOT NULL   -- 1 / pairs of the annotation: each annotation weighs 1
);
