-- Issue 17: audit events older than COFFER_AUDIT_RETENTION_DAYS move to the
-- R2 bucket AUDIT (objects `audit/v1/<tenant>/<day>/<first>-<last>.ndjson.gz`,
-- which are the archive itself). D1 keeps, per tenant, where the archive
-- ends: every event archived so far happened before `archived_before`
-- (Unix ms), so the audit route can say where its pages stop.
CREATE TABLE audit_archive_marks (
    tenant_id       TEXT PRIMARY KEY NOT NULL,
    archived_before INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
