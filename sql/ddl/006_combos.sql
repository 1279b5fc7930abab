-- Registered combinations of reward models (`prefpipe combos add`). The nightly evaluation scores each
-- active one like a model, under its name (a combination and a model never share a name).
CREATE TABLE IF NOT EXISTS combos (
    name            VARCHAR NOT NULL,
    models          VARCHAR[] NOT NULL,  -- the models' ids
    weights         DOUBLE[] NOT NULL,   -- one per model
    transform       VARCHAR NOT NULL,    -- lsc | raw | centered
    "references"    VARCHAR NOT NULL,    -- prompt | candidates | warehouse: where r_ref comes from
    quantile        DOUBLE NOT NULL,     -- r_ref = this quantile of the prompt's reference rewards
    method          VARCHAR NOT NULL,    -- empirical | normal
    min_references  INTEGER NOT NULL,    -- fewer: the global quantile, flagged
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    active          BOOLEAN NOT NULL DEFAULT true
);
