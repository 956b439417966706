//! Every SQL statement the store runs, as pure functions, so a native test
//! can check each against the migrations with `EXPLAIN QUERY PLAN`.
//!
//! Dynamic statements only vary in which fixed fragments they include and
//! in parameter numbers; input is always bound, never formatted in.
use coffer_core::Status;

/// The credentials columns, aliased `c`, in `Row` order.
macro_rules! columns {
    () => {
        "c.id, c.tenant_id, c.integration_id, c.name, c.description, c.auth_type, \
         c.scopes, c.token_endpoint, c.authorization_endpoint, c.metadata, c.status, \
         c.expires_at, c.created_at, c.created_by, c.updated_at, c.updated_by, c.tenant_name, \
         c.last_accessed_at, c.access_count, c.version, c.secret_version, c.kid, c.wrapped_dek, \
         c.blob_nonce, c.tk_version, c.secret_at, c.secret_by, c.refresh_grant, \
         c.refresh_lease_holder, c.refresh_lease_until, c.refreshed_at, c.refresh_error, \
         c.refresh_failures, c.refresh_not_before, c.refresh_halted"
    };
}

/// The wrapped tenant key that wraps a row's data key (NULL for a legacy
/// row, or once the tenant's keys are destroyed), loaded with the row so a
/// decrypted read costs no extra round trip. `$c` is the credentials
/// table's name or alias.
macro_rules! tenant_key_column {
    ($c:literal) => {
        concat!(
            ", (SELECT t.wrapped_key || ' ' || t.kv_nonce FROM tenant_keys t WHERE t.tenant_id = ",
            $c,
            ".tenant_id AND t.version = ",
            $c,
            ".tk_version) AS tenant_key"
        )
    };
}

/// The row's owner was not deleted (`DELETE /api/v1/tenant`): from the
/// deletion on, its records are not found, whoever asks, until the sweep
/// removes them. `$c` is the credentials table's name or alias.
macro_rules! live {
    ($c:literal) => {
        concat!(
            " AND NOT EXISTS (SELECT 1 FROM tenants d WHERE d.tenant_id = ",
            $c,
            ".tenant_id AND d.deleted_at IS NOT NULL)"
        )
    };
}

/// The tenant key `?n` of the row's tenant still exists: a write sealed
/// under a key that a rotation retired and deleted, or a shredding
/// destroyed, meanwhile changes nothing.
macro_rules! tenant_key_exists {
    ($tenant:literal, $version:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM tenant_keys k WHERE k.tenant_id = ",
            $tenant,
            " AND k.version = ",
            $version,
            ")"
        )
    };
}

/// ?1 id, ?2 acting tenant.
pub(super) const FIND: &str = concat!(
    "SELECT ",
    columns!(),
    tenant_key_column!("c"),
    ", EXISTS (SELECT 1 FROM shares s WHERE s.credential_id = c.id AND s.tenant_id = ?2) \
       AS shared FROM credentials c WHERE c.id = ?1",
    live!("c")
);

/// The id the selection rule picks for tenant `$tenant` and integration
/// `$integration` at time `$now`: the newest effectively active record
/// (`active` or `expired`, and not past its `expires_at`), else the newest
/// record; ties by id. Each branch walks the `credentials_by_tenant_integration`
/// index newest first and stops at its first match, so the cost does not
/// grow with the integration's records (one `ORDER BY` over the rule's
/// expression sorted every one of them).
macro_rules! selected_id {
    ($tenant:literal, $integration:literal, $now:literal) => {
        concat!(
            "COALESCE((SELECT s.id FROM credentials s WHERE s.tenant_id = ",
            $tenant,
            " AND s.integration_id = ",
            $integration,
            " AND s.status IN ('active', 'expired') AND (s.expires_at IS NULL OR s.expires_at > ",
            $now,
            ") ORDER BY s.created_at DESC, s.id DESC LIMIT 1), \
             (SELECT s.id FROM credentials s WHERE s.tenant_id = ",
            $tenant,
            " AND s.integration_id = ",
            $integration,
            " ORDER BY s.created_at DESC, s.id DESC LIMIT 1))"
        )
    };
}

/// ?1 tenant, ?2 integration, ?3 now.
pub(super) const SELECT_FOR_INTEGRATION: &str = concat!(
    "SELECT ",
    columns!(),
    tenant_key_column!("c"),
    " FROM credentials c WHERE c.id = ",
    selected_id!("?1", "?2", "?3"),
    live!("c")
);

/// ?1..?24, see `Store::insert`: only while tenant key ?23 of tenant ?2
/// exists (the secret is sealed under it); ?24 the refresh grant.
pub(super) const INSERT: &str = concat!(
    "INSERT INTO credentials (id, tenant_id, integration_id, name, description, auth_type, \
       scopes, token_endpoint, authorization_endpoint, metadata, status, expires_at, \
       created_at, created_by, updated_at, updated_by, tenant_name, last_accessed_at, \
       access_count, version, secret_version, kid, wrapped_dek, blob_nonce, tk_version, \
       secret_at, secret_by, refresh_grant) \
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
       NULL, 0, ?18, ?19, ?20, ?21, ?22, ?23, ?13, ?14, ?24 WHERE ",
    tenant_key_exists!("?2", "?23")
);

/// ?1 id, ?2 expected version, ?3..?13 new values (compare-and-set). A
/// change that leaves the secret alone never writes the key columns
/// (`secret_version`, `kid`, `wrapped_dek`, `blob_nonce`): a rewrap that
/// landed since the record was loaded would otherwise be undone, and the
/// rewrap does not change `version`.
pub(super) const UPDATE_METADATA: &str =
    "UPDATE credentials SET name = ?3, description = ?4, scopes = ?5, token_endpoint = ?6, \
       authorization_endpoint = ?7, metadata = ?8, status = ?9, expires_at = ?10, \
       updated_at = ?11, updated_by = ?12, version = ?13 \
     WHERE id = ?1 AND version = ?2";

/// As [`UPDATE_METADATA`], and ?14..?17 the new secret version's key
/// columns: a secret change replaces the data key, so no earlier wrap of
/// the old one matters.
/// ?18 is the tenant-key version the new data key is wrapped under: the
/// update happens only while that key exists. ?19 is the new secret's
/// refresh grant; a new secret also ends a backoff or a halt of automatic
/// refreshes (the old secret's failures say nothing about it;
/// `refresh_error` stays as history).
pub(super) const UPDATE_WITH_SECRET: &str = concat!(
    "UPDATE credentials SET name = ?3, description = ?4, scopes = ?5, token_endpoint = ?6, \
       authorization_endpoint = ?7, metadata = ?8, status = ?9, expires_at = ?10, \
       updated_at = ?11, updated_by = ?12, version = ?13, secret_version = ?14, kid = ?15, \
       wrapped_dek = ?16, blob_nonce = ?17, tk_version = ?18, secret_at = ?11, \
       secret_by = ?12, refresh_grant = ?19, refresh_failures = 0, refresh_not_before = NULL, \
       refresh_halted = 0 \
     WHERE id = ?1 AND version = ?2 AND ",
    tenant_key_exists!("credentials.tenant_id", "?18")
);

/// ?1 id, ?2 expected version, ?3 the new data key's tenant-key version:
/// keeps the current secret version (before [`UPDATE_WITH_SECRET`] in the
/// same batch replaces it) as an earlier version, under exactly the
/// conditions of that update, so both happen or neither.
pub(super) const KEEP_CURRENT_VERSION: &str = concat!(
    "INSERT INTO secret_versions (credential_id, secret_version, tenant_id, blob_nonce, \
       tk_version, kid, wrapped_dek, created_at, created_by, destroyed_at) \
     SELECT id, secret_version, tenant_id, blob_nonce, tk_version, kid, wrapped_dek, \
       COALESCE(secret_at, updated_at), COALESCE(secret_by, updated_by), NULL \
     FROM credentials WHERE id = ?1 AND version = ?2 AND ",
    tenant_key_exists!("credentials.tenant_id", "?3"),
    " ON CONFLICT (credential_id, secret_version) DO NOTHING"
);

/// ?1 id, ?2 earlier versions to keep (COFFER_SECRET_VERSIONS_KEPT - 1):
/// drops the oldest beyond that, returning what their blobs' KV keys need
/// (the caller deletes the blobs after the commit; the orphan sweep
/// catches a failed delete).
pub(super) const DROP_OLD_VERSIONS: &str =
    "DELETE FROM secret_versions WHERE credential_id = ?1 AND secret_version NOT IN \
       (SELECT v.secret_version FROM secret_versions v WHERE v.credential_id = ?1 \
        ORDER BY v.secret_version DESC LIMIT ?2) \
     RETURNING tenant_id, secret_version, blob_nonce";

/// ?1 id, ?2 expected version.
pub(super) const DELETE: &str = "DELETE FROM credentials WHERE id = ?1 AND version = ?2";

/// ?1 id: the earlier secret versions of a record deleted earlier in the
/// same batch, returning their blobs' KV key parts.
pub(super) const DELETE_VERSIONS_OF_DELETED: &str =
    "DELETE FROM secret_versions WHERE credential_id = ?1 \
       AND NOT EXISTS (SELECT 1 FROM credentials WHERE id = ?1) \
     RETURNING tenant_id, secret_version, blob_nonce";

/// ?1 id: the shares of a record deleted earlier in the same batch.
pub(super) const DELETE_SHARES_OF_DELETED: &str = "DELETE FROM shares WHERE credential_id = ?1 \
       AND NOT EXISTS (SELECT 1 FROM credentials WHERE id = ?1)";

/// ?1 id, ?2 now, ?3 secret version, ?4 the reader's audit fields (JSON),
/// ?5 blob nonce, ?6 the reader's tenant: counts the read, and the
/// `credentials_read_audit` trigger (migration 0005) writes its audit event
/// in the same statement. It re-checks, atomically, what made the read
/// servable when the row was loaded: the same secret write, still owned by
/// the reader's tenant, and a status whose secret may be served (the
/// core's `check_secret_servable`: not `inactive`, not `revoked`). A read
/// racing a revoke, a deactivation or a delete changes nothing here, and
/// the caller decides again on a fresh load.
///
/// A record that refreshes its OAuth2 token is never served past its
/// `expires_at` (migration 0006): the read finds nothing and the caller
/// decides again, refreshing first.
pub(super) const RECORD_READ: &str = concat!(
    "UPDATE credentials SET access_count = access_count + 1, last_accessed_at = ?2, \
       last_read = ?4 \
     WHERE id = ?1 AND secret_version = ?3 AND blob_nonce = ?5 AND tenant_id = ?6 \
       AND status IN ('active', 'expired') \
       AND (refresh_grant IS NULL OR token_endpoint IS NULL OR expires_at IS NULL \
         OR expires_at > ?2)",
    live!("credentials"),
    " RETURNING access_count, last_accessed_at"
);

/// As [`RECORD_READ`] for an earlier secret version ?3 (?5 its blob nonce):
/// counts and audits the read on the record (?4 names the version, so the
/// trigger's event does) only while that version is kept and not destroyed.
pub(super) const RECORD_VERSION_READ: &str = concat!(
    "UPDATE credentials SET access_count = access_count + 1, last_accessed_at = ?2, \
       last_read = ?4 \
     WHERE id = ?1 AND tenant_id = ?6 AND status IN ('active', 'expired') \
       AND EXISTS (SELECT 1 FROM secret_versions v WHERE v.credential_id = ?1 \
         AND v.secret_version = ?3 AND v.blob_nonce = ?5 AND v.destroyed_at IS NULL)",
    live!("credentials"),
    " RETURNING access_count, last_accessed_at"
);

/// What the fast path's read statement must still find.
#[derive(Debug, Clone, Copy)]
pub(super) enum ReadScope {
    /// The record by id (the connection surface).
    Id,
    /// The record by id, in integration ?8 (the credentials surface with
    /// `credentialId`).
    IdInIntegration,
    /// The record the selection rule picks for tenant ?6 and integration ?8.
    Selection,
}

/// As [`RECORD_READ`] (same parameters ?1..?6, same guards), returning the
/// whole row, for a secret write remembered by the isolate: the one D1
/// round trip of a served read. ?7 is when a refreshing record's token
/// becomes due (now plus the refresh skew): a record due for a refresh is
/// left to the slow path, which refreshes it. `scope` adds ?8, the
/// integration.
pub(super) fn record_read_returning(scope: ReadScope) -> String {
    let mut sql = String::from(
        "UPDATE credentials SET access_count = access_count + 1, last_accessed_at = ?2, \
           last_read = ?4 \
         WHERE id = ?1 AND secret_version = ?3 AND blob_nonce = ?5 AND tenant_id = ?6 \
           AND status IN ('active', 'expired') \
           AND (refresh_grant IS NULL OR token_endpoint IS NULL OR expires_at IS NULL \
             OR expires_at > ?7)",
    );
    sql.push_str(live!("credentials"));
    match scope {
        ReadScope::Id => {}
        ReadScope::IdInIntegration => sql.push_str(" AND integration_id = ?8"),
        ReadScope::Selection => sql.push_str(concat!(" AND id = ", selected_id!("?6", "?8", "?2"))),
    }
    sql.push_str(" RETURNING ");
    sql.push_str(&columns!().replace("c.", ""));
    sql.push_str(tenant_key_column!("credentials"));
    sql
}

/// ?1..?12, see `Store::audit_statement`.
pub(super) const AUDIT_INSERT: &str =
    "INSERT INTO audit_events (id, tenant_id, at, action, outcome, credential_id, actor_id, \
       actor_name, actor_email, actor_tenant_id, request_id, secret_version) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

/// As [`AUDIT_INSERT`], only if the batch's previous statement changed a row.
pub(super) const AUDIT_INSERT_IF_CHANGED: &str =
    "INSERT INTO audit_events (id, tenant_id, at, action, outcome, credential_id, actor_id, \
       actor_name, actor_email, actor_tenant_id, request_id, secret_version) \
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12 WHERE changes() = 1";

/// ?1 id.
pub(super) const LIST_SHARES: &str =
    "SELECT credential_id, tenant_id, granted_at, granted_by FROM shares \
     WHERE credential_id = ?1 ORDER BY granted_at, tenant_id";

/// ?1 id, ?2 tenant, ?3 now, ?4 grantor.
pub(super) const GRANT_SHARE: &str =
    "INSERT INTO shares (credential_id, tenant_id, granted_at, granted_by) \
     SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM credentials WHERE id = ?1) \
     ON CONFLICT (credential_id, tenant_id) DO UPDATE SET tenant_id = excluded.tenant_id \
     RETURNING credential_id, tenant_id, granted_at, granted_by";

/// ?1 id, ?2 tenant.
pub(super) const REVOKE_SHARE: &str =
    "DELETE FROM shares WHERE credential_id = ?1 AND tenant_id = ?2";

/// ?1 now, ?2 batch size: marks active records past `expires_at` expired.
pub(super) const EXPIRE_DUE: &str = "UPDATE credentials SET status = 'expired' WHERE id IN \
       (SELECT id FROM credentials WHERE status = 'active' AND expires_at <= ?1 LIMIT ?2)";

/// ?1 active kid, ?2 / ?3 resume after this tenant and version, ?4 batch
/// size: tenant keys still wrapped under another master key.
pub(super) const TENANT_KEYS_NOT_UNDER: &str =
    "SELECT tenant_id, version, kid, wrapped_key, kv_nonce FROM tenant_keys \
     WHERE (kid < ?1 OR kid > ?1) AND (tenant_id, version) > (?2, ?3) \
     ORDER BY tenant_id, version LIMIT ?4";

/// ?1 active kid: tenant keys still wrapped under another master key.
pub(super) const COUNT_TENANT_KEYS_NOT_UNDER: &str =
    "SELECT count(*) AS n FROM tenant_keys WHERE kid < ?1 OR kid > ?1";

/// ?1 tenant, ?2 version, ?3 new kid, ?4 new wrapped key, ?5 old kid: the
/// master rotation's one statement per tenant key, only if nothing
/// rewrapped it meanwhile.
pub(super) const REWRAP_TENANT_KEY: &str = "UPDATE tenant_keys SET kid = ?3, wrapped_key = ?4 \
     WHERE tenant_id = ?1 AND version = ?2 AND kid = ?5";

/// ?1 resume after this id, ?2 batch size: current data keys still wrapped
/// under a master key directly (rows from before migration 0007).
pub(super) const LEGACY_WRAPS: &str =
    "SELECT id, tenant_id, secret_version, kid, wrapped_dek FROM credentials \
     WHERE tk_version IS NULL AND id > ?1 ORDER BY id LIMIT ?2";

/// Legacy data keys left, current and earlier versions.
pub(super) const COUNT_LEGACY_WRAPS: &str =
    "SELECT (SELECT count(*) FROM credentials WHERE tk_version IS NULL) + \
       (SELECT count(*) FROM secret_versions WHERE tk_version IS NULL AND wrapped_dek IS NOT NULL) \
     AS n";

/// ?1 resume after this credential, ?2 and version, ?3 batch size: earlier
/// secret versions whose data key is still under a master key directly.
pub(super) const LEGACY_VERSION_WRAPS: &str =
    "SELECT credential_id AS id, tenant_id, secret_version, kid, wrapped_dek \
     FROM secret_versions WHERE tk_version IS NULL AND wrapped_dek IS NOT NULL \
       AND (credential_id, secret_version) > (?1, ?2) \
     ORDER BY credential_id, secret_version LIMIT ?3";

/// ?1 id, ?2 secret version, ?3 new wrapped key, ?4 tenant-key version, ?5
/// old wrapped key: moves a current data key under a tenant key (the legacy
/// migration and a tenant-key rotation), only if no writer replaced the
/// secret or its wrap meanwhile and the tenant key still exists.
pub(super) const MOVE_WRAP: &str = concat!(
    "UPDATE credentials SET kid = '', wrapped_dek = ?3, tk_version = ?4 \
     WHERE id = ?1 AND secret_version = ?2 AND wrapped_dek = ?5 AND ",
    tenant_key_exists!("credentials.tenant_id", "?4")
);

/// As [`MOVE_WRAP`], for an earlier secret version.
pub(super) const MOVE_VERSION_WRAP: &str = concat!(
    "UPDATE secret_versions SET kid = '', wrapped_dek = ?3, tk_version = ?4 \
     WHERE credential_id = ?1 AND secret_version = ?2 AND wrapped_dek = ?5 AND ",
    tenant_key_exists!("secret_versions.tenant_id", "?4")
);

/// ?1 JSON array of ids: the secret writes whose blobs they keep (current
/// and earlier versions not destroyed).
pub(super) const SECRET_VERSIONS: &str = "SELECT id, secret_version, blob_nonce FROM credentials \
     WHERE id IN (SELECT value FROM json_each(?1)) \
     UNION ALL SELECT credential_id AS id, secret_version, blob_nonce FROM secret_versions \
     WHERE credential_id IN (SELECT value FROM json_each(?1)) AND destroyed_at IS NULL";

/// ?1 tenant: its active tenant key.
pub(super) const ACTIVE_TENANT_KEY: &str =
    "SELECT version, kid, wrapped_key, kv_nonce FROM tenant_keys \
     WHERE tenant_id = ?1 AND state = 'active'";

/// ?1 tenant, ?2 now: the tenant's row, if this is its first key.
pub(super) const INSERT_TENANT: &str = "INSERT INTO tenants (tenant_id, created_at) \
     VALUES (?1, ?2) ON CONFLICT (tenant_id) DO NOTHING";

/// ?1 tenant, ?2 version, ?3 kid, ?4 wrapped key, ?5 now, ?6 KV nonce: a
/// tenant's first key; a racing request that created one first wins (then
/// nothing changes, and the caller reads the winner's).
pub(super) const INSERT_FIRST_TENANT_KEY: &str =
    "INSERT INTO tenant_keys (tenant_id, version, kid, wrapped_key, state, created_at, kv_nonce) \
     SELECT ?1, ?2, ?3, ?4, 'active', ?5, ?6 WHERE NOT EXISTS \
       (SELECT 1 FROM tenant_keys WHERE tenant_id = ?1) \
       AND NOT EXISTS (SELECT 1 FROM tenants WHERE tenant_id = ?1 AND deleted_at IS NOT NULL)";

/// ?1 id: the record's earlier secret versions, newest first.
pub(super) const LIST_VERSIONS: &str =
    "SELECT secret_version, created_at, created_by, destroyed_at FROM secret_versions \
     WHERE credential_id = ?1 ORDER BY secret_version DESC";

/// ?1 id, ?2 secret version: one earlier version with what opens it.
pub(super) const FIND_VERSION: &str =
    "SELECT v.secret_version, v.blob_nonce, v.tk_version, v.kid, v.wrapped_dek, v.created_at, \
       v.created_by, v.destroyed_at, \
       (SELECT t.wrapped_key || ' ' || t.kv_nonce FROM tenant_keys t \
          WHERE t.tenant_id = v.tenant_id \
          AND t.version = v.tk_version) AS tenant_key \
     FROM secret_versions v WHERE v.credential_id = ?1 AND v.secret_version = ?2";

/// ?1 id, ?2 secret version, ?3 now, ?4 the owner: destroys a kept version
/// (its data key dropped; the caller deletes the blob after the commit).
pub(super) const DESTROY_VERSION: &str =
    "UPDATE secret_versions SET wrapped_dek = NULL, destroyed_at = ?3 \
     WHERE credential_id = ?1 AND secret_version = ?2 AND tenant_id = ?4 \
       AND destroyed_at IS NULL \
     RETURNING blob_nonce";

/// ?1 tenant: `deleted_at` of a tenant the vault knows.
pub(super) const TENANT_STATUS: &str = "SELECT deleted_at FROM tenants WHERE tenant_id = ?1";

/// ?1 tenant, ?2 now, ?3 deleting admin: marks the tenant deleted (a
/// tenant without records gets its row now); changes nothing if it already
/// was.
pub(super) const MARK_TENANT_DELETED: &str =
    "INSERT INTO tenants (tenant_id, created_at, deleted_at, deleted_by) VALUES (?1, ?2, ?2, ?3) \
     ON CONFLICT (tenant_id) DO UPDATE SET deleted_at = excluded.deleted_at, \
       deleted_by = excluded.deleted_by WHERE tenants.deleted_at IS NULL";

/// ?1 tenant: destroys every key of the tenant (crypto-shredding),
/// returning what names their KV halves (deleted next).
pub(super) const DESTROY_TENANT_KEYS: &str =
    "DELETE FROM tenant_keys WHERE tenant_id = ?1 RETURNING version, kv_nonce";

/// ?1 tenant: drops the tenant's legacy data keys (under a master key
/// directly, not yet migrated), which the tenant keys do not cover.
pub(super) const DROP_LEGACY_WRAPS: &str =
    "UPDATE credentials SET wrapped_dek = '' WHERE tenant_id = ?1 AND tk_version IS NULL";

/// ?1 tenant, ?2 now: as [`DROP_LEGACY_WRAPS`] for earlier versions.
pub(super) const DROP_LEGACY_VERSION_WRAPS: &str =
    "UPDATE secret_versions SET wrapped_dek = NULL, destroyed_at = ?2 \
     WHERE tenant_id = ?1 AND tk_version IS NULL AND wrapped_dek IS NOT NULL";

/// ?1 batch size: deleted tenants whose rows the sweep has not yet removed.
pub(super) const TENANTS_TO_PURGE: &str =
    "SELECT tenant_id FROM tenants WHERE deleted_at IS NOT NULL AND purged_at IS NULL \
     ORDER BY deleted_at, tenant_id LIMIT ?1";

/// ?1 tenant, ?2 batch size: a deleted tenant's records.
pub(super) const TENANT_RECORDS: &str =
    "SELECT id, secret_version, blob_nonce FROM credentials WHERE tenant_id = ?1 LIMIT ?2";

/// ?1 tenant, ?2 batch size: a deleted tenant's earlier secret versions.
pub(super) const TENANT_VERSIONS: &str =
    "SELECT credential_id AS id, secret_version, blob_nonce FROM secret_versions \
     WHERE tenant_id = ?1 LIMIT ?2";

/// ?1 credential, ?2 secret version.
pub(super) const PURGE_VERSION: &str =
    "DELETE FROM secret_versions WHERE credential_id = ?1 AND secret_version = ?2";

/// ?1 credential.
pub(super) const PURGE_SHARES_OF: &str = "DELETE FROM shares WHERE credential_id = ?1";

/// ?1 credential.
pub(super) const PURGE_RECORD: &str = "DELETE FROM credentials WHERE id = ?1";

/// ?1 tenant: shares other tenants granted to the deleted one.
pub(super) const PURGE_SHARES_TO: &str = "DELETE FROM shares WHERE tenant_id = ?1";

/// ?1 tenant, ?2 batch size: the deleted tenant's audit events but its
/// `tenant.delete` event, which is kept.
pub(super) const PURGE_AUDIT: &str =
    "DELETE FROM audit_events WHERE seq IN (SELECT seq FROM audit_events \
       WHERE tenant_id = ?1 AND action != 'tenant.delete' LIMIT ?2)";

/// ?1 tenant, ?2 now.
pub(super) const MARK_PURGED: &str = "UPDATE tenants SET purged_at = ?2 WHERE tenant_id = ?1";

/// ?1 tenant: its retiring key (a tenant-key rotation in progress).
pub(super) const RETIRING_TENANT_KEY: &str =
    "SELECT version, kid, wrapped_key, kv_nonce FROM tenant_keys \
     WHERE tenant_id = ?1 AND state = 'retiring'";

/// ?1 tenant, ?2 active version: starts a tenant-key rotation (the active
/// key becomes `retiring`), unless one is in progress.
pub(super) const RETIRE_ACTIVE_KEY: &str =
    "UPDATE tenant_keys SET state = 'retiring' WHERE tenant_id = ?1 AND version = ?2 \
       AND state = 'active' AND NOT EXISTS \
       (SELECT 1 FROM tenant_keys r WHERE r.tenant_id = ?1 AND r.state = 'retiring')";

/// ?1 tenant, ?2 version, ?3 kid, ?4 wrapped key, ?5 now, ?6 KV nonce: the
/// new active key, only if the previous statement of the batch retired the
/// old one.
pub(super) const INSERT_NEXT_TENANT_KEY: &str =
    "INSERT INTO tenant_keys (tenant_id, version, kid, wrapped_key, state, created_at, kv_nonce) \
     SELECT ?1, ?2, ?3, ?4, 'active', ?5, ?6 WHERE changes() = 1";

/// ?1 tenant, ?2 tenant-key version, ?3 after id, ?4 batch size: current
/// data keys under that tenant key.
pub(super) const WRAPS_UNDER: &str = "SELECT id, secret_version, wrapped_dek FROM credentials \
     WHERE tenant_id = ?1 AND tk_version = ?2 AND id > ?3 ORDER BY id LIMIT ?4";

/// ?1 tenant, ?2 tenant-key version, ?3 / ?4 after credential and version,
/// ?5 batch size: earlier versions' data keys under that tenant key.
pub(super) const VERSION_WRAPS_UNDER: &str =
    "SELECT credential_id AS id, secret_version, wrapped_dek FROM secret_versions \
     WHERE tenant_id = ?1 AND tk_version = ?2 AND wrapped_dek IS NOT NULL \
       AND (credential_id, secret_version) > (?3, ?4) \
     ORDER BY credential_id, secret_version LIMIT ?5";

/// ?1 tenant, ?2 tenant-key version: data keys still under it.
pub(super) const COUNT_WRAPS_UNDER: &str =
    "SELECT (SELECT count(*) FROM credentials WHERE tenant_id = ?1 AND tk_version = ?2) + \
       (SELECT count(*) FROM secret_versions WHERE tenant_id = ?1 AND tk_version = ?2 \
          AND wrapped_dek IS NOT NULL) AS n";

/// ?1 tenant, ?2 version: deletes a retiring key once no data key is
/// wrapped under it (checked in the same statement, so a write that sealed
/// under it meanwhile keeps it).
pub(super) const DELETE_RETIRED_KEY: &str =
    "DELETE FROM tenant_keys WHERE tenant_id = ?1 AND version = ?2 AND state = 'retiring' \
       AND NOT EXISTS (SELECT 1 FROM credentials WHERE tenant_id = ?1 AND tk_version = ?2) \
       AND NOT EXISTS (SELECT 1 FROM secret_versions WHERE tenant_id = ?1 AND tk_version = ?2 \
         AND wrapped_dek IS NOT NULL) \
     RETURNING kv_nonce";

/// ?1 id, ?2 holder, ?3 lease end, ?4 expected version, ?5 now, ?6 forced
/// (0 or 1): takes the refresh lease of a record still at the version the
/// taker loaded, when no unexpired lease is held and (unless forced) no
/// backoff or halt holds automatic refreshes back. The compare-and-set
/// picks one refresher among any number of readers on any isolate.
pub(super) const REFRESH_LEASE: &str = concat!(
    "UPDATE credentials SET refresh_lease_holder = ?2, refresh_lease_until = ?3 \
     WHERE id = ?1 AND version = ?4 AND status IN ('active', 'expired') \
       AND (refresh_lease_until IS NULL OR refresh_lease_until <= ?5) \
       AND (?6 = 1 OR (refresh_halted = 0 \
         AND (refresh_not_before IS NULL OR refresh_not_before <= ?5)))",
    live!("credentials")
);

/// ?1 id, ?2 expected version, ?3 new version (also the secret version),
/// ?4 kid, ?5 wrapped key, ?6 blob nonce, ?7 new expiry, ?8 now, ?9
/// updated_by, ?10 lease holder, ?11 the tenant-key version the new data
/// key is wrapped under: stores a refreshed secret only if nobody changed
/// the record since the lease was taken (a `PATCH` wins), the lease is
/// still ours and that tenant key still exists (not rotated away, not
/// destroyed by a tenant deletion); a stored `expired` becomes `active`
/// again. The new secret version is written as a `PATCH` writes one
/// ([`KEEP_REFRESHED_VERSION`] keeps the replaced one in the same batch).
pub(super) const REFRESH_STORE: &str = concat!(
    "UPDATE credentials SET version = ?3, secret_version = ?3, kid = ?4, wrapped_dek = ?5, \
       blob_nonce = ?6, expires_at = ?7, tk_version = ?11, secret_at = ?8, secret_by = ?9, \
       status = CASE WHEN status = 'expired' THEN 'active' ELSE status END, \
       updated_at = ?8, updated_by = ?9, refreshed_at = ?8, refresh_failures = 0, \
       refresh_not_before = NULL, refresh_halted = 0, refresh_lease_holder = NULL, \
       refresh_lease_until = NULL \
     WHERE id = ?1 AND version = ?2 AND refresh_lease_holder = ?10 AND ",
    tenant_key_exists!("credentials.tenant_id", "?11")
);

/// ?1 id, ?2 expected version, ?3 the new data key's tenant-key version,
/// ?4 lease holder: keeps the current secret version as an earlier one
/// before [`REFRESH_STORE`] in the same batch replaces it, under exactly
/// that statement's conditions, so both happen or neither.
pub(super) const KEEP_REFRESHED_VERSION: &str = concat!(
    "INSERT INTO secret_versions (credential_id, secret_version, tenant_id, blob_nonce, \
       tk_version, kid, wrapped_dek, created_at, created_by, destroyed_at) \
     SELECT id, secret_version, tenant_id, blob_nonce, tk_version, kid, wrapped_dek, \
       COALESCE(secret_at, updated_at), COALESCE(secret_by, updated_by), NULL \
     FROM credentials WHERE id = ?1 AND version = ?2 AND refresh_lease_holder = ?4 AND ",
    tenant_key_exists!("credentials.tenant_id", "?3"),
    " ON CONFLICT (credential_id, secret_version) DO NOTHING"
);

/// ?1 id, ?2 lease holder, ?3 expected version, ?4 last error (JSON), ?5
/// failures, ?6 backoff end, ?7 halted (0 or 1): records a failed attempt
/// against the secret it was made with (not after a `PATCH` replaced it).
pub(super) const REFRESH_FAILED: &str =
    "UPDATE credentials SET refresh_error = ?4, refresh_failures = ?5, \
       refresh_not_before = ?6, refresh_halted = ?7, refresh_lease_holder = NULL, \
       refresh_lease_until = NULL \
     WHERE id = ?1 AND refresh_lease_holder = ?2 AND version = ?3";

/// ?1 id, ?2 lease holder: gives the lease back, if still ours.
pub(super) const REFRESH_RELEASE: &str =
    "UPDATE credentials SET refresh_lease_holder = NULL, refresh_lease_until = NULL \
     WHERE id = ?1 AND refresh_lease_holder = ?2";

/// ?1 due before, ?2 now, ?3 batch size: records whose token expires
/// before ?1 and that an automatic refresh may try now, soonest first, with
/// their tenant key (the refresh sweep's; no caller, no secret served).
/// A deleted tenant's records are never due: their secrets are shredded.
pub(super) const REFRESH_DUE: &str = concat!(
    "SELECT ",
    columns!(),
    tenant_key_column!("c"),
    " FROM credentials c \
     WHERE c.refresh_grant IS NOT NULL AND c.expires_at IS NOT NULL AND c.expires_at <= ?1 \
       AND c.token_endpoint IS NOT NULL AND c.status IN ('active', 'expired') \
       AND c.refresh_halted = 0 \
       AND (c.refresh_not_before IS NULL OR c.refresh_not_before <= ?2) \
       AND (c.refresh_lease_until IS NULL OR c.refresh_lease_until <= ?2)",
    live!("c"),
    " ORDER BY c.expires_at LIMIT ?3"
);

/// ?1 id: the refresh state a reader waiting for a refresher polls (the
/// version tells whether the secret changed).
pub(super) const REFRESH_POLL: &str =
    "SELECT version, refresh_lease_until, refresh_failures, refresh_not_before, refresh_halted, \
       refresh_error FROM credentials WHERE id = ?1";

/// ?1 key.
pub(super) const META_GET: &str = "SELECT value FROM coffer_meta WHERE key = ?1";

/// ?1 key, ?2 value.
pub(super) const META_SET: &str = "INSERT INTO coffer_meta (key, value) VALUES (?1, ?2) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/// ?1 key.
pub(super) const META_DELETE: &str = "DELETE FROM coffer_meta WHERE key = ?1";

/// ?1 0: the oldest audit event of any tenant (the archive sweep), but
/// not of a deleted tenant the shred sweep has not finished: its events are
/// removed, not archived, all but its `tenant.delete` event, which is
/// archived like any other once the tenant is purged.
pub(super) const AUDIT_OLDEST: &str =
    "SELECT a.seq, a.tenant_id, a.at FROM audit_events a WHERE a.seq > ?1 \
       AND NOT EXISTS (SELECT 1 FROM tenants d WHERE d.tenant_id = a.tenant_id \
         AND d.deleted_at IS NOT NULL AND d.purged_at IS NULL) \
     ORDER BY a.seq LIMIT 1";

/// The columns of an audit event, in `AuditRow` order.
macro_rules! audit_columns {
    () => {
        "seq, id, at, action, outcome, credential_id, actor_id, actor_name, actor_email, \
         actor_tenant_id, request_id, secret_version"
    };
}

/// ?1 tenant, ?2 first sequence, ?3 limit: the tenant's events from ?2 on,
/// oldest first (the archive sweep).
pub(super) const AUDIT_FROM: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_events WHERE tenant_id = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3"
);

/// ?1 tenant, ?2 first, ?3 last sequence, ?4 limit: exactly those events.
pub(super) const AUDIT_RANGE: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_events WHERE tenant_id = ?1 AND seq >= ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4"
);

/// ?1 tenant, ?2 first, ?3 last sequence, ?4 the count archived: removes
/// the archived events, only if D1 holds exactly that many of them.
pub(super) const AUDIT_DELETE_ARCHIVED: &str =
    "DELETE FROM audit_events WHERE tenant_id = ?1 AND seq >= ?2 AND seq <= ?3 \
       AND (SELECT count(*) FROM audit_events WHERE tenant_id = ?1 AND seq >= ?2 AND seq <= ?3) = ?4";

/// ?1 tenant, ?2 archived before (Unix ms): moves the tenant's archive mark
/// forward, only if the batch's delete removed events.
pub(super) const ARCHIVE_MARK_SET: &str =
    "INSERT INTO audit_archive_marks (tenant_id, archived_before) SELECT ?1, ?2 WHERE changes() > 0 \
     ON CONFLICT (tenant_id) DO UPDATE SET archived_before = max(archived_before, excluded.archived_before)";

/// ?1 tenant: where the tenant's archive ends (the audit route's page).
pub(super) const ARCHIVE_MARK_GET: &str =
    "SELECT archived_before FROM audit_archive_marks WHERE tenant_id = ?1";

/// Appends ` AND <fragment>` with the next parameter numbers; `next` is the
/// number of parameters bound so far.
struct Builder {
    sql: String,
    params: usize,
}

impl Builder {
    fn new(sql: &str, params: usize) -> Self {
        Self {
            sql: sql.to_string(),
            params,
        }
    }

    fn param(&mut self) -> usize {
        self.params += 1;
        self.params
    }

    fn finish_page(mut self, order: &str) -> String {
        let limit = self.param();
        self.sql
            .push_str(&format!(" ORDER BY {order} LIMIT ?{limit}"));
        self.sql
    }
}

/// The effective-status condition, `now` being parameter `?now`.
fn status_filter(status: Status, now: usize) -> String {
    let past = format!("(c.expires_at IS NOT NULL AND c.expires_at <= ?{now})");
    match status {
        // A stored `expired` whose expiry was cleared is active again, as
        // `coffer_core::effective_status` says.
        Status::Active => format!(" AND c.status IN ('active', 'expired') AND NOT {past}"),
        Status::Expired => format!(" AND c.status IN ('active', 'expired') AND {past}"),
        Status::Inactive => " AND c.status = 'inactive'".into(),
        Status::Revoked => " AND c.status = 'revoked'".into(),
    }
}

/// The tenant's own records. Parameters in order: tenant, [integration],
/// [now, if `status`], [cursor created_at, cursor id], limit.
pub(super) fn list(integration: bool, status: Option<Status>, cursor: bool) -> String {
    let mut b = Builder::new(
        concat!(
            "SELECT ",
            columns!(),
            tenant_key_column!("c"),
            " FROM credentials c WHERE c.tenant_id = ?1",
            live!("c")
        ),
        1,
    );
    if integration {
        let n = b.param();
        b.sql.push_str(&format!(" AND c.integration_id = ?{n}"));
    }
    if let Some(status) = status {
        let n = b.param();
        b.sql.push_str(&status_filter(status, n));
    }
    if cursor {
        let (at, id) = (b.param(), b.param());
        b.sql
            .push_str(&format!(" AND (c.created_at, c.id) < (?{at}, ?{id})"));
    }
    b.finish_page("c.created_at DESC, c.id DESC")
}

/// Own and shared records. Parameters: tenant, [integration], [cursor
/// created_at, cursor id], limit.
pub(super) fn list_connections(integration: bool, cursor: bool) -> String {
    let mut b = Builder::new(
        concat!(
            "SELECT ",
            columns!(),
            tenant_key_column!("c"),
            ", (c.tenant_id != ?1) AS shared FROM credentials c \
             WHERE (c.tenant_id = ?1 OR c.id IN \
               (SELECT s.credential_id FROM shares s WHERE s.tenant_id = ?1))",
            live!("c")
        ),
        1,
    );
    if integration {
        let n = b.param();
        b.sql.push_str(&format!(" AND c.integration_id = ?{n}"));
    }
    if cursor {
        let (at, id) = (b.param(), b.param());
        b.sql
            .push_str(&format!(" AND (c.created_at, c.id) < (?{at}, ?{id})"));
    }
    b.finish_page("c.created_at DESC, c.id DESC")
}

/// A tenant's audit log. Parameters: tenant, [credential], [cursor seq], limit.
pub(super) fn list_audit(credential: bool, cursor: bool) -> String {
    let mut b = Builder::new(
        "SELECT seq, id, at, action, outcome, credential_id, actor_id, actor_name, \
           actor_email, actor_tenant_id, request_id, secret_version FROM audit_events \
         WHERE tenant_id = ?1",
        1,
    );
    if credential {
        let n = b.param();
        b.sql.push_str(&format!(" AND credential_id = ?{n}"));
    }
    if cursor {
        let n = b.param();
        b.sql.push_str(&format!(" AND seq < ?{n}"));
    }
    b.finish_page("seq DESC")
}

/// Every statement a request can run, for the plan test.
#[cfg(all(test, not(target_arch = "wasm32")))]
pub(super) fn all() -> Vec<String> {
    let mut statements: Vec<String> = [
        FIND,
        SELECT_FOR_INTEGRATION,
        INSERT,
        UPDATE_METADATA,
        UPDATE_WITH_SECRET,
        DELETE,
        DELETE_SHARES_OF_DELETED,
        RECORD_READ,
        RECORD_VERSION_READ,
        LIST_VERSIONS,
        FIND_VERSION,
        DESTROY_VERSION,
        AUDIT_INSERT,
        AUDIT_INSERT_IF_CHANGED,
        LIST_SHARES,
        GRANT_SHARE,
        REVOKE_SHARE,
        EXPIRE_DUE,
        TENANT_KEYS_NOT_UNDER,
        COUNT_TENANT_KEYS_NOT_UNDER,
        REWRAP_TENANT_KEY,
        LEGACY_WRAPS,
        COUNT_LEGACY_WRAPS,
        LEGACY_VERSION_WRAPS,
        MOVE_WRAP,
        MOVE_VERSION_WRAP,
        KEEP_CURRENT_VERSION,
        DROP_OLD_VERSIONS,
        DELETE_VERSIONS_OF_DELETED,
        ACTIVE_TENANT_KEY,
        INSERT_TENANT,
        INSERT_FIRST_TENANT_KEY,
        SECRET_VERSIONS,
        TENANT_STATUS,
        MARK_TENANT_DELETED,
        DESTROY_TENANT_KEYS,
        DROP_LEGACY_WRAPS,
        DROP_LEGACY_VERSION_WRAPS,
        TENANTS_TO_PURGE,
        TENANT_RECORDS,
        TENANT_VERSIONS,
        PURGE_VERSION,
        PURGE_SHARES_OF,
        PURGE_RECORD,
        PURGE_SHARES_TO,
        PURGE_AUDIT,
        MARK_PURGED,
        RETIRING_TENANT_KEY,
        RETIRE_ACTIVE_KEY,
        INSERT_NEXT_TENANT_KEY,
        WRAPS_UNDER,
        VERSION_WRAPS_UNDER,
        COUNT_WRAPS_UNDER,
        DELETE_RETIRED_KEY,
        META_GET,
        META_SET,
        META_DELETE,
        AUDIT_OLDEST,
        AUDIT_FROM,
        AUDIT_RANGE,
        AUDIT_DELETE_ARCHIVED,
        ARCHIVE_MARK_SET,
        ARCHIVE_MARK_GET,
        REFRESH_LEASE,
        REFRESH_STORE,
        KEEP_REFRESHED_VERSION,
        REFRESH_FAILED,
        REFRESH_RELEASE,
        REFRESH_DUE,
        REFRESH_POLL,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for scope in [
        ReadScope::Id,
        ReadScope::IdInIntegration,
        ReadScope::Selection,
    ] {
        statements.push(record_read_returning(scope));
    }
    for integration in [false, true] {
        for cursor in [false, true] {
            for status in [
                None,
                Some(Status::Active),
                Some(Status::Expired),
                Some(Status::Revoked),
            ] {
                statements.push(list(integration, status, cursor));
            }
            statements.push(list_connections(integration, cursor));
            statements.push(list_audit(integration, cursor));
        }
    }
    statements
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use std::fs;

    use rusqlite::Connection;

    /// Applies `migrations/*.sql` in order, as wrangler does.
    fn migrated() -> Connection {
        let db = Connection::open_in_memory().expect("in-memory SQLite");
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
        let mut files: Vec<_> = fs::read_dir(dir)
            .expect("migrations dir")
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
            .collect();
        files.sort();
        for file in files {
            let sql = fs::read_to_string(&file).expect("read migration");
            db.execute_batch(&sql).expect("apply migration");
        }
        db
    }

    /// Statements that legitimately walk an index or a key range rather than
    /// look up one tenant's rows or one record: the scheduled sweeps, which
    /// read across every tenant in bounded batches. They still must not scan
    /// a whole table without an index.
    const SWEEPS: [&str; 9] = [
        super::TENANTS_TO_PURGE,
        super::EXPIRE_DUE,
        super::TENANT_KEYS_NOT_UNDER,
        super::COUNT_TENANT_KEYS_NOT_UNDER,
        super::LEGACY_WRAPS,
        super::COUNT_LEGACY_WRAPS,
        super::LEGACY_VERSION_WRAPS,
        super::AUDIT_OLDEST,
        super::REFRESH_DUE,
    ];

    /// The plan's detail lines (column 3 of `EXPLAIN QUERY PLAN`).
    fn plan(db: &Connection, sql: &str) -> Vec<String> {
        let mut statement = db
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap_or_else(|error| panic!("{error}: {sql}"));
        // Parameters stay unbound (NULL): the plan does not depend on them.
        let mut rows = statement.raw_query();
        let mut details: Vec<String> = Vec::new();
        while let Some(row) = rows.next().expect("query plan") {
            details.push(row.get(3).expect("plan detail"));
        }
        details
    }

    /// `(leading column, is the primary key)` of the index `name`.
    fn index_facts(db: &Connection, name: &str) -> (String, bool) {
        let table: String = db
            .query_row(
                "SELECT tbl_name FROM sqlite_master WHERE type = 'index' AND name = ?1",
                [name],
                |row| row.get(0),
            )
            .unwrap_or_else(|error| panic!("index {name}: {error}"));
        let leading: String = db
            .query_row(
                "SELECT name FROM pragma_index_info(?1) WHERE seqno = 0",
                [name],
                |row| row.get(0),
            )
            .unwrap_or_else(|error| panic!("columns of {name}: {error}"));
        let origin: String = db
            .query_row(
                "SELECT origin FROM pragma_index_list(?1) WHERE name = ?2",
                [table.as_str(), name],
                |row| row.get(0),
            )
            .unwrap_or_else(|error| panic!("origin of {name}: {error}"));
        (leading, origin == "pk")
    }

    /// Why a request statement's plan line is not a tenant-scoped or
    /// primary-key lookup, or `None` when it is (or is no table access).
    ///
    /// A `SEARCH` must use the primary key, or an index led by `tenant_id`,
    /// with an equality on that leading column: `SEARCH c USING INDEX
    /// credentials_by_tenant (tenant_id=?)`. Any `SCAN` of a table, with an
    /// index or not, walks all of it (or all of the index) and is refused.
    fn request_plan_fault(db: &Connection, detail: &str) -> Option<String> {
        if detail == "SCAN CONSTANT ROW" || detail.contains("VIRTUAL TABLE") {
            // A bare `SELECT` without a table; json_each of a bound parameter.
            return None;
        }
        if detail.starts_with("SCAN ") {
            return Some("scans instead of searching".into());
        }
        let Some(rest) = detail.strip_prefix("SEARCH ") else {
            // MULTI-INDEX OR, subquery headers, temp B-trees for ORDER BY.
            return None;
        };
        let Some((_, using)) = rest.split_once(" USING ") else {
            return Some("searches without naming how".into());
        };
        let (access, constraint) = using
            .split_once(" (")
            .map_or((using, ""), |(access, constraint)| (access, constraint));
        let leading = if access == "PRIMARY KEY" || access == "INTEGER PRIMARY KEY" {
            // A WITHOUT ROWID table's key, or the rowid: SQLite names the
            // constrained key columns, the first being the key's first.
            None
        } else {
            let name = access
                .strip_prefix("COVERING INDEX ")
                .or_else(|| access.strip_prefix("INDEX "))
                .unwrap_or_else(|| panic!("unknown access {access:?} in {detail:?}"));
            let (leading, primary) = index_facts(db, name);
            if !primary && leading != "tenant_id" {
                return Some(format!(
                    "uses {name}, led by {leading}, neither tenant_id nor the primary key"
                ));
            }
            Some(leading)
        };
        let constraint = constraint.strip_suffix(')').unwrap_or(constraint);
        let first = constraint.split(" AND ").next().unwrap_or_default();
        let equality = match &leading {
            Some(column) => first == format!("{column}=?"),
            None => first.ends_with("=?") && !first.ends_with("<=?") && !first.ends_with(">=?"),
        };
        if equality {
            None
        } else {
            Some(format!(
                "walks a range of the index, not one tenant or one key ({first:?})"
            ))
        }
    }

    /// Every statement on a request path looks up one tenant's rows or one
    /// record by key: each table access SEARCHes the primary key or an index
    /// led by `tenant_id`, with an equality on that column. A `SCAN … USING
    /// INDEX` walks the whole index, which D1 bills and waits for row by row
    /// as it would a table scan. The sweeps (`SWEEPS`) read across tenants
    /// and only must not scan a table without an index.
    #[test]
    fn request_path_statements_use_indexes() {
        let db = migrated();
        let all = super::all();
        for sweep in SWEEPS {
            assert!(
                all.iter().any(|sql| sql == sweep),
                "a sweep statement missing from all(): {sweep}"
            );
        }
        for sql in &all {
            let details = plan(&db, sql);
            if SWEEPS.contains(&sql.as_str()) {
                for detail in &details {
                    // "SCAN <table>" without an index is a full scan.
                    let full_scan = detail.starts_with("SCAN ")
                        && !detail.contains("USING")
                        && !detail.contains("VIRTUAL TABLE")
                        && detail != "SCAN CONSTANT ROW";
                    assert!(!full_scan, "full scan in plan {details:?} of {sql}");
                }
                continue;
            }
            for detail in &details {
                if let Some(fault) = request_plan_fault(&db, detail) {
                    panic!("{detail:?} {fault}, in plan {details:?} of {sql}");
                }
            }
        }
    }

    /// The statuses the read-count statement serves are exactly those the
    /// core's `check_secret_servable` allows (stored `expired` included:
    /// its effective status is expired or, with the expiry cleared, active).
    #[test]
    fn record_read_serves_exactly_the_statuses_the_core_allows() {
        use super::{record_read_returning, ReadScope};
        let statements = [
            super::RECORD_READ.to_string(),
            super::RECORD_VERSION_READ.to_string(),
            record_read_returning(ReadScope::Id),
            record_read_returning(ReadScope::IdInIntegration),
            record_read_returning(ReadScope::Selection),
        ];
        for sql in &statements {
            let guard = sql
                .split("AND status IN (")
                .nth(1)
                .and_then(|rest| rest.split(')').next())
                .unwrap_or_else(|| panic!("no status guard in {sql}"));
            for status in coffer_core::Status::ALL {
                let quoted = format!("'{}'", status.as_str());
                assert_eq!(
                    guard.contains(&quoted),
                    coffer_core::check_secret_servable(status).is_ok(),
                    "{quoted} in {sql}"
                );
            }
        }
    }

    /// The fast path's statement finds what the slow path would: run both
    /// against the migrations on the same rows and compare.
    #[test]
    fn the_fast_read_finds_what_the_slow_path_finds() {
        use super::{record_read_returning, ReadScope};
        use rusqlite::params;
        let db = migrated();
        let tenant = "11111111-1111-4111-8111-111111111111";
        let other = "22222222-2222-4222-8222-222222222222";
        let insert = |id: &str,
                      owner: &str,
                      integration: &str,
                      status: &str,
                      created: i64,
                      expires: Option<i64>| {
            db.execute(
                "INSERT INTO credentials (id, tenant_id, integration_id, name, auth_type, scopes, \
                   metadata, status, expires_at, created_at, created_by, updated_at, updated_by, \
                   version, secret_version, kid, wrapped_dek, blob_nonce) \
                 VALUES (?1, ?2, ?3, 'n', 'api_key', '[]', '{}', ?4, ?5, ?6, '{}', ?6, '{}', 1, 1, 'k', 'AA==', 'n1')",
                params![id, owner, integration, status, expires, created],
            )
            .expect("insert");
        };
        insert(
            "a0000000-0000-4000-8000-000000000001",
            tenant,
            "gh",
            "active",
            10,
            None,
        );
        insert(
            "a0000000-0000-4000-8000-000000000002",
            tenant,
            "gh",
            "active",
            20,
            Some(15),
        );
        insert(
            "a0000000-0000-4000-8000-000000000003",
            tenant,
            "gh",
            "revoked",
            30,
            None,
        );
        insert(
            "a0000000-0000-4000-8000-000000000004",
            other,
            "gh",
            "active",
            40,
            None,
        );
        let now = 100_i64;
        let selected: String = db
            .query_row(
                super::SELECT_FOR_INTEGRATION,
                params![tenant, "gh", now],
                |r| r.get(0),
            )
            .expect("selected");
        assert_eq!(selected, "a0000000-0000-4000-8000-000000000001");
        let events = core::cell::Cell::new(0);
        let served =
            |scope: ReadScope, id: &str, reader: &str, integration: Option<&str>| -> bool {
                let sql = record_read_returning(scope);
                let mut statement = db.prepare(&sql).expect("prepare");
                events.set(events.get() + 1);
                let audit = format!(
                    r#"{{"id":"e{}","actor_id":"a","actor_tenant_id":"t","request_id":"r"}}"#,
                    events.get()
                );
                let rows = match integration {
                    Some(integration) => statement
                        .query_map(
                            params![id, now, 1, audit, "n1", reader, now, integration],
                            |r| r.get::<_, String>(0),
                        )
                        .expect("query")
                        .collect::<Result<Vec<_>, _>>()
                        .expect("rows")
                        .len(),
                    None => statement
                        .query_map(params![id, now, 1, audit, "n1", reader, now], |r| {
                            r.get::<_, String>(0)
                        })
                        .expect("query")
                        .collect::<Result<Vec<_>, _>>()
                        .expect("rows")
                        .len(),
                };
                rows == 1
            };
        // The selection rule's pick is served; the others are not.
        assert!(served(ReadScope::Selection, &selected, tenant, Some("gh")));
        assert!(!served(
            ReadScope::Selection,
            "a0000000-0000-4000-8000-000000000002",
            tenant,
            Some("gh")
        ));
        // By id: only the owner, only servable, only in its integration.
        assert!(served(
            ReadScope::Id,
            "a0000000-0000-4000-8000-000000000002",
            tenant,
            None
        ));
        assert!(!served(
            ReadScope::Id,
            "a0000000-0000-4000-8000-000000000003",
            tenant,
            None
        ));
        assert!(!served(
            ReadScope::Id,
            "a0000000-0000-4000-8000-000000000004",
            tenant,
            None
        ));
        assert!(!served(
            ReadScope::IdInIntegration,
            "a0000000-0000-4000-8000-000000000001",
            tenant,
            Some("gl")
        ));
        assert!(served(
            ReadScope::IdInIntegration,
            "a0000000-0000-4000-8000-000000000001",
            tenant,
            Some("gh")
        ));
    }

    /// The plan check itself, on statements it must refuse and accept.
    #[test]
    fn request_plan_check_refuses_index_scans_and_foreign_leads() {
        let db = migrated();
        let faults = |sql: &str| -> Vec<String> {
            plan(&db, sql)
                .iter()
                .filter_map(|detail| request_plan_fault(&db, detail))
                .collect()
        };
        // The tenant condition hidden from the planner: a walk of the whole
        // index (`SCAN c USING COVERING INDEX credentials_by_tenant`).
        let walk = "SELECT c.id FROM credentials c WHERE c.tenant_id || '' = ?1 \
                    ORDER BY c.created_at DESC, c.id DESC LIMIT ?2";
        assert!(!faults(walk).is_empty(), "{:?}", plan(&db, walk));
        // An index led by another column than tenant_id.
        let by_status = "SELECT id FROM credentials WHERE status = ?1";
        assert!(!faults(by_status).is_empty(), "{:?}", plan(&db, by_status));
        // A range of the primary key.
        let range = "SELECT id FROM credentials WHERE id > ?1 LIMIT 10";
        assert!(!faults(range).is_empty(), "{:?}", plan(&db, range));
        // A plain table scan.
        let scan = "SELECT id FROM credentials WHERE name = ?1";
        assert!(!faults(scan).is_empty(), "{:?}", plan(&db, scan));
        // Tenant-led and primary-key lookups pass.
        for good in [
            super::FIND,
            super::SELECT_FOR_INTEGRATION,
            super::LIST_SHARES,
        ] {
            assert_eq!(faults(good), Vec::<String>::new(), "{:?}", plan(&db, good));
        }
    }

    /// The selection rule walks the integration's index newest first and
    /// stops at its pick: no sort over the integration's records.
    #[test]
    fn the_selection_rule_sorts_nothing() {
        let db = migrated();
        for sql in [
            super::SELECT_FOR_INTEGRATION.to_string(),
            super::record_read_returning(super::ReadScope::Selection),
        ] {
            let plan = plan(&db, &sql);
            assert!(
                plan.iter().all(|line| !line.contains("TEMP B-TREE")),
                "{plan:?}"
            );
            assert!(
                plan.iter()
                    .any(|line| line.contains("credentials_by_tenant_integration")),
                "{plan:?}"
            );
        }
    }
}
