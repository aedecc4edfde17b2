-- Operators and revocation of API credentials (hub/src/access.rs).
--
-- role may now also be 'operator'. A credential is named by the first 16 hex digits of its
-- token's SHA-256 (its id, safe to show and to log); revoking it sets revoked_at (Unix
-- milliseconds) and revoked_by (the administrator or the command line that did it). A revoked
-- token is refused from the next request on; the row stays as the record of who held it.
ALTER TABLE hub_api_credentials ADD COLUMN revoked_at BIGINT;
ALTER TABLE hub_api_credentials ADD COLUMN revoked_by TEXT;
