-- Curated pairs in the layouts that TRL's RewardTrainer and RewardBench read. pairwise: prompt, chosen,
-- rejected, margin (the rank gap), plus id, weight, split and provenance. rewardbench: an evaluation set
-- (id, prompt, chosen, rejected, subset = curated-SPLIT). getvariable('split'): a split, or NULL for all.
CREATE OR REPLACE TEMP VIEW export_rows AS
SELECT annotation_id || '/' || chosen_id || '>' || rejected_id AS id,
       json_type(prompt) = 'ARRAY' AS prompt_is_messages, json_text(prompt) AS prompt_text,
       CASE WHEN json_type(prompt) = 'ARRAY' THEN from_json(prompt, '[{"role": "VARCHAR", "content": "VARCHAR"}]')
            ELSE [{'role': 'user', 'content': json_text(prompt)}] END AS prompt_messages,
       chosen_text, rejected_text, margin, weight, split, prompt_id, annotator_id
FROM pairs WHERE (getvariable('split') IS NULL OR split = getvariable('split'))
  AND annotation_id NOT IN (SELECT annotation_id FROM excluded_annotations);  -- prefpipe.contamination

-- The two layouts, each written with plain strings when every prompt is a string and as messages otherwise
-- (prompt = messages; in TRL's layout chosen/rejected = one assistant message), so a column never mixes
-- types. prefpipe/export.py picks one and names it export_out for sql/export/to_*.sql.
CREATE OR REPLACE TEMP VIEW export_has_messages AS SELECT coalesce(bool_or(prompt_is_messages), false) AS messages
FROM export_rows;

CREATE OR REPLACE TEMP VIEW export_pairwise_text AS
SELECT id, prompt_text AS prompt, chosen_text AS chosen, rejected_text AS rejected, margin, weight, split, prompt_id,
       annotator_id
FROM export_rows;

CREATE OR REPLACE TEMP VIEW export_pairwise_messages AS
SELECT id, prompt_messages AS prompt, [{'role': 'assistant', 'content': chosen_text}] AS chosen,
       [{'role': 'assistant', 'content': rejected_text}] AS rejected, margin, weight, split, prompt_id, annotator_id
FROM export_rows;

CREATE OR REPLACE TEMP VIEW export_rewardbench_text AS
SELECT id, prompt_text AS prompt, chosen_text AS chosen, rejected_text AS rejected, 'curated-' || split AS subset
FROM export_rows;

CREATE OR REPLACE TEMP VIEW export_rewardbench_messages AS
SELECT id, prompt_messages AS prompt, chosen_text AS chosen, rejected_text AS rejected, 'curated-' || split AS subset
FROM export_rows;
