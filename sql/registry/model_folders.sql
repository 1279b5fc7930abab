-- (model id, folder, reference folder or NULL) of the models of the list $1.
SELECT model_id, path, reference FROM models WHERE list_contains($1, model_id)
