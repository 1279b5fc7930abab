-- The candidates of a split (getvariable('split')): every comparable response (not dropped; ranked, or
-- the human edit) of every annotation of the split, once per prompt and text (a prompt judged twice shows
-- the same responses twice). Ids are the warehouse's: prompt_id, and the response_id of the text's first
-- showing (with a hash of the text when two texts of a prompt were shown under the same id).
CREATE OR REPLACE TEMP VIEW split_candidates AS
WITH shown AS (
    SELECT a.prompt_id, first(a.prompt::VARCHAR ORDER BY a.annotation_seq, r.position) AS prompt,
           first(r.response_id ORDER BY a.annotation_seq, r.position) AS response_id, r.text
    FROM annotations a JOIN responses r USING (annotation_seq)
    WHERE a.split = getvariable('split') AND NOT r.dropped AND (r.rank IS NOT NULL OR r.edited_from IS NOT NULL)
    GROUP BY a.prompt_id, r.text
)
SELECT prompt_id, prompt,
       CASE WHEN count(*) OVER (PARTITION BY prompt_id, response_id) > 1 THEN response_id || '-' || md5(text)[:8]
            ELSE response_id END AS response_id,
       text
FROM shown ORDER BY prompt_id, response_id;
