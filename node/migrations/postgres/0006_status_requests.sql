-- Status requests (issue 7, CD094C/CD095C): one row per request this node sent to another
-- country's node. `asked_id` is the CD094C waiting for its answer; `found` and `remaining`
-- are JSON lists of differences (node/src/status.rs).
CREATE TABLE node_status_requests (
    id                 TEXT   PRIMARY KEY,
    mrn                TEXT   NOT NULL,
    country            TEXT   NOT NULL,
    state              TEXT   NOT NULL,
    asked_id           TEXT   NOT NULL,
    rounds             BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    deadline           BIGINT NOT NULL,
    timeout_ms         BIGINT NOT NULL,
    next_round_at      BIGINT,
    answered_at        BIGINT,
    answer             TEXT,
    found              TEXT   NOT NULL,
    remaining          TEXT   NOT NULL,
    own_state_repaired BIGINT NOT NULL,
    reconciliation     TEXT,
    reason             TEXT
);
CREATE INDEX node_status_requests_asked ON node_status_requests (asked_id);
CREATE INDEX node_status_requests_state ON node_status_requests (state);
