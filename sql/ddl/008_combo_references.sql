-- 0.6: a quantile per component model, an explicit choice for prompts with too few references, and
-- references sampled from a reference LM (prefpipe.transforms). Added to a warehouse made before 0.6.
ALTER TABLE combos ADD COLUMN IF NOT EXISTS quantiles DOUBLE[];      -- one per model; null: `quantile` for each
ALTER TABLE combos ADD COLUMN IF NOT EXISTS too_few VARCHAR;         -- global | error; null: global (as before)
ALTER TABLE combos ADD COLUMN IF NOT EXISTS reference_lm VARCHAR;    -- with "references" = samples
ALTER TABLE combos ADD COLUMN IF NOT EXISTS samples INTEGER;
ALTER TABLE combos ADD COLUMN IF NOT EXISTS seed INTEGER;
