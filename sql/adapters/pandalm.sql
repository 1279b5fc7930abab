-- PandaLM items {idx, instruction, input, response1, response2, annotator1..3}; each label is
-- 0 = tie, 1 = response1 better, 2 = response2 better. One annotation per item and annotator; a tie
-- gives equal ranks, so no pair. prompt = instruction, plus the input after a blank line. The same
-- prompt text gets the same prompt_id, and a response's id is a hash of its text, so the annotator
-- agreement views match judgments of the same two responses across items. A missing label is skipped.
CREATE OR REPLACE TEMP TABLE adapted AS
WITH items AS (
    SELECT line, from_json(raw, '{"idx": "JSON", "instruction": "JSON", "input": "JSON", "response1": "JSON",
                                  "response2": "JSON", "annotator1": "JSON", "annotator2": "JSON",
                                  "annotator3": "JSON"}') AS j
    FROM records
), judgments AS (
    SELECT line, j, unnest([1, 2, 3]) AS annotator,
           unnest([j.annotator1, j.annotator2, j.annotator3])::VARCHAR AS label,
           json_text(j.instruction) || CASE WHEN trim(coalesce(json_text(j.input), '')) <> ''
                                            THEN chr(10) || chr(10) || json_text(j.input) ELSE '' END AS prompt,
           'r-' || md5(j.response1::VARCHAR)[:12] AS id1,
           'r-' || md5(j.response2::VARCHAR)[:12] || CASE WHEN j.response1 = j.response2 THEN '-2' ELSE '' END AS id2
    FROM items
)
SELECT line, annotator AS sub,
       json_object('prompt_id', stable_id('pandalm', prompt), 'prompt', prompt,
                   'annotation_id', format('pandalm-{}/annotator{}', coalesce(json_text(j.idx), line::VARCHAR), annotator),
                   'annotator_id', 'annotator' || annotator,
                   'responses', [json_object('response_id', id1, 'text', j.response1,
                                             'rank', CASE label WHEN '2' THEN 2 ELSE 1 END),
                                 json_object('response_id', id2, 'text', j.response2,
                                             'rank', CASE label WHEN '1' THEN 2 ELSE 1 END)],
                   'metadata', json_object('idx', j.idx, 'label', label))::VARCHAR AS raw,
       CASE WHEN label IS NOT NULL AND label NOT IN ('0', '1', '2') THEN 'label' END AS read_rule,
       CASE WHEN label IS NOT NULL AND label NOT IN ('0', '1', '2')
            THEN format('annotator{}: must be 0 (tie), 1 or 2, got {}', annotator, label) END AS read_error,
       CASE WHEN label IS NULL THEN format('no label from annotator{}', annotator) END AS skip_reason
FROM judgments;
