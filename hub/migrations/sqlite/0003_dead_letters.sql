-- The hub's register of dead letters: what a receiver refused (the hub's inbound queue, or a
-- node's queue on AMQP), collected from the transport's dead letters (direct link) or drained
-- from the broker's dead-letter queues (AMQP), kept until an operator replays or discards it.
-- state: dead | replayed | discarded. Rows are never deleted.
CREATE TABLE hub_dead_letters (
    id             INTEGER PRIMARY KEY,
    queue          TEXT    NOT NULL,
    sender         TEXT    NOT NULL,
    message_id     TEXT    NOT NULL,
    partition_key  TEXT,
    reason         TEXT    NOT NULL,
    body           BLOB    NOT NULL,
    dead_at        INTEGER NOT NULL,
    state          TEXT    NOT NULL,
    settled_at     INTEGER,
    transport_id   INTEGER UNIQUE
);
CREATE INDEX hub_dead_letters_state ON hub_dead_letters (state, id);

-- Who replayed or discarded which dead letter, when, why, and what came of it.
CREATE TABLE hub_dead_letter_audit (
    id              INTEGER PRIMARY KEY,
    dead_letter_id  INTEGER NOT NULL,
    action          TEXT    NOT NULL,
    operator        TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    outcome         TEXT    NOT NULL,
    at              INTEGER NOT NULL
);
CREATE INDEX hub_dead_letter_audit_letter ON hub_dead_letter_audit (dead_letter_id, id);
