-- Curated pairs in the layout that TRL's RewardTrainer and RewardBench read: prompt, chosen,
-- rejected, margin (plus id, weight, split and provenance). prefpipe/export.py writes plain strings
-- when every prompt is a string, otherwise the conversational layout (prompt = messages,
-- chosen/rejected = one assistant message) for all rows, so that a column never mixes types.
-- getvariable('split'): a split, or NULL for all.
CREATE OR REPLACE TEMP VIEW export_rows AS
SELECT annotation_id || '/' || chosen_id || '>' || rejected_id AS id,
       json_type(prompt) = 'ARRAY' AS prompt_is_messages, json_text(prompt) AS prompt_text,
       CASE WHEN json_type(prompt) = 'ARRAY' THEN from_json(prompt, '[{"role": "VARCHAR", "content": "VARCHAR"}]')
            ELSE [{'role': 'user', 'content': json_text(prompt)}] END AS prompt_messages,
       chosen_text, rejected_text, margin, weight, split, prompt_id, annotator_id
FROM pairs WHERE getvariable('split') IS NULL OR split = getvariable('split');
