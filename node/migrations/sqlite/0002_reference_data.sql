-- The node's copy of the CATS reference data: one row (id 1), the whole set as JSON (a
-- message_catalog::reference::ReferenceSet), its version, and the latest version the node knows
-- the hub has (known_version > version: the node is behind and refuses declarations).
CREATE TABLE node_refdata (
    id             BIGINT PRIMARY KEY,
    version        BIGINT NOT NULL,
    known_version  BIGINT NOT NULL,
    snapshot       TEXT   NOT NULL,
    updated_at     BIGINT NOT NULL
);

-- Every version the node took, and every gap it saw: when, what, from which message.
CREATE TABLE node_refdata_log (
    version     BIGINT NOT NULL,
    previous    BIGINT,
    outcome     TEXT   NOT NULL,
    message_id  TEXT   NOT NULL,
    at          BIGINT NOT NULL
);
