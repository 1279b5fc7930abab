-- One chunk of the prompts to cluster, ords [$1, $2) in order: the normalised form of an ASCII text (prompt_text,
-- ascii_form: sql/dedup/forms.sql), else the text, which prefpipe.dedup normalises.
SELECT ascii_form(t) AS form, CASE WHEN strlen(t) <> length(t) THEN t END AS text
FROM (SELECT ord, prompt_text(prompt) AS t FROM batch_prompts WHERE ord >= $1 AND ord < $2) ORDER BY ord
