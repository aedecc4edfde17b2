-- The comprehensive-guarantee ledger (hub/src/guarantee.rs).
--
-- One row per insurance contract the hub has seen in its reference data: the terms as JSON
-- (message_catalog::reference::InsuranceContract) and the amount in use, a decimal as text
-- (never a float). A reservation or a release changes in_use while it holds this row.
CREATE TABLE hub_guarantee_contracts (
    contract_id  TEXT    PRIMARY KEY,
    grn          TEXT    NOT NULL,
    terms        TEXT    NOT NULL,
    in_use       TEXT    NOT NULL,
    updated_at   BIGINT  NOT NULL
);
CREATE INDEX hub_guarantee_contracts_grn ON hub_guarantee_contracts (grn);

-- One row per movement and GRN asked for (CD203C): what was answered, and what became of it.
-- status: reserved, released (by CD204C or CD209C) or refused (refusal is the reason label).
CREATE TABLE hub_guarantee_uses (
    mrn               TEXT    NOT NULL,
    grn               TEXT    NOT NULL,
    contract_id       TEXT,
    holder            TEXT    NOT NULL,
    amount            TEXT    NOT NULL,
    currency          TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    refusal           TEXT,
    request_id        TEXT    NOT NULL,
    request_sequence  BIGINT,
    requested_at      BIGINT  NOT NULL,
    released_by       TEXT,
    release_id        TEXT,
    release_sequence  BIGINT,
    released_at       BIGINT,
    PRIMARY KEY (mrn, grn)
);
CREATE INDEX hub_guarantee_uses_contract ON hub_guarantee_uses (contract_id, requested_at);
