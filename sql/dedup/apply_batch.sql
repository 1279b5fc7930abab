-- The validated batch's annotations take their prompt's form and their cluster's split (stage_entry_keys): the
-- table made again with them (at 1M annotations, faster than an UPDATE of every row).
CREATE OR REPLACE TEMP TABLE valid_annotations AS
SELECT v.* REPLACE (k.prompt_key AS prompt_key, split_of(k.split_key) AS split)
FROM valid_annotations v LEFT JOIN stage_entry_keys k USING (entry);  -- LEFT: no annotation is ever lost here
