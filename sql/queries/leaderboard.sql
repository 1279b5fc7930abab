-- The latest run of every model on every evaluation set: final score and sections, and how many examples its
-- training data matched (contaminated_examples, _share; NULL: not known) and the headline over the others
-- (decontaminated_score: the score, or custom for a set of custom subsets).
SELECT evalset, model_id, any_value(model_kind) AS kind, run_date,
       round(max(value) FILTER (level = 'score' AND name = 'score'), 4) AS score,
       round(max(value) FILTER (level = 'section' AND name = 'Chat'), 4) AS chat,
       round(max(value) FILTER (level = 'section' AND name = 'Chat Hard'), 4) AS chat_hard,
       round(max(value) FILTER (level = 'section' AND name = 'Safety'), 4) AS safety,
       round(max(value) FILTER (level = 'section' AND name = 'Reasoning'), 4) AS reasoning,
       round(max(value) FILTER (level = 'section' AND name = 'custom'), 4) AS custom,
       count(*) FILTER (level = 'subset') AS subsets,
       max(contaminated_examples) AS contaminated_examples, round(max(contaminated_share), 4) AS contaminated_share,
       round(coalesce(max(value) FILTER (level = 'decontaminated' AND name = 'score'),
                      max(value) FILTER (level = 'decontaminated' AND name = 'custom')), 4) AS decontaminated_score
FROM leaderboard
GROUP BY evalset, model_id, run_date
ORDER BY evalset, score DESC NULLS LAST, chat_hard DESC NULLS LAST, model_id;
