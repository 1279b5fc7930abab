-- What a set's check reads: every form of the warehouse and its LSH buckets, and every response.
CREATE OR REPLACE TEMP VIEW match_forms AS SELECT prompt_seq, prompt_key, normalised, batch_id FROM prompt_clusters;

CREATE OR REPLACE TEMP VIEW match_bands AS SELECT prompt_seq, band, bucket FROM prompt_bands;

CREATE OR REPLACE TEMP VIEW checked_responses AS  -- half: sql/contamination/response_matches.sql
SELECT a.annotation_id, r.response_id, r.text, r.rowid % 2 AS half
FROM responses r JOIN annotations a USING (annotation_seq);
