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
-- What the model is: classifier (a reward model), dpo (a policy with its reference) or judge (a causal LM prompted
-- to choose; `judge` holds its settings: template, scoring, max_new_tokens). Rows of before 0.9 are filled in.
ALTER TABLE models ADD COLUMN IF NOT EXISTS kind VARCHAR;
ALTER TABLE models ADD COLUMN IF NOT EXISTS judge JSON;
UPDATE models SET kind = CASE WHEN reference IS NULL THEN 'classifier' ELSE 'dpo' END WHERE kind IS NULL;
