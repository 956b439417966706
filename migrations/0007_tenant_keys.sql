-- The key hierarchy (issue 16): master key (COFFER_KEYS) → tenant key →
-- data key per secret version → sealed blob. Rows written before this
-- migration keep their data key wrapped under a master key directly
-- (`tk_version` NULL, `kid` naming that master key); they still open, and the
-- sweep moves them under their tenant's key in bounded batches.

-- Tenants the vault knows: a row is created with the tenant's first tenant
-- key. `deleted_at` is set by DELETE /api/v1/tenant in the same batch that
-- destroys the tenant's keys (crypto-shredding); the sweep then removes the
-- tenant's rows and blobs.
CREATE TABLE tenants (
    tenant_id  TEXT PRIMARY KEY NOT NULL,  -- lowercase UUID
    created_at INTEGER NOT NULL,           -- Unix ms
    deleted_at INTEGER,                    -- Unix ms; NULL while the tenant exists
    deleted_by TEXT,                       -- sub of the deleting admin
    purged_at  INTEGER                     -- when the sweep had removed all its rows and blobs
) STRICT, WITHOUT ROWID;
-- The shredding sweep finds deleted tenants not yet purged without a scan.
CREATE INDEX tenants_to_purge ON tenants (deleted_at, tenant_id)
    WHERE deleted_at IS NOT NULL AND purged_at IS NULL;

-- Tenant keys: 32 random bytes per tenant and version, stored only wrapped
-- under a master key (wrapped-tenant-key format 0x01, base64). The tenant's
-- data-key key, wrapped under the tenant key, is in KV under
-- `tenant-key/v1/<tenant>/<version>.<kv_nonce>` (the KV half): crypto-shredding
-- deletes both, so a D1 backup from before the deletion alone opens nothing.
-- One key per
-- tenant is `active` (new data keys are wrapped under it); a tenant-key
-- rotation makes a new active version and marks the old one `retiring`
-- until no data key is wrapped under it any more, then deletes it.
CREATE TABLE tenant_keys (
    tenant_id   TEXT NOT NULL,
    version     INTEGER NOT NULL,   -- from 1
    kid         TEXT NOT NULL,      -- the master key that wraps it
    wrapped_key TEXT NOT NULL,      -- base64 of the wrapped-tenant-key format
    kv_nonce    TEXT NOT NULL,      -- makes the KV half's key unique to this row
    state       TEXT NOT NULL,      -- active | retiring
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, version)
) STRICT, WITHOUT ROWID;
CREATE UNIQUE INDEX tenant_keys_one_active ON tenant_keys (tenant_id) WHERE state = 'active';
-- Master-key rotation: tenant keys still wrapped under a retired master key.
CREATE INDEX tenant_keys_by_kid ON tenant_keys (kid);

-- The tenant-key version that wraps the current data key; NULL: a legacy
-- data key wrapped under the master key `kid` (rows from before 0007).
ALTER TABLE credentials ADD COLUMN tk_version INTEGER;
-- When and by whom the current secret version was written (NULL on rows
-- from before 0007: then `updated_at` / `updated_by` stand in).
ALTER TABLE credentials ADD COLUMN secret_at INTEGER;
ALTER TABLE credentials ADD COLUMN secret_by TEXT;
-- The migration sweep: legacy data keys, by id.
CREATE INDEX credentials_legacy_wraps ON credentials (id) WHERE tk_version IS NULL;
-- Tenant-key rotation: one tenant's data keys under one tenant-key version.
CREATE INDEX credentials_by_tenant_key ON credentials (tenant_id, tk_version, id);

-- Earlier secret versions of a record, kept (up to
-- COFFER_SECRET_VERSIONS_KEPT with the current one) for versioned reads and
-- rollback. The current version stays on the credentials row; a secret
-- change moves it here in the same batch. A destroyed version keeps its row
-- (`destroyed_at` set, `wrapped_dek` NULL) so the list can say so; its blob
-- is deleted.
CREATE TABLE secret_versions (
    credential_id  TEXT NOT NULL,
    secret_version INTEGER NOT NULL,
    tenant_id      TEXT NOT NULL,     -- the record's owner
    blob_nonce     TEXT NOT NULL,     -- KV key `<secret_version>.<blob_nonce>` ('' before 0004)
    tk_version     INTEGER,           -- NULL: legacy data key under master key `kid`
    kid            TEXT NOT NULL,
    wrapped_dek    TEXT,              -- base64; NULL once destroyed
    created_at     INTEGER NOT NULL,  -- when this secret version was written
    created_by     TEXT NOT NULL,     -- JSON {id, name, email}
    destroyed_at   INTEGER,
    PRIMARY KEY (credential_id, secret_version)
) STRICT, WITHOUT ROWID;
CREATE INDEX secret_versions_by_tenant_key ON secret_versions (tenant_id, tk_version, credential_id);
CREATE INDEX secret_versions_legacy ON secret_versions (credential_id, secret_version)
    WHERE tk_version IS NULL AND wrapped_dek IS NOT NULL;


-- Which secret version an audit event concerns, where it names one (a
-- versioned read, a rollback, a destroyed version); NULL otherwise.
ALTER TABLE audit_events ADD COLUMN secret_version INTEGER;

-- The read-audit trigger of 0005, now also writing the version a versioned
-- read served (`last_read.secret_version`; absent for a read of the current
-- version, as before).
DROP TRIGGER credentials_read_audit;
CREATE TRIGGER credentials_read_audit
AFTER UPDATE OF access_count ON credentials
WHEN NEW.last_read IS NOT NULL
BEGIN
    INSERT INTO audit_events (id, tenant_id, at, action, outcome, credential_id, actor_id,
                              actor_name, actor_email, actor_tenant_id, request_id,
                              secret_version)
    VALUES (json_extract(NEW.last_read, '$.id'), NEW.tenant_id, NEW.last_accessed_at,
            'credential.read_secret', 'success', NEW.id,
            json_extract(NEW.last_read, '$.actor_id'), json_extract(NEW.last_read, '$.actor_name'),
            json_extract(NEW.last_read, '$.actor_email'),
            json_extract(NEW.last_read, '$.actor_tenant_id'),
            json_extract(NEW.last_read, '$.request_id'),
            json_extract(NEW.last_read, '$.secret_version'));
END;
