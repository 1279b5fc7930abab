-- The model registry as `prefpipe models` lists it: newest first, with the held-out test figures.
SELECT model_id, kind, created_at, active, loss, pairs,
       round((metrics -> 'test' ->> 'accuracy')::DOUBLE, 3) AS test_accuracy,
       round((metrics -> 'test' ->> 'ece')::DOUBLE, 3) AS test_ece,
       base, path, reference, judge
FROM models ORDER BY created_at DESC, model_id;
