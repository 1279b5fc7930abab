-- Before a whole warehouse is clustered again: the new settings (getvariable), no forms, buckets or merges
-- (old merges mean nothing under new clusters).
DELETE FROM cluster_settings;
INSERT INTO cluster_settings VALUES (getvariable('ngram'), getvariable('permutations'), getvariable('bands'),
                                     getvariable('threshold'), getvariable('signature'));
DELETE FROM prompt_clusters;
DELETE FROM prompt_bands;
DELETE FROM cluster_merges;
