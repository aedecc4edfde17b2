-- The journal's recipient index: one row per (recipient, entry), written in the same
-- transaction as the entry. Reconciliation and resume find a node's entries here instead of
-- scanning the journal's comma-separated recipients column with LIKE.
CREATE TABLE hub_journal_recipients (
    recipient TEXT    NOT NULL,
    sequence  INTEGER NOT NULL,
    PRIMARY KEY (recipient, sequence)
) WITHOUT ROWID;

-- Entries journalled before this migration: the recipients column split at its commas.
WITH RECURSIVE split (sequence, item, rest) AS (
    SELECT sequence, '', recipients || ',' FROM hub_journal WHERE recipients <> ''
    UNION ALL
    SELECT sequence, substr(rest, 1, instr(rest, ',') - 1), substr(rest, instr(rest, ',') + 1)
    FROM split WHERE rest <> ''
)
INSERT INTO hub_journal_recipients (recipient, sequence)
SELECT DISTINCT item, sequence FROM split WHERE item <> '';
