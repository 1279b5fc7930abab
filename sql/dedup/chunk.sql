-- One chunk of the prompts to cluster, those first seen at [$1, $2), in order: the normalised form of an ASCII text
-- (prompt_text, ascii_form: sql/dedup/forms.sql), else the text, which prefpipe.dedup normalises.
SELECT first, ascii_form(t) AS form, CASE WHEN strlen(t) <> length(t) THEN t END AS text
FROM (SELECT first, prompt_text(prompt) AS t FROM batch_prompts WHERE first >= $1 AND first < $2) ORDER BY first
