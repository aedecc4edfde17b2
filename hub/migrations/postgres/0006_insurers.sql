-- Currencies, insurers and what the ledger owes them (hub/src/guarantee.rs, hub/src/insurer.rs).
--
-- A reservation records the amount as declared and the rate it was converted at: amount and
-- currency of hub_guarantee_uses are in the contract's currency once converted.
ALTER TABLE hub_guarantee_uses ADD COLUMN declared_amount TEXT;
ALTER TABLE hub_guarantee_uses ADD COLUMN declared_currency TEXT;
ALTER TABLE hub_guarantee_uses ADD COLUMN exchange_rate TEXT;

-- Who may use the insurer and administrator API: the SHA-256 (hex) of a bearer token, the role
-- (insurer, administrator) and the subject (the insurer's TIN, the administrator's name).
CREATE TABLE hub_api_credentials (
    token_sha256  TEXT    PRIMARY KEY,
    role          TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL
);

-- Insurance contracts submitted by approved insurers (API or CA001C): submitted, then approved
-- (and registered in hub_guarantee_contracts) or refused with a reason. terms is the
-- InsuranceContract as JSON; terms_text the contract's own words.
CREATE TABLE hub_contract_submissions (
    submission_id  BIGSERIAL PRIMARY KEY,
    contract_id    TEXT    NOT NULL,
    grn            TEXT    NOT NULL,
    insurer        TEXT    NOT NULL,
    terms          TEXT    NOT NULL,
    terms_text     TEXT,
    status         TEXT    NOT NULL,
    reason         TEXT,
    channel        TEXT    NOT NULL,
    message_id     TEXT,
    node           TEXT,
    submitted_by   TEXT    NOT NULL,
    submitted_at   BIGINT  NOT NULL,
    decided_by     TEXT,
    decided_at     BIGINT
);
CREATE UNIQUE INDEX hub_contract_submissions_live ON hub_contract_submissions (contract_id)
    WHERE status <> 'refused';
CREATE INDEX hub_contract_submissions_insurer ON hub_contract_submissions (insurer, submitted_at);

-- Threshold notifications for the notification gateway: one row per crossing of a threshold
-- (percent of the insured amount) upwards by a reservation.
CREATE TABLE hub_guarantee_notifications (
    notification_id  BIGSERIAL PRIMARY KEY,
    contract_id      TEXT    NOT NULL,
    insurer          TEXT    NOT NULL,
    threshold        TEXT    NOT NULL,
    in_use           TEXT    NOT NULL,
    insured_amount   TEXT    NOT NULL,
    mrn              TEXT    NOT NULL,
    created_at       BIGINT  NOT NULL,
    delivered_at     BIGINT
);
CREATE INDEX hub_guarantee_notifications_contract ON hub_guarantee_notifications (contract_id, created_at);

-- Movements not discharged by their limit date: an enquiry (open, resolved when the reservation
-- is released, or liability), and the liability it became with its indemnity state (claimed,
-- notified, paid, disputed).
CREATE TABLE hub_guarantee_enquiries (
    mrn          TEXT    NOT NULL,
    grn          TEXT    NOT NULL,
    contract_id  TEXT    NOT NULL,
    limit_date   TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    opened_at    BIGINT  NOT NULL,
    closed_at    BIGINT,
    PRIMARY KEY (mrn, grn)
);
CREATE TABLE hub_guarantee_liabilities (
    liability_id  BIGSERIAL PRIMARY KEY,
    mrn           TEXT    NOT NULL,
    grn           TEXT    NOT NULL,
    contract_id   TEXT    NOT NULL,
    amount        TEXT    NOT NULL,
    currency      TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    UNIQUE (mrn, grn)
);
CREATE INDEX hub_guarantee_liabilities_contract ON hub_guarantee_liabilities (contract_id);

-- Every decision on a submission and every step of a liability: who, what, when.
CREATE TABLE hub_guarantee_audit (
    audit_id     BIGSERIAL PRIMARY KEY,
    subject      TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    actor        TEXT    NOT NULL,
    detail       TEXT,
    at           BIGINT  NOT NULL
);
CREATE INDEX hub_guarantee_audit_subject ON hub_guarantee_audit (subject, at);
