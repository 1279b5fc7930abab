-- What a clustering found: the forms new to the warehouse, and the clusters its prompts are in.
SELECT (SELECT count(*) FROM stage_new_prompts) AS new, (SELECT count(DISTINCT cluster_id) FROM stage_prompt_keys)
