-- The examples of the set versions being checked (checked_sets), in a fixed order: (evalset, version, example_id,
-- normalised prompt).
SELECT evalset, version, example_id, normalised FROM evalset_examples SEMI JOIN checked_sets USING (evalset, version)
ORDER BY evalset, version, example
