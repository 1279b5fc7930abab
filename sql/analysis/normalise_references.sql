-- The reference set of `prefpipe models normalise`: getvariable('reference_kind') 'edits' (every human edit)
-- or 'split' (the best response of each annotation of getvariable('split'): its edit, else its rank-1
-- responses), as (prompt JSON, text).
CREATE OR REPLACE TEMP VIEW normalise_references AS
WITH comparable AS (
    SELECT a.annotation_seq, a.prompt::VARCHAR AS prompt, r.text, a.split, r.edited_from IS NOT NULL AS edit,
           CASE WHEN r.edited_from IS NOT NULL THEN 0 ELSE r.rank END AS effective_rank
    FROM annotations a JOIN responses r USING (annotation_seq)
    WHERE NOT r.dropped AND (r.rank IS NOT NULL OR r.edited_from IS NOT NULL)
)
SELECT prompt, text FROM comparable
WHERE CASE WHEN getvariable('reference_kind') = 'edits' THEN edit ELSE split = getvariable('split') END
QUALIFY getvariable('reference_kind') = 'edits'
     OR effective_rank = min(effective_rank) OVER (PARTITION BY annotation_seq)
ORDER BY annotation_seq, text;
