-- The validated batch's annotations take their prompt's form and their cluster's split (stage_prompt_keys).
UPDATE valid_annotations SET prompt_key = k.prompt_key, split = split_of(k.split_key)
FROM stage_prompt_keys k WHERE valid_annotations.prompt::VARCHAR = k.prompt;
