-- Several responses with numeric scores instead of ranks (UltraFeedback, HelpSteer):
-- {prompt (or instruction), completions: [{response (or text), score (or overall_score)}], id?}.
-- Higher score = better rank (dense: 9, 9, 7 -> 1, 1, 2); equal scores tie; a missing score leaves the
-- response unranked. A score that is not a number quarantines the annotation. The key is `id` or a
-- hash of the row; prompt_id a hash of the prompt; response ids are the places 1..K unless given.
CREATE OR REPLACE TEMP TABLE adapted AS
WITH rows AS (
    SELECT line, raw, j, coalesce(j.prompt, j.instruction) AS prompt,
           list_transform(j.completions, lambda c: coalesce(c.score, c.overall_score)) AS scores
    FROM (SELECT line, raw, from_json(raw, '{"id": "JSON", "prompt_id": "JSON", "prompt": "JSON", "instruction": "JSON",
               "completions": [{"response_id": "JSON", "response": "JSON", "text": "JSON", "score": "JSON",
                                "overall_score": "JSON"}]}') AS j FROM records)
), scored AS (
    SELECT *, list_transform(list_filter(scores, lambda s: json_kind(s) IN ('integer', 'decimal')),
                             lambda s: s::VARCHAR::DOUBLE) AS numbers,
           list_filter(list_transform(scores, lambda s, i: CASE WHEN json_kind(s) NOT IN ('integer', 'decimal', 'missing')
               THEN format('completions[{}].score: must be a number, got {}', i, json_kind(s)) END),
               lambda e: e IS NOT NULL) AS errors
    FROM rows
)
SELECT line, 0 AS sub,
       json_object('prompt_id', coalesce(json_text(j.prompt_id), stable_id('prompt', prompt)), 'prompt', prompt,
                   'annotation_id', coalesce(json_text(j.id), stable_id('ratings', raw)),
                   'responses', to_json(list_transform(j.completions, lambda c, i: json_object(
                       'response_id', coalesce(json_text(c.response_id), i::VARCHAR),
                       'text', coalesce(c.response, c.text),
                       'rank', CASE WHEN json_kind(scores[i]) IN ('integer', 'decimal') THEN
                           1 + len(list_distinct(list_filter(numbers, lambda n: n > scores[i]::VARCHAR::DOUBLE)))
                           END))),
                   'metadata', json_object('scores', scores))::VARCHAR AS raw,
       CASE WHEN len(errors) > 0 THEN 'score' END AS read_rule,
       CASE WHEN len(errors) > 0 THEN array_to_string(errors, '; ') END AS read_error,
       NULL AS skip_reason
FROM scored;
