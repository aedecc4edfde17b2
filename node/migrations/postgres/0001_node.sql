-- The node's tables (PostgreSQL). Times are Unix milliseconds, UTC.

-- One row per movement this node holds: the life cycle state (lifecycle::Movement as JSON)
-- and the record it started from (the CC015C at departure, the anticipated record elsewhere).
CREATE TABLE node_movements (
    id BIGSERIAL PRIMARY KEY,
    mrn TEXT UNIQUE,
    lrn TEXT,
    holder TEXT,
    declaration_key TEXT UNIQUE,
    state TEXT NOT NULL,
    record BYTEA NOT NULL,
    national_party TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX node_movements_lrn ON node_movements (lrn);
CREATE INDEX node_movements_holder ON node_movements (holder);
CREATE INDEX node_movements_updated ON node_movements (updated_at);

-- The phase of each office role of each movement, for filtering.
CREATE TABLE node_movement_offices (
    movement_id BIGINT NOT NULL,
    office TEXT NOT NULL,
    role TEXT NOT NULL,
    phase TEXT NOT NULL,
    since BIGINT NOT NULL,
    PRIMARY KEY (movement_id, office, role)
);
CREATE INDEX node_movement_offices_phase ON node_movement_offices (phase, office, role);

-- Every message in and out, with its original bytes (and the signed envelope of CD messages).
CREATE TABLE node_messages (
    id BIGSERIAL PRIMARY KEY,
    movement_id BIGINT,
    direction TEXT NOT NULL,
    message_type TEXT NOT NULL,
    message_id TEXT NOT NULL,
    party TEXT NOT NULL,
    body BYTEA NOT NULL,
    envelope BYTEA,
    at BIGINT NOT NULL
);
CREATE INDEX node_messages_movement ON node_messages (movement_id);

-- The history of each movement: inputs (messages, actions, system decisions) and outputs.
-- `event` is the applied input as JSON (re-folding the movement); NULL for outputs and for
-- inputs that were refused.
CREATE TABLE node_history (
    seq BIGSERIAL PRIMARY KEY,
    movement_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    office TEXT NOT NULL,
    role TEXT NOT NULL,
    kind TEXT NOT NULL,
    message_type TEXT,
    action TEXT,
    by_whom TEXT NOT NULL,
    from_party TEXT NOT NULL,
    to_party TEXT NOT NULL,
    phase_after TEXT,
    event TEXT
);
CREATE INDEX node_history_movement ON node_history (movement_id, seq);

-- Every selection for control, with its reason.
CREATE TABLE node_selections (
    id BIGSERIAL PRIMARY KEY,
    movement_id BIGINT NOT NULL,
    office TEXT NOT NULL,
    role TEXT NOT NULL,
    selected BIGINT NOT NULL,
    reason TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX node_selections_movement ON node_selections (movement_id);

-- The outbound stream to the national system; the cursor is the row id.
CREATE TABLE node_stream (
    id BIGSERIAL PRIMARY KEY,
    movement_id BIGINT,
    message_type TEXT NOT NULL,
    mrn TEXT,
    lrn TEXT,
    message_id TEXT NOT NULL,
    office TEXT NOT NULL,
    at BIGINT NOT NULL,
    xml TEXT NOT NULL
);

-- Counters: MRN sequences per office, webhook progress.
CREATE TABLE node_counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
