-- (model id, folder, reference folder or NULL, a judge's settings as JSON or NULL) of the models of the list $1.
SELECT model_id, path, reference, judge::VARCHAR FROM models WHERE list_contains($1, model_id)
