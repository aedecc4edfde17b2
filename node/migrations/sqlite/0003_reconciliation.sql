-- Reconciliation (issue 7). Every hub delivery the inbox accepted, with its MRN: the per-movement
-- digest compared with the hub's journal is computed from these rows. Written in the
-- transaction that applies the delivery, so a restored database holds exactly the rows of the
-- deliveries it holds.
CREATE TABLE node_reconcile_received (
    message_id TEXT   NOT NULL,
    sender     TEXT   NOT NULL,
    mrn        TEXT   NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (sender, message_id)
);
CREATE INDEX node_reconcile_received_mrn ON node_reconcile_received (mrn);

-- One row per reconciliation run started by this node.
CREATE TABLE node_reconcile_runs (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id         TEXT   NOT NULL,
    started_at         BIGINT NOT NULL,
    finished_at        BIGINT,
    resume_after       BIGINT NOT NULL,
    through            BIGINT,
    buckets_differing  BIGINT,
    movements_differing BIGINT,
    corrupt_repaired   BIGINT NOT NULL,
    bytes_out          BIGINT NOT NULL,
    bytes_in           BIGINT NOT NULL
);
