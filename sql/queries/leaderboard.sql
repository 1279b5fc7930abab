-- The latest run of every model on every evaluation set: final score and sections.
SELECT evalset, model_id, run_date,
       round(max(value) FILTER (level = 'score' AND name = 'score'), 4) AS score,
       round(max(value) FILTER (level = 'section' AND name = 'Chat'), 4) AS chat,
       round(max(value) FILTER (level = 'section' AND name = 'Chat Hard'), 4) AS chat_hard,
       round(max(value) FILTER (level = 'section' AND name = 'Safety'), 4) AS safety,
       round(max(value) FILTER (level = 'section' AND name = 'Reasoning'), 4) AS reasoning,
       round(max(value) FILTER (level = 'section' AND name = 'custom'), 4) AS custom,
       count(*) FILTER (level = 'subset') AS subsets
FROM leaderboard
GROUP BY ALL
ORDER BY evalset, score DESC NULLS LAST, chat_hard DESC NULLS LAST, model_id;
