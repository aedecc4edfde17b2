-- The master copy of the CATS reference data: every version as a whole set (JSON of
-- message_catalog::reference::ReferenceSet), who made it, when and why.
CREATE TABLE hub_refdata_versions (
    version      BIGINT PRIMARY KEY,
    recorded_at  BIGINT NOT NULL,
    actor        TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    snapshot     TEXT    NOT NULL
);

-- One row per record a version changed: section, key, old and new value (JSON; NULL when the
-- record was added or removed). Rows are never updated or deleted.
CREATE TABLE hub_refdata_audit (
    id           BIGSERIAL PRIMARY KEY,
    version      BIGINT NOT NULL,
    recorded_at  BIGINT NOT NULL,
    actor        TEXT    NOT NULL,
    section      TEXT    NOT NULL,
    record_key   TEXT    NOT NULL,
    old_value    TEXT,
    new_value    TEXT
);
CREATE INDEX hub_refdata_audit_version ON hub_refdata_audit (version, id);

-- The CA005C owed to each node for each version (and the whole sets answering CA006C),
-- signed and journalled when the version was made; sent_at is set once the transport took it.
CREATE TABLE hub_refdata_dispatch (
    id           BIGSERIAL PRIMARY KEY,
    version      BIGINT NOT NULL,
    country      TEXT    NOT NULL,
    message_id   TEXT    NOT NULL,
    envelope     BYTEA    NOT NULL,
    sent_at      BIGINT
);
CREATE INDEX hub_refdata_dispatch_unsent ON hub_refdata_dispatch (sent_at, id);

-- Registrations: AEO, authorised trader, approved insurer. status: pending | approved |
-- refused | suspended | revoked. source: api, or node:<country> for a CA003C.
CREATE TABLE hub_registrations (
    id           BIGSERIAL PRIMARY KEY,
    role         TEXT    NOT NULL,
    tin          TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    country      TEXT    NOT NULL,
    valid_from   TEXT    NOT NULL,
    valid_until  TEXT,
    status       TEXT    NOT NULL,
    reason       TEXT,
    source       TEXT    NOT NULL,
    message_id   TEXT,
    applied_at   BIGINT NOT NULL,
    decided_at   BIGINT
);
CREATE INDEX hub_registrations_tin ON hub_registrations (role, tin);

-- Every step of a registration: who, when, what, from which status to which, why.
CREATE TABLE hub_registration_audit (
    id               BIGSERIAL PRIMARY KEY,
    registration_id  BIGINT NOT NULL,
    at               BIGINT NOT NULL,
    actor            TEXT    NOT NULL,
    action           TEXT    NOT NULL,
    old_status       TEXT,
    new_status       TEXT    NOT NULL,
    reason           TEXT
);
CREATE INDEX hub_registration_audit_registration ON hub_registration_audit (registration_id, id);
