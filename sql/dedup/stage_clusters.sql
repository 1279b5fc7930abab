-- The batch's clusters, from `roots` (cluster seq -> the seq of the oldest cluster its component joins;
-- prefpipe.dedup): the new forms' clusters, the stored clusters merged into older ones (stage_merges), and
-- every prompt of the batch (by `first`) with its form and its cluster's name and split key (stage_prompt_keys).
CREATE OR REPLACE TEMP TABLE stage_roots AS
WITH named AS (
    SELECT prompt_seq AS seq, prompt_key AS cluster_id, split_key FROM stage_new_prompts
    UNION ALL SELECT prompt_seq, prompt_key, split_key FROM prompt_clusters
    WHERE prompt_key = cluster_id AND prompt_seq IN (SELECT root FROM roots))  -- only the roots the batch reaches
SELECT r.seq, n.cluster_id, n.split_key FROM roots r JOIN named n ON n.seq = r.root;

UPDATE stage_new_prompts SET cluster_id = r.cluster_id FROM stage_roots r WHERE r.seq = stage_new_prompts.prompt_seq;

CREATE OR REPLACE TEMP TABLE stage_merges AS
SELECT r.cluster_id, r.split_key, m.prompt_key AS merged_cluster_id, m.split_key AS merged_split_key
FROM stage_roots r JOIN prompt_clusters m ON m.prompt_seq = r.seq AND m.prompt_key = m.cluster_id
WHERE r.cluster_id <> m.prompt_key;

CREATE OR REPLACE TEMP TABLE stage_prompt_keys AS
WITH cluster_of AS (  -- every form of the batch: its cluster before the batch (stored) or its own
    SELECT prompt_key, cluster_id FROM prompt_clusters WHERE prompt_key IN (SELECT prompt_key FROM batch_forms)
    UNION ALL SELECT prompt_key, prompt_key FROM stage_new_prompts
), after AS (  -- the cluster after the batch's merges
    SELECT c.prompt_key, coalesce(m.cluster_id, n.cluster_id, c.cluster_id) AS cluster_id
    FROM cluster_of c LEFT JOIN stage_merges m ON m.merged_cluster_id = c.cluster_id
    LEFT JOIN stage_new_prompts n ON n.prompt_key = c.prompt_key
), split_keys AS (  -- of the clusters the batch's forms are in
    SELECT prompt_key AS cluster_id, split_key FROM prompt_clusters
    WHERE prompt_key = cluster_id AND prompt_key IN (SELECT cluster_id FROM after)
    UNION ALL SELECT prompt_key, split_key FROM stage_new_prompts WHERE prompt_key = cluster_id)
SELECT f.first, f.prompt_key, a.cluster_id, s.split_key
FROM batch_forms f JOIN after a USING (prompt_key) JOIN split_keys s USING (cluster_id);

-- Every entry (an annotation of the batch, or of the warehouse when it is clustered again) with its prompt's form
-- and its cluster's split key: annotations are joined by number, not by prompt text.
CREATE OR REPLACE TEMP VIEW stage_entry_keys AS
SELECT unnest(p.entries) AS entry, k.prompt_key, k.split_key
FROM batch_prompts p JOIN stage_prompt_keys k USING (first);
