-- What a batch's check reads: its new forms and their LSH buckets (staged by prefpipe.dedup), and its responses.
CREATE OR REPLACE TEMP VIEW match_forms AS
SELECT prompt_seq, prompt_key, normalised, NULL::VARCHAR AS batch_id FROM stage_new_prompts;

CREATE OR REPLACE TEMP VIEW match_bands AS SELECT prompt_seq, band, bucket FROM stage_bands;

CREATE OR REPLACE TEMP VIEW checked_responses AS  -- half: sql/contamination/response_matches.sql
SELECT a.annotation_id, r.response_id, r.text, r.rowid % 2 AS half
FROM valid_responses r JOIN valid_annotations a USING (entry);
