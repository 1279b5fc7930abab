-- The warehouse's responses to some prompts, as references for a combination's r_ref: every response that is
-- not dropped, of every annotation whose prompt (compact JSON) is in getvariable('prompts'), read from the
-- latest Parquet copy of the warehouse tables (getvariable('copy')), so no lock is taken.
SELECT json(a.prompt)::VARCHAR AS prompt, r.text
FROM read_parquet(getvariable('copy') || '/annotations.parquet') a
JOIN read_parquet(getvariable('copy') || '/responses.parquet') r USING (annotation_seq)
WHERE NOT r.dropped AND list_contains(getvariable('prompts'), json(a.prompt)::VARCHAR)
GROUP BY ALL ORDER BY ALL;
