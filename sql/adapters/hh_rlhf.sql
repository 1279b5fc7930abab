-- Anthropic HH-RLHF rows {chosen, rejected}: two whole dialogues ("\n\nHuman: ...\n\nAssistant: ...").
-- Each is split at its last "\n\nAssistant:": the text before is the prompt (parsed into user and
-- assistant messages), the text after (stripped) the response; chosen is rank 1, rejected rank 2.
-- prompt_id is a hash of the shared conversation; the annotation key a hash of the row, so
-- re-ingesting a row adds nothing. Rows whose dialogues differ before the last Assistant turn, or
-- that have no Assistant turn, are quarantined. An empty last turn is an answer (min_chars 0).
CREATE OR REPLACE TEMP TABLE adapted AS
WITH rows AS (
    SELECT line, raw, json_kind(j.chosen) AS chosen_kind, json_kind(j.rejected) AS rejected_kind,
           json_text(j.chosen) AS chosen, json_text(j.rejected) AS rejected
    FROM (SELECT line, raw, from_json(raw, '{"chosen": "JSON", "rejected": "JSON"}') AS j FROM records)
), split AS (
    SELECT line, raw, chosen_kind, rejected_kind,
           contains(chosen, chr(10) || chr(10) || 'Assistant:') AS chosen_has_turn,
           contains(rejected, chr(10) || chr(10) || 'Assistant:') AS rejected_has_turn,
           regexp_extract(chosen, '^([\s\S]*)\n\nAssistant:([\s\S]*)$', ['prompt', 'answer']) AS c,
           regexp_extract(rejected, '^([\s\S]*)\n\nAssistant:([\s\S]*)$', ['prompt', 'answer']) AS r
    FROM rows
), checked AS (
    SELECT *, CASE
        WHEN chosen_kind <> 'string' OR rejected_kind <> 'string' THEN
            format('chosen and rejected must be dialogue strings, got {} and {}', chosen_kind, rejected_kind)
        WHEN NOT chosen_has_turn OR NOT rejected_has_turn THEN
            format('{} has no "\n\nAssistant:" turn',
                   CASE WHEN NOT chosen_has_turn AND NOT rejected_has_turn THEN 'neither dialogue'
                        WHEN NOT chosen_has_turn THEN 'chosen' ELSE 'rejected' END)
        WHEN c.prompt <> r.prompt THEN 'chosen and rejected differ before the last Assistant turn'
        END AS error
    FROM split
)
SELECT line, 0 AS sub,
       CASE WHEN error IS NOT NULL THEN raw ELSE json_object(
           'prompt_id', stable_id('hh', c.prompt), 'annotation_id', stable_id('hh', raw),
           'prompt', transcript_messages(c.prompt),
           'responses', [json_object('response_id', 'chosen', 'text', trim(c.answer), 'rank', 1),
                         json_object('response_id', 'rejected', 'text', trim(r.answer), 'rank', 2)])::VARCHAR
       END AS raw,
       CASE WHEN chosen_kind <> 'string' OR rejected_kind <> 'string' THEN 'hh_rlhf'
            WHEN NOT chosen_has_turn OR NOT rejected_has_turn THEN 'no_assistant_turn'
            WHEN error IS NOT NULL THEN 'prompt_mismatch' END AS read_rule,
       error AS read_error, NULL AS skip_reason
FROM checked;
