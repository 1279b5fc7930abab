-- Registered evaluation sets. A changed file is a new version (its sha256), never an overwrite: each
-- version is a stored copy under $PREFPIPE_HOME/evalsets/NAME/. The nightly run scores the latest version.
CREATE TABLE IF NOT EXISTS evalsets (
    name          VARCHAR NOT NULL,
    version       VARCHAR NOT NULL,  -- sha256 of the file
    path          VARCHAR NOT NULL,  -- the stored copy
    source        VARCHAR NOT NULL,  -- where it was registered from (a file, or warehouse:SPLIT)
    format        VARCHAR NOT NULL,  -- rewardbench | rewardbench2
    examples      BIGINT  NOT NULL,
    subsets       VARCHAR[] NOT NULL,
    registered_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
