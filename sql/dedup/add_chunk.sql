-- One chunk of the batch's forms (keys, texts) and their LSH buckets (chunk_forms: ord, normalised; chunk_bands:
-- ord, band, bucket; prefpipe.dedup.cluster_prompts); a form's key is the md5 of its UTF-8 bytes
-- (prefpipe.dedup.prompt_key).
INSERT INTO batch_forms SELECT ord, left(md5(normalised), 16) FROM chunk_forms;
INSERT INTO batch_texts SELECT ord, normalised FROM chunk_forms;
INSERT INTO batch_bands SELECT * FROM chunk_bands;
