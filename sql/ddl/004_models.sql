-- The model registry: every trained (or, later, registered) reward model and what it was trained on.
CREATE TABLE IF NOT EXISTS models (
    model_id        VARCHAR NOT NULL,  -- unique; the folder name under data/models by default
    path            VARCHAR NOT NULL,  -- a Hugging Face folder (AutoModelForSequenceClassification)
    base            VARCHAR NOT NULL,  -- the backbone it started from
    loss            VARCHAR,
    hyperparameters JSON,              -- the whole TrainConfig
    batch_ids       VARCHAR[],         -- the batches of the data snapshot
    pairs           BIGINT,            -- training pairs
    data_hash       VARCHAR,           -- sha256 of the snapshot's content
    metrics         JSON,              -- accuracy, log loss, ECE per held-out split
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    active          BOOLEAN NOT NULL DEFAULT true  -- scored by the nightly evaluation
);
-- Set for a DPO policy: its reference causal LM; the policy is scored by its implicit reward.
ALTER TABLE models ADD COLUMN IF NOT EXISTS reference VARCHAR;
