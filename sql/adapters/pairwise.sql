-- The preference-pair layout of TRL and RewardBench: {prompt, chosen, rejected, id?, subset?, margin?}.
-- prompt and answers may be strings or message lists (an answer list's last message is the answer).
-- Rows with only chosen/rejected conversations take the prompt from their shared prefix. chosen is
-- rank 1; rejected is rank 1 + margin when margin is a whole number >= 1 (so the pair keeps its margin),
-- else rank 2. The key is `id`, or a hash of the row; prompt_id a hash of the prompt.
CREATE OR REPLACE TEMP TABLE adapted AS
WITH rows AS (
    SELECT line, raw, j, json_kind(j.prompt) AS prompt_kind, json_kind(j.chosen) AS chosen_kind,
           json_kind(j.rejected) AS rejected_kind
    FROM (SELECT line, raw, from_json(raw, '{"id": "JSON", "prompt": "JSON", "chosen": "JSON", "rejected": "JSON",
                                             "subset": "JSON", "margin": "JSON"}') AS j FROM records)
), parts AS (
    SELECT line, raw, j, chosen_kind, rejected_kind,
           CASE WHEN prompt_kind <> 'missing' THEN j.prompt
                WHEN chosen_kind = 'list' THEN to_json(from_json(j.chosen, '["JSON"]')[:-2]) END AS prompt,
           prompt_kind = 'missing' AND chosen_kind = 'list' AND rejected_kind = 'list'
               AND from_json(j.chosen, '["JSON"]')[:-2] IS DISTINCT FROM from_json(j.rejected, '["JSON"]')[:-2]
               AS prefix_differs,
           CASE chosen_kind WHEN 'list' THEN json_extract(j.chosen, '$[#-1].content') ELSE j.chosen END AS chosen,
           CASE rejected_kind WHEN 'list' THEN json_extract(j.rejected, '$[#-1].content') ELSE j.rejected END AS rejected,
           CASE WHEN json_kind(j.margin) = 'integer' AND j.margin::VARCHAR::BIGINT >= 1
                THEN 1 + j.margin::VARCHAR::HUGEINT ELSE 2 END AS rejected_rank  -- too large: quarantined by rank
    FROM rows
)
SELECT line, 0 AS sub,
       json_object('prompt_id', stable_id('prompt', prompt), 'prompt', prompt,
                   'annotation_id', coalesce(json_text(j.id), stable_id('pair', raw)),
                   'responses', [json_object('response_id', 'chosen', 'text', chosen, 'rank', 1),
                                 json_object('response_id', 'rejected', 'text', rejected, 'rank', rejected_rank)],
                   'metadata', json_object('subset', j.subset, 'margin', j.margin))::VARCHAR AS raw,
       CASE WHEN chosen_kind NOT IN ('string', 'list') OR rejected_kind NOT IN ('string', 'list') THEN 'pairwise'
            WHEN prefix_differs THEN 'prompt_mismatch' END AS read_rule,
       CASE WHEN chosen_kind NOT IN ('string', 'list') OR rejected_kind NOT IN ('string', 'list')
            THEN format('chosen and rejected must be strings or message lists, got {} and {}', chosen_kind, rejected_kind)
            WHEN prefix_differs THEN 'chosen and rejected conversations differ before their last message' END
           AS read_error,
       NULL AS skip_reason
FROM parts;
