-- One registered version of a set ($1 name, $2 version), if it is there.
SELECT * FROM evalset_versions WHERE name = $1 AND version = $2
