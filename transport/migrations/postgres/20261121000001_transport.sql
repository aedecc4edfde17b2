-- CATS transport tables (PostgreSQL). Timestamps are Unix milliseconds.

-- The sender's durable outbox: what is still to be sent, in order of enqueueing.
CREATE TABLE transport_outbox (
    id            BIGSERIAL PRIMARY KEY,
    message_id    TEXT    NOT NULL UNIQUE,
    destination   TEXT    NOT NULL,
    partition_key TEXT,
    body          BYTEA   NOT NULL,
    attempts      BIGINT  NOT NULL DEFAULT 0,
    last_error    TEXT,
    created_at    BIGINT  NOT NULL,
    sent_at       BIGINT 
);
CREATE INDEX transport_outbox_pending ON transport_outbox (id) WHERE sent_at IS NULL;

-- The receiver's deduplicating inbox: one row per (sender, message id) that had its effect.
CREATE TABLE transport_inbox (
    sender      TEXT    NOT NULL,
    message_id  TEXT    NOT NULL,
    body_sha256 TEXT    NOT NULL,
    received_at BIGINT  NOT NULL,
    PRIMARY KEY (sender, message_id)
);

-- Messages a receiver rejected: kept with the reason, never retried by themselves.
CREATE TABLE transport_dead_letters (
    id            BIGSERIAL PRIMARY KEY,
    sender        TEXT    NOT NULL,
    message_id    TEXT    NOT NULL,
    partition_key TEXT,
    reason        TEXT    NOT NULL,
    body          BYTEA   NOT NULL,
    dead_at       BIGINT  NOT NULL
);

-- The hub's per-node delivery queue (direct link): what the hub owes each node, by sequence.
CREATE TABLE transport_node_queue (
    node          TEXT    NOT NULL,
    seq           BIGINT  NOT NULL,
    message_id    TEXT    NOT NULL,
    partition_key TEXT,
    body          BYTEA   NOT NULL,
    attempts      BIGINT  NOT NULL DEFAULT 0,
    enqueued_at   BIGINT  NOT NULL,
    PRIMARY KEY (node, seq)
);

-- The last sequence number given out per node.
CREATE TABLE transport_node_cursor (
    node     TEXT    PRIMARY KEY,
    last_seq BIGINT  NOT NULL
);
