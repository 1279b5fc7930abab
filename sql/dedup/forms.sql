-- A prompt's text (JSON text: a string, or messages: their user turns joined by newlines) and the normalised form of
-- an ASCII text: prefpipe.dedup.normalise_prompt and the ASCII path of normalise_text (lower case; the ASCII
-- characters of Unicode category P deleted; runs of whitespace and of \x1c-\x1f one space; no space at either end).
-- A property test holds them to the Python (tests/test_dedup.py).
CREATE OR REPLACE TEMP MACRO prompt_text(p) AS CASE WHEN json_type(p::JSON) = 'VARCHAR' THEN p::JSON ->> '$' ELSE
    array_to_string(list_transform(list_filter(p::JSON[], lambda m: m ->> 'role' = 'user'), lambda m: m ->> 'content'),
                    chr(10)) END;

-- (Runs of whitespace other than one space become one space: a lone space, the common case, is left alone, as
-- replacing it costs.)
CREATE OR REPLACE TEMP MACRO ascii_form(t) AS CASE WHEN strlen(t) = length(t) THEN trim(regexp_replace(regexp_replace(
    lower(t), '[!"#%&''()*,\-./:;?@\[\\\]_{}]+', '', 'g'),
    ' [\t\n\x0b\x0c\r \x1c-\x1f]+|[\t\n\x0b\x0c\r\x1c-\x1f][\t\n\x0b\x0c\r \x1c-\x1f]*', ' ', 'g')) END;

-- The true Jaccard similarity of two forms' sets of word N-grams (a form of at most N words: one, itself):
-- prefpipe.dedup.jaccard, which a property test holds it to. (Each form bound once, in a list of one: a macro
-- argument used twice is computed twice.)
CREATE OR REPLACE TEMP MACRO shingle_set(form, n) AS list_transform([string_split(form, ' ')], lambda w:
    CASE WHEN len(w) <= n THEN [form]
         ELSE list_distinct(list_transform(range(1, len(w) - n + 2), lambda i: array_to_string(w[i:i + n - 1], ' ')))
    END)[1];
CREATE OR REPLACE TEMP MACRO jaccard(a, b, n) AS list_transform([[shingle_set(a, n), shingle_set(b, n)]], lambda s:
    len(list_intersect(s[1], s[2])) / len(list_distinct(list_concat(s[1], s[2]))))[1];
