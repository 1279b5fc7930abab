-- OpenAssistant exports: message trees {message_tree_id, prompt: {..., replies: [...]}} (one tree per
-- line) or flat messages {message_id, parent_id, role, text, rank, ...} (one message per line).
-- Every prompter message, at any depth, whose assistant replies include at least two comparable ones
-- is one annotation: prompt = the conversation from the root to it; responses = its assistant
-- replies, rank = OASST rank + 1; a reply with null rank, deleted, or review_result false is dropped
-- with that reason. prompt_id and the key are the prompter message's id. Deleted prompter messages and
-- those with fewer than two comparable replies are skipped (counted), not quarantined.

-- Every message once, with its parent. A tree is parsed level by level: each message's JSON once.
CREATE OR REPLACE TEMP TABLE oasst_messages AS
WITH RECURSIVE tree(line, tree_id, parent_id, depth, m) AS (
    SELECT line, t.message_tree_id, NULL::VARCHAR, 1, t.prompt
    FROM (SELECT line, from_json(raw, '{"message_tree_id": "VARCHAR", "prompt": {"message_id": "VARCHAR",
              "role": "VARCHAR", "text": "JSON", "rank": "JSON", "deleted": "JSON", "review_result": "JSON",
              "lang": "VARCHAR", "replies": ["JSON"]}}') AS t
          FROM records WHERE json_type(raw, '$.prompt') = 'OBJECT')
    UNION ALL
    SELECT line, tree_id, parent_id, depth, from_json(reply, '{"message_id": "VARCHAR", "role": "VARCHAR",
               "text": "JSON", "rank": "JSON", "deleted": "JSON", "review_result": "JSON", "lang": "VARCHAR",
               "replies": ["JSON"]}')
    FROM (SELECT line, tree_id, m.message_id AS parent_id, depth + 1 AS depth, unnest(m.replies) AS reply
          FROM tree WHERE len(m.replies) > 0)
), messages AS (
    SELECT line, depth, parent_id, tree_id, m.message_id, m.role, m.text, m.rank, m.deleted, m.review_result, m.lang
    FROM tree
    UNION ALL  -- the flat export: one message per line, its parent named by parent_id
    SELECT line, 1, j.parent_id, j.message_tree_id, j.message_id, j.role, j.text, j.rank, j.deleted,
           j.review_result, j.lang
    FROM (SELECT line, from_json(raw, '{"message_id": "VARCHAR", "parent_id": "VARCHAR", "message_tree_id": "VARCHAR",
              "role": "VARCHAR", "text": "JSON", "rank": "JSON", "deleted": "JSON", "review_result": "JSON",
              "lang": "VARCHAR"}') AS j
          FROM records WHERE json_type(raw, '$.prompt') IS DISTINCT FROM 'OBJECT' AND json_exists(raw, '$.message_id'))
)
SELECT line, depth, parent_id, message_id, role, text, rank, tree_id AS message_tree_id, lang,
       coalesce(deleted::VARCHAR = 'true', false) AS deleted,
       coalesce(review_result::VARCHAR = 'false', false) AS failed_review
FROM messages;

-- The conversation from the root to every message reachable from one.
CREATE OR REPLACE TEMP TABLE oasst_conversations AS
WITH RECURSIVE conversations(message_id, prompt) AS (
    SELECT message_id, [{'role': CASE role WHEN 'prompter' THEN 'user' ELSE role END, 'content': text}]
    FROM oasst_messages WHERE parent_id IS NULL
    UNION ALL
    SELECT m.message_id,
           list_append(c.prompt, {'role': CASE m.role WHEN 'prompter' THEN 'user' ELSE m.role END, 'content': m.text})
    FROM conversations c JOIN oasst_messages m ON m.parent_id = c.message_id
)
SELECT * FROM conversations;

CREATE OR REPLACE TEMP TABLE oasst_replies AS
SELECT parent_id, message_id, text, deleted, failed_review,
       CASE WHEN json_kind(rank) = 'integer' THEN (rank::VARCHAR::HUGEINT + 1)::JSON ELSE rank END AS rank,
       CASE WHEN deleted THEN 'deleted' WHEN failed_review THEN 'failed review'
            WHEN rank IS NULL THEN 'unranked' END AS drop_reason
FROM oasst_messages WHERE role = 'assistant';

CREATE OR REPLACE TEMP TABLE oasst_prompts AS
WITH conversation AS (
    SELECT message_id, to_json(prompt) AS prompt FROM oasst_conversations
), replies AS (
    SELECT parent_id, count(*) FILTER (drop_reason IS NULL) AS comparable,
           to_json(list(json_object('response_id', message_id, 'text', text, 'rank', rank,
                                    'dropped', drop_reason IS NOT NULL, 'drop_reason', drop_reason)
                        ORDER BY rank::VARCHAR::HUGEINT NULLS LAST, message_id)) AS responses
    FROM oasst_replies GROUP BY parent_id
)
SELECT m.line, row_number() OVER (PARTITION BY m.line ORDER BY m.depth, m.message_id) AS sub,
       m.message_id, m.message_tree_id, m.lang, m.deleted, c.prompt, coalesce(r.comparable, 0) AS comparable,
       r.responses
FROM oasst_messages m
LEFT JOIN conversation c USING (message_id)
LEFT JOIN replies r ON r.parent_id = m.message_id
WHERE m.role = 'prompter';

CREATE OR REPLACE TEMP TABLE adapted AS
SELECT line, sub,
       json_object('prompt_id', message_id, 'annotation_id', message_id, 'annotator_id', 'oasst',
                   'prompt', prompt, 'responses', responses,
                   'metadata', json_object('message_tree_id', message_tree_id, 'lang', lang))::VARCHAR AS raw,
       CASE WHEN prompt IS NULL AND NOT deleted AND comparable >= 2 THEN 'oasst_parent' END AS read_rule,
       CASE WHEN prompt IS NULL AND NOT deleted AND comparable >= 2
            THEN 'the message''s parent chain does not reach a root message in this file' END AS read_error,
       CASE WHEN deleted THEN 'deleted prompter message'
            WHEN comparable < 2 THEN 'prompter message with fewer than two comparable replies' END AS skip_reason
FROM oasst_prompts
UNION ALL
SELECT line, 0, raw, 'oasst', 'expected a message tree {message_tree_id, prompt: {...}} or a message '
                              '{message_id, parent_id, role, text}', NULL
FROM records WHERE json_type(raw, '$.prompt') IS DISTINCT FROM 'OBJECT' AND NOT json_exists(raw, '$.message_id');
