-- A new version of an evaluation set.
INSERT INTO evalsets (name, version, path, source, format, examples, subsets) VALUES ($1, $2, $3, $4, $5, $6, $7)
