-- SCIM 2.0 provisioning clients (src/scim, src/domain/provisioning.rs).
--
-- Each identity provider that provisions users holds one bearer token made
-- by `memberdesk scim-token create`. Only its SHA-256 is kept: the token is
-- 32 random bytes, so a fast hash is as good as a slow one against guessing,
-- and a look-up by hash stays one index probe per request. A token acts with
-- exactly the permissions listed here, never as a superuser. Revoked tokens
-- stay (revoked_at set) so that the audit log's `scim:NAME` keeps meaning
-- something; a name is never reused.
CREATE TABLE scim_tokens (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    token_hash  BYTEA NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    permissions TEXT[] NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at  TIMESTAMPTZ
);

-- The identifier a provisioning client gives a user or group (SCIM's
-- `externalId`, e.g. Entra ID's object id), kept so that the client can
-- find its records again. Anonymization clears it with the rest of the
-- person; it goes with the row on deletion.
ALTER TABLE users ADD COLUMN scim_external_id TEXT CHECK (length(scim_external_id) <= 256);
ALTER TABLE groups ADD COLUMN scim_external_id TEXT CHECK (length(scim_external_id) <= 256);
