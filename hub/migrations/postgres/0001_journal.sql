-- The hub journal: append-only, hash-chained. Rows are never updated or deleted.
CREATE TABLE hub_journal (
    sequence           BIGINT PRIMARY KEY,
    message_id         TEXT    NOT NULL,
    message_type       TEXT    NOT NULL,
    sender             TEXT    NOT NULL,
    recipients         TEXT    NOT NULL,
    mrn                TEXT,
    correlation_id     TEXT,
    prepared_at        BIGINT,
    recorded_at        BIGINT NOT NULL,
    body_sha256        BYTEA    NOT NULL,
    envelope           BYTEA    NOT NULL,
    signer             TEXT,
    status             TEXT    NOT NULL,
    error_code         TEXT,
    error_reason       TEXT,
    prev_hash          BYTEA    NOT NULL,
    entry_hash         BYTEA    NOT NULL
);
CREATE INDEX hub_journal_mrn ON hub_journal (mrn, sequence);

-- Inbound messages seen, per sender, message id and body hash (duplicate detection).
CREATE TABLE hub_seen (
    sender       TEXT    NOT NULL,
    message_id   TEXT    NOT NULL,
    body_sha256  BYTEA    NOT NULL,
    sequence     BIGINT NOT NULL,
    PRIMARY KEY (sender, message_id, body_sha256)
);

-- What the hub still has to do for an inbound entry: forward it, or send its NACK.
CREATE TABLE hub_dispatch (
    sequence       BIGINT PRIMARY KEY,
    nack_sequence  BIGINT,
    dispatched_at  BIGINT
);

-- The movement registry, derived from accepted journal entries.
CREATE TABLE hub_movements (
    mrn                 TEXT    PRIMARY KEY,
    state               TEXT    NOT NULL,
    departure_country   TEXT    NOT NULL,
    departure_office    TEXT,
    destination_office  TEXT,
    route               TEXT    NOT NULL,
    last_message_type   TEXT    NOT NULL,
    last_message_id     TEXT    NOT NULL,
    last_sequence       BIGINT NOT NULL,
    first_seen          BIGINT NOT NULL,
    last_seen           BIGINT NOT NULL
);

CREATE TABLE hub_movement_offices (
    mrn           TEXT    NOT NULL,
    office        TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    last_event    TEXT,
    last_event_at BIGINT,
    PRIMARY KEY (mrn, office, role)
);
