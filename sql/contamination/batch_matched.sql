-- How many of the batch's prompts (by form) and responses (by annotation) match an evaluation set.
SELECT count(DISTINCT coalesce(prompt_key, annotation_id)) FROM stage_contamination
