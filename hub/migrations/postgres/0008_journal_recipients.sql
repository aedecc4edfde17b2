-- The journal's recipient index: one row per (recipient, entry), written in the same
-- transaction as the entry. Reconciliation and resume find a node's entries here instead of
-- scanning the journal's comma-separated recipients column with LIKE.
CREATE TABLE hub_journal_recipients (
    recipient TEXT   NOT NULL,
    sequence  BIGINT NOT NULL,
    PRIMARY KEY (recipient, sequence)
);

-- Entries journalled before this migration.
INSERT INTO hub_journal_recipients (recipient, sequence)
SELECT DISTINCT r, j.sequence
FROM hub_journal j, unnest(string_to_array(j.recipients, ',')) AS r
WHERE r <> '';
