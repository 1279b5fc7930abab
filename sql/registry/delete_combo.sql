-- The row of combination $1, before it is replaced.
DELETE FROM combos WHERE name = $1
