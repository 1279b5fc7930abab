-- How many matches a set's version ($1, $2) has in the warehouse.
SELECT count(*) FROM contamination WHERE evalset = $1 AND version = $2
