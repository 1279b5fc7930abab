-- The pairwise table that training and analysts read: one row per (chosen, rejected) pair.
CREATE OR REPLACE VIEW pairs AS
SELECT a.annotation_id, a.prompt_id, a.annotator_id, c.response_id AS chosen_id, r.response_id AS rejected_id,
       p.margin, p.weight, a.split, a.prompt, c.text AS chosen_text, r.text AS rejected_text, a.batch_id
FROM comparisons p
JOIN annotations a USING (annotation_seq)
JOIN responses c ON c.annotation_seq = p.annotation_seq AND c.position = p.chosen_position
JOIN responses r ON r.annotation_seq = p.annotation_seq AND r.position = p.rejected_position;
