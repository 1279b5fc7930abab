-- The combinations that have model $1 among their models.
SELECT name FROM combos WHERE list_contains(models, $1) ORDER BY name
