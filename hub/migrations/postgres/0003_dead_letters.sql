-- The hub's register of dead letters: what a receiver refused (the hub's inbound queue, or a
-- node's queue on AMQP), collected from the transport's dead letters (direct link) or drained
-- from the broker's dead-letter queues (AMQP), kept until an operator replays or discards it.
-- state: dead | replayed | discarded. Rows are never deleted.
CREATE TABLE hub_dead_letters (
    id             BIGSERIAL PRIMARY KEY,
    queue          TEXT    NOT NULL,
    sender         TEXT    NOT NULL,
    message_id     TEXT    NOT NULL,
    partition_key  TEXT,
    reason         TEXT    NOT NULL,
    body           BYTEA   NOT NULL,
    dead_at        BIGINT  NOT NULL,
    state          TEXT    NOT NULL,
    settled_at     BIGINT,
    transport_id   BIGINT  UNIQUE
);
CREATE INDEX hub_dead_letters_state ON hub_dead_letters (state, id);

-- Who replayed or discarded which dead letter, when, why, and what came of it.
CREATE TABLE hub_dead_letter_audit (
    id              BIGSERIAL PRIMARY KEY,
    dead_letter_id  BIGINT  NOT NULL,
    action          TEXT    NOT NULL,
    operator        TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    outcome         TEXT    NOT NULL,
    at              BIGINT  NOT NULL
);
CREATE INDEX hub_dead_letter_audit_letter ON hub_dead_letter_audit (dead_letter_id, id);
