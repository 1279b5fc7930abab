-- The morning report (prefpipe/report/gather.py): one row per run of a model on a set, oldest first. score: the
-- RewardBench score, or for a set of custom subsets their accuracy (as decontaminated_score); the sections; the
-- ECE of σ(score gap); how many examples the model's training data matched (NULL: not known).
SELECT s.model_id, s.evalset, s.run_date, s.run_id, any_value(s.model_kind) AS kind,
       any_value(s.model_hash) AS model_hash,
       any_value(s.code_version) AS code_version,
       coalesce(max(s.value) FILTER (s.level = 'score' AND s.name = 'score'),
                max(s.value) FILTER (s.level = 'section' AND s.name = 'custom')) AS score,
       max(s.value) FILTER (s.level = 'section' AND s.name = 'Chat') AS chat,
       max(s.value) FILTER (s.level = 'section' AND s.name = 'Chat Hard') AS chat_hard,
       max(s.value) FILTER (s.level = 'section' AND s.name = 'Safety') AS safety,
       max(s.value) FILTER (s.level = 'section' AND s.name = 'Reasoning') AS reasoning,
       max(s.value) FILTER (s.level = 'diagnostic' AND s.name = 'ece') AS ece,
       any_value(c.contaminated_examples) AS contaminated_examples,
       any_value(c.contaminated_share) AS contaminated_share,
       any_value(c.decontaminated_score) AS decontaminated_score
FROM eval_summary s LEFT JOIN run_contamination c USING (model_id, evalset, run_id)
GROUP BY s.model_id, s.evalset, s.run_date, s.run_id
ORDER BY s.model_id, s.evalset, s.run_date, s.run_id;
