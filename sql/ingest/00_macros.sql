-- Macros of the ingest steps, format adapters and exports: temp, created on every connect.

-- The JSON type of a raw JSON value, in words used in quarantine reasons. (Cast to VARCHAR first:
-- on the JSON type, v[1] would be a JSON path, not the first character.)
CREATE OR REPLACE TEMP MACRO json_kind(v) AS CASE
    WHEN v IS NULL THEN 'missing'
    WHEN left(v::VARCHAR, 1) = '"' THEN 'string'
    WHEN TRY_CAST(v::VARCHAR AS BIGINT) IS NOT NULL AND regexp_full_match(v::VARCHAR, '-?[0-9]+') THEN 'integer'
    WHEN v::VARCHAR IN ('true', 'false') THEN 'boolean'
    WHEN left(v::VARCHAR, 1) = '{' THEN 'object'
    WHEN left(v::VARCHAR, 1) = '[' THEN 'list'
    ELSE 'decimal' END;

-- The text of a JSON string (or of an integer used as an id). Unescape only when needed.
CREATE OR REPLACE TEMP MACRO json_text(v) AS CASE
    WHEN v IS NULL OR left(v::VARCHAR, 1) <> '"' THEN v::VARCHAR
    WHEN contains(v::VARCHAR, '\') THEN from_json(v, '"VARCHAR"')
    ELSE (v::VARCHAR)[2:-2] END;

-- The first key that an object of a JSON record holds twice, or NULL: the record itself, its object values
-- and the objects of its list values (every level prefpipe reads: responses, prompt messages, metadata).
-- Readers disagree on which value of a repeated key wins, so such a record is quarantined. The key is
-- looked up only where a count differs (a per-key search on every record would cost seconds per million).
CREATE OR REPLACE TEMP MACRO record_keys(raw) AS [json_keys(raw)] || json_keys(raw, '$.*') || json_keys(raw, '$.*[*]');
CREATE OR REPLACE TEMP MACRO repeated_key(raw) AS CASE
    WHEN list_bool_or(list_transform(record_keys(raw), lambda keys_of_one: len(keys_of_one) > list_unique(keys_of_one)))
    THEN flatten(list_transform(record_keys(raw), lambda object_keys: list_filter(
        object_keys, lambda key, place: list_position(object_keys, key) < place)))[1] END;

-- CSV cells are text: a whole number or true/false becomes a JSON number or boolean (anything else stays a
-- string, and so fails the rank and dropped rules); a prompt that is a JSON list is a list of messages.
CREATE OR REPLACE TEMP MACRO csv_scalar(v) AS CASE
    WHEN trim(v) = '' THEN NULL
    WHEN regexp_full_match(trim(v), '-?[0-9]{1,18}') OR lower(trim(v)) IN ('true', 'false') THEN lower(trim(v))::JSON
    ELSE to_json(v) END;
CREATE OR REPLACE TEMP MACRO csv_prompt(v) AS CASE
    WHEN left(ltrim(v), 1) = '[' AND json_valid(v) THEN v::JSON ELSE to_json(v) END;

-- A stable short id from any text (prompt ids and keys made by the format adapters).
CREATE OR REPLACE TEMP MACRO stable_id(prefix, v) AS prefix || '-' || md5(v::VARCHAR)[:16];

-- A Human/Assistant transcript (HH-RLHF style) as a list of {role, content} messages.
CREATE OR REPLACE TEMP MACRO transcript_messages(t) AS list_transform(
    list_filter(string_split(replace(replace(t, chr(10) || chr(10) || 'Human:', chr(1) || 'user' || chr(2)),
                                     chr(10) || chr(10) || 'Assistant:', chr(1) || 'assistant' || chr(2)),
                             chr(1)),
                lambda s: trim(s) <> ''),
    lambda s: CASE WHEN contains(s, chr(2)) THEN {'role': split_part(s, chr(2), 1), 'content': trim(split_part(s, chr(2), 2))}
                   ELSE {'role': 'user', 'content': trim(s)} END);

-- The split of a key (a prompt cluster's id): stable across runs and machines, by md5, in the shares that
-- getvariable('train_share') and getvariable('validation_share') hold.
CREATE OR REPLACE TEMP MACRO split_of(k) AS CASE
    WHEN md5_number_lower(k) % 1000000 < getvariable('train_share') * 1000000 THEN 'train'
    WHEN md5_number_lower(k) % 1000000 < (getvariable('train_share') + getvariable('validation_share')) * 1000000
    THEN 'validation'
    ELSE 'test' END;

-- The words of a text (lower-cased, ASCII punctuation stripped, split at spaces, tabs and line breaks) and their
-- n-grams, hashed: what contamination compares between responses and evaluation-set completions
-- (prefpipe.contamination; what the warehouse keeps of a set names the DuckDB version that hashed it,
-- sql/ddl/010_evalset_grams.sql). (ASCII classes and plain splits: a Unicode-class regex split costs four times as
-- much, seconds per million responses.)
CREATE OR REPLACE TEMP MACRO words(t) AS
    list_filter(string_split(replace(replace(replace(regexp_replace(lower(t), '[[:punct:]]+', '', 'g'), chr(9), ' '),
                                             chr(10), ' '), chr(13), ' '), ' '), lambda w: w <> '');
-- The 13-grams of a text, each the hash of its words' hashes.
CREATE OR REPLACE TEMP MACRO grams13(t) AS list_transform([list_transform(words(t), lambda w: hash(w))],
    lambda h: list_transform(range(1, len(h) - 11), lambda i: hash(h[i:i + 12])))[1];
-- The 7-grams of a text that start at word 1, 1 + STEP, 1 + 2 STEP, ..., each the hash of its seven words (no list
-- made per gram: the check of every response's sampled 7-grams runs 15% faster). (The words bound once, in a list
-- of one: a macro argument used twice is computed twice.)
CREATE OR REPLACE TEMP MACRO grams7(t, step) AS list_transform([words(t)], lambda w: list_transform(
    range(1, len(w) - 5, step), lambda i: hash(w[i], w[i + 1], w[i + 2], w[i + 3], w[i + 4], w[i + 5], w[i + 6])))[1];
