-- Credentials (connections), shares and audit events. D1 is the source of
-- truth: status, ownership, versions and the wrapped data key live here;
-- KV only holds the sealed blob that `secret_version` names.
CREATE TABLE credentials (
    id                     TEXT PRIMARY KEY NOT NULL,  -- lowercase UUID
    tenant_id              TEXT NOT NULL,              -- owner tenant, lowercase UUID
    integration_id         TEXT NOT NULL,
    name                   TEXT NOT NULL,
    description            TEXT,
    auth_type              TEXT NOT NULL,
    scopes                 TEXT NOT NULL,              -- JSON array of strings
    token_endpoint         TEXT,
    authorization_endpoint TEXT,
    metadata               TEXT NOT NULL,              -- JSON object
    status                 TEXT NOT NULL,              -- active | inactive | expired | revoked
    expires_at             INTEGER,                    -- Unix ms
    created_at             INTEGER NOT NULL,           -- Unix ms
    created_by             TEXT NOT NULL,              -- JSON {id, name, email}
    updated_at             INTEGER NOT NULL,
    updated_by             TEXT NOT NULL,
    tenant_name            TEXT,
    last_accessed_at       INTEGER,
    access_count           INTEGER NOT NULL DEFAULT 0,
    version                INTEGER NOT NULL,           -- counts every change, from 1
    secret_version         INTEGER NOT NULL,           -- the version whose blob is current
    kid                    TEXT NOT NULL,              -- KEK that wraps the current DEK
    wrapped_dek            TEXT NOT NULL               -- base64 of the wrapped-key format
) STRICT;

-- Lists and the selection rule: newest first, ties by id, per tenant.
CREATE INDEX credentials_by_tenant ON credentials (tenant_id, created_at DESC, id DESC);
CREATE INDEX credentials_by_tenant_integration
    ON credentials (tenant_id, integration_id, created_at DESC, id DESC);
-- The rewrap sweep: records still wrapped under a retired KEK.
CREATE INDEX credentials_by_kid ON credentials (kid);

CREATE TABLE shares (
    credential_id TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,   -- the tenant the record is shared with
    granted_at    INTEGER NOT NULL,
    granted_by    TEXT NOT NULL,   -- sub of the granting admin
    PRIMARY KEY (credential_id, tenant_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX shares_by_tenant ON shares (tenant_id, credential_id);

CREATE TABLE audit_events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,  -- newest-first order and cursor
    id              TEXT NOT NULL UNIQUE,
    tenant_id       TEXT NOT NULL,   -- the record owner's log
    at              INTEGER NOT NULL,
    action          TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    credential_id   TEXT,
    actor_id        TEXT NOT NULL,
    actor_name      TEXT,
    actor_email     TEXT,
    actor_tenant_id TEXT NOT NULL,
    request_id      TEXT NOT NULL
) STRICT;
CREATE INDEX audit_by_tenant ON audit_events (tenant_id, seq DESC);
CREATE INDEX audit_by_tenant_credential ON audit_events (tenant_id, credential_id, seq DESC);
