-- Curated pairs in the layout that TRL's RewardTrainer and RewardBench read: prompt, chosen,
-- rejected, margin (plus id, split, subset-free provenance). Plain strings when every prompt is a
-- string; otherwise the conversational layout (prompt = messages, chosen/rejected = one assistant
-- message) for all rows, so that a column never mixes types. getvariable('split'): a split or NULL.
CREATE OR REPLACE TEMP VIEW export_source AS
SELECT annotation_id || '/' || chosen_id || '>' || rejected_id AS id, prompt, chosen_text, rejected_text, margin,
       weight, split, prompt_id, annotator_id, annotation_id
FROM pairs WHERE getvariable('split') IS NULL OR split = getvariable('split');

CREATE OR REPLACE TEMP VIEW export_rows AS
WITH layout AS (SELECT bool_or(json_type(prompt) = 'ARRAY') AS conversational FROM export_source)
SELECT id,
       CASE WHEN conversational THEN NULL ELSE json_text(prompt) END AS prompt_text,
       CASE WHEN NOT conversational THEN NULL WHEN json_type(prompt) = 'ARRAY'
            THEN from_json(prompt, '[{"role": "VARCHAR", "content": "VARCHAR"}]')
            ELSE [{'role': 'user', 'content': json_text(prompt)}] END AS prompt_messages,
       chosen_text, rejected_text, conversational, margin, weight, split, prompt_id, annotator_id, annotation_id
FROM export_source, layout;
