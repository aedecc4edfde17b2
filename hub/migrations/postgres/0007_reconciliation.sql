-- Reconciliation with each node (issue 7): when it last ran, what it found and repaired, and
-- the bytes exchanged, kept across restarts for /api/v1/reconciliation and /metrics.
CREATE TABLE hub_reconciliation (
    country            TEXT    PRIMARY KEY,
    runs               BIGINT  NOT NULL,
    last_at            BIGINT  NOT NULL,
    last_through       BIGINT  NOT NULL,
    last_differences   BIGINT  NOT NULL,
    differences_found  BIGINT  NOT NULL,
    movements_repaired BIGINT  NOT NULL,
    entries_resent     BIGINT  NOT NULL,
    bytes_in           BIGINT  NOT NULL,
    bytes_out          BIGINT  NOT NULL
);
