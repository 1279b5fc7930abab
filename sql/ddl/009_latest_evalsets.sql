-- Every registered version of an evaluation set with how many of its examples match the warehouse's prompts
-- or responses (`contaminated`; prefpipe.contamination), and the latest version of each set: what the nightly
-- scores, what a batch is checked against, what --exclude-evalset leaves out.
CREATE OR REPLACE VIEW evalset_versions AS
SELECT e.*, (SELECT count(DISTINCT example_id) FROM contamination c
             WHERE c.evalset = e.name AND c.version = e.version) AS contaminated
FROM evalsets e;

CREATE OR REPLACE VIEW latest_evalsets AS
SELECT * FROM evalset_versions QUALIFY row_number() OVER (PARTITION BY name ORDER BY registered_at DESC) = 1;
