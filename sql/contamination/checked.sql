-- Whether a set's version ($1, $2) was checked against the whole warehouse.
SELECT count(*) > 0 FROM contamination_checks WHERE evalset = $1 AND version = $2
