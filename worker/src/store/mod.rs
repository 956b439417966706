//! The only code that knows SQL and KV key layouts.
//!
//! D1 is the source of truth: ownership, shares, status, versions, the
//! wrapped data key and audit events. KV holds sealed blobs under immutable
//! keys (`secret/v1/<tenant>/<credential>/<secret version>`) and is never
//! consulted for access decisions. Writes go KV first, then D1, so D1 never
//! points at a missing blob; a blob whose D1 write failed is an orphan a
//! sweep may remove. Every multi-statement change is one D1 `batch`
//! (a transaction), and updates compare-and-set on `version`.
use alloc::rc::Rc;
use core::cell::Cell;

use base64::{engine::general_purpose::STANDARD, Engine as _};
use coffer_core::{CredentialId, Status, TenantId};
use serde::Deserialize;
use serde_json::{value::RawValue, Value};
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, Env, KvStore};

use crate::{env, error::ApiError};

mod audit;
mod guesses;
pub(crate) mod jwks_cache;
mod page;
mod shares;
mod sql;
mod sweep;
mod tenant_keys;
mod tenants;
mod versions;

pub(crate) use guesses::{Lookup, Remembered};

pub(crate) use audit::{AuditAction, AuditEvent, Outcome};
pub(crate) use page::{Cursor, Page};
pub(crate) use tenant_keys::StoredTenantKey;
pub(crate) use tenants::TenantWrap;
pub(crate) use versions::KeptVersion;

/// A stored credential, parsed from its D1 row.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) id: CredentialId,
    pub(crate) owner: TenantId,
    pub(crate) integration: String,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) auth_type: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) token_endpoint: Option<String>,
    pub(crate) authorization_endpoint: Option<String>,
    /// Compact JSON text as the client sent it (numbers keep their digits).
    pub(crate) metadata: Box<RawValue>,
    pub(crate) status: Status,
    pub(crate) expires_at: Option<i64>,
    pub(crate) created_at: i64,
    pub(crate) created_by: Value,
    pub(crate) updated_at: i64,
    pub(crate) updated_by: Value,
    pub(crate) tenant_name: Option<String>,
    pub(crate) last_accessed_at: Option<i64>,
    pub(crate) access_count: i64,
    pub(crate) version: i64,
    pub(crate) secret_version: i64,
    pub(crate) kid: String,
    pub(crate) wrapped_dek: Vec<u8>,
    /// Makes this secret write's KV key unique (see migration 0004).
    pub(crate) blob_nonce: String,
    /// The version of the owner's tenant key that wraps `wrapped_dek`;
    /// `None`: a legacy data key under the master key `kid` (migration 0007).
    pub(crate) tk_version: Option<u32>,
    /// That tenant key, wrapped under a master key, as loaded with the row
    /// (`None` for a legacy row, or when the key is gone).
    pub(crate) tenant_key: Option<TenantKeyRef>,
    /// When and by whom the current secret version was written (`None` on
    /// rows from before migration 0007).
    pub(crate) secret_at: Option<i64>,
    pub(crate) secret_by: Option<Value>,
}

/// The row as D1 returns it. Nullable columns are `Option`s: D1 gives
/// `null`, which serde-wasm-bindgen maps to `None`.
#[derive(Deserialize)]
pub(super) struct Row {
    id: String,
    tenant_id: String,
    integration_id: String,
    name: String,
    description: Option<String>,
    auth_type: String,
    scopes: String,
    token_endpoint: Option<String>,
    authorization_endpoint: Option<String>,
    metadata: String,
    status: String,
    expires_at: Option<i64>,
    created_at: i64,
    created_by: String,
    updated_at: i64,
    updated_by: String,
    tenant_name: Option<String>,
    last_accessed_at: Option<i64>,
    access_count: i64,
    version: i64,
    secret_version: i64,
    kid: String,
    wrapped_dek: String,
    blob_nonce: String,
    tk_version: Option<i64>,
    secret_at: Option<i64>,
    secret_by: Option<String>,
    #[serde(default)]
    tenant_key: Option<String>,
    #[serde(default)]
    shared: Option<i64>,
}

impl Row {
    pub(super) fn into_record(self) -> Result<(Record, bool), ApiError> {
        let corrupt =
            |what: &str| ApiError::internal(format!("stored row {} has a bad {what}", self.id));
        let record = Record {
            id: CredentialId::parse(&self.id).map_err(|_| corrupt("id"))?,
            owner: TenantId::parse(&self.tenant_id).map_err(|_| corrupt("tenant_id"))?,
            scopes: serde_json::from_str(&self.scopes).map_err(|_| corrupt("scopes"))?,
            metadata: RawValue::from_string(self.metadata).map_err(|_| corrupt("metadata"))?,
            status: Status::parse(&self.status).map_err(|_| corrupt("status"))?,
            created_by: serde_json::from_str(&self.created_by)
                .map_err(|_| corrupt("created_by"))?,
            updated_by: serde_json::from_str(&self.updated_by)
                .map_err(|_| corrupt("updated_by"))?,
            wrapped_dek: STANDARD
                .decode(&self.wrapped_dek)
                .map_err(|_| corrupt("wrapped_dek"))?,
            tk_version: self
                .tk_version
                .map(u32::try_from)
                .transpose()
                .map_err(|_| corrupt("tk_version"))?,
            tenant_key: self
                .tenant_key
                .as_deref()
                .map(TenantKeyRef::parse)
                .transpose()
                .map_err(|_| corrupt("tenant_key"))?,
            secret_by: self
                .secret_by
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|_| corrupt("secret_by"))?,
            secret_at: self.secret_at,
            integration: self.integration_id,
            name: self.name,
            description: self.description,
            auth_type: self.auth_type,
            token_endpoint: self.token_endpoint,
            authorization_endpoint: self.authorization_endpoint,
            expires_at: self.expires_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            tenant_name: self.tenant_name,
            last_accessed_at: self.last_accessed_at,
            access_count: self.access_count,
            version: self.version,
            secret_version: self.secret_version,
            kid: self.kid,
            blob_nonce: self.blob_nonce,
        };
        Ok((record, self.shared == Some(1)))
    }
}

/// A tenant key as loaded with a row: its D1 wrap, and the nonce that
/// names its KV half (`tenant-key/v1/<tenant>/<version>.<nonce>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TenantKeyRef {
    pub(crate) wrapped: Vec<u8>,
    pub(crate) kv_nonce: String,
}

impl TenantKeyRef {
    /// `<base64 wrap> <kv nonce>`, as the statements' subquery joins them.
    pub(crate) fn parse(text: &str) -> Result<Self, ()> {
        let (wrapped, nonce) = text.split_once(' ').ok_or(())?;
        Ok(Self {
            wrapped: STANDARD.decode(wrapped).map_err(|_| ())?,
            kv_nonce: nonce.to_string(),
        })
    }
}

/// `None` binds as SQL NULL. (`JsValue::UNDEFINED` is refused by D1, and
/// `Option` has no `Into<JsValue>` that would pick NULL for us.)
fn opt(value: Option<&str>) -> JsValue {
    value.map_or(JsValue::NULL, JsValue::from)
}

/// Integers bind as JS numbers; every integer Coffer stores (Unix ms,
/// counts, versions) stays far below 2^53, where f64 is exact.
fn int(value: i64) -> JsValue {
    JsValue::from_f64(value as f64)
}

fn opt_int(value: Option<i64>) -> JsValue {
    value.map_or(JsValue::NULL, int)
}

/// D1 errors are storage failures: logged, answered generically.
fn db_error(error: worker::Error) -> ApiError {
    ApiError::internal(format!("d1: {error}"))
}

fn kv_error(error: impl core::fmt::Display) -> ApiError {
    ApiError::internal(format!("kv: {error}"))
}

/// The KV key of a secret write's sealed blob. Immutable: every write of a
/// secret gets a new key (its version and a random nonce), so a reader never
/// sees a half-replaced blob and racing writers never share one.
pub(crate) fn blob_key(record: &Record) -> String {
    blob_key_of(
        &record.owner.to_string(),
        &record.id.to_string(),
        record.secret_version,
        &record.blob_nonce,
    )
}

/// The KV key of secret write `<version>.<nonce>` of a record.
pub(crate) fn blob_key_of(owner: &str, id: &str, version: i64, nonce: &str) -> String {
    if nonce.is_empty() {
        format!("{BLOB_PREFIX}{owner}/{id}/{version}")
    } else {
        format!("{BLOB_PREFIX}{owner}/{id}/{version}.{nonce}")
    }
}

/// Where sealed blobs live in KV.
const BLOB_PREFIX: &str = "secret/v1/";

/// Storage round trips of one request, for its log line and the
/// performance budget (a decrypted read: at most 2 D1 round trips and 1 KV
/// read; metadata: 1 D1 round trip).
#[derive(Debug, Default)]
pub(crate) struct Io {
    d1: Cell<u32>,
    kv: Cell<u32>,
    statements: Cell<u32>,
}

impl Io {
    /// D1 round trips so far (a batch counts once).
    pub(crate) fn d1(&self) -> u32 {
        self.d1.get()
    }

    /// KV operations so far.
    pub(crate) fn kv(&self) -> u32 {
        self.kv.get()
    }

    /// Counts one D1 round trip (for storage calls made outside `Store`).
    pub(crate) fn count_d1(&self) {
        self.d1.set(self.d1.get() + 1);
        self.statements.set(self.statements.get() + 1);
    }

    /// D1 statements so far (a batch counts each of its statements).
    pub(crate) fn statements(&self) -> u32 {
        self.statements.get()
    }

    /// Counts one KV operation (for storage calls made outside `Store`).
    pub(crate) fn count_kv(&self) {
        self.kv.set(self.kv.get() + 1);
    }
}

/// Handles on D1 and the secrets KV namespace.
pub(crate) struct Store {
    db: D1Database,
    secrets: KvStore,
    io: Rc<Io>,
    /// Test builds only: wait this long before a write's D1 commit.
    #[cfg(feature = "fault-injection")]
    commit_delay_ms: u32,
}

/// What a caller may filter a list by.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filters {
    pub(crate) integration: Option<String>,
    pub(crate) status: Option<Status>,
}

impl Store {
    /// Binds D1 and KV, counting round trips into `io`; a missing binding
    /// is a 503.
    pub(crate) fn open(env: &Env, io: Rc<Io>) -> Result<Self, ApiError> {
        let db = env
            .d1(env::DB)
            .map_err(|error| ApiError::Unavailable(format!("d1 binding: {error}")))?;
        let secrets = env
            .kv(env::SECRETS)
            .map_err(|error| ApiError::Unavailable(format!("kv binding: {error}")))?;
        Ok(Self {
            db,
            secrets,
            io,
            #[cfg(feature = "fault-injection")]
            commit_delay_ms: 0,
        })
    }

    /// Test builds only: every create and update waits `ms` before its D1
    /// commit (see `faults.rs`).
    #[cfg(feature = "fault-injection")]
    pub(crate) fn with_commit_delay(mut self, ms: u32) -> Self {
        self.commit_delay_ms = ms;
        self
    }

    /// Where a write is about to commit: a no-op unless a test build was
    /// asked to widen the window (see `faults.rs`).
    async fn before_commit(&self) {
        #[cfg(feature = "fault-injection")]
        crate::faults::pause(self.commit_delay_ms).await;
    }

    fn prepare(&self, sql: &str, params: &[JsValue]) -> Result<D1PreparedStatement, ApiError> {
        self.db.prepare(sql).bind(params).map_err(db_error)
    }

    async fn rows(&self, statement: D1PreparedStatement) -> Result<Vec<(Record, bool)>, ApiError> {
        let rows: Vec<Row> = self.all(statement).await?;
        rows.into_iter().map(Row::into_record).collect()
    }

    /// One D1 round trip: all rows of a statement.
    async fn all<T: serde::de::DeserializeOwned>(
        &self,
        statement: D1PreparedStatement,
    ) -> Result<Vec<T>, ApiError> {
        self.io.count_d1();
        let result = statement.all().await.map_err(db_error)?;
        result.results().map_err(db_error)
    }

    /// One D1 round trip: all rows of a tenant-level statement, batched
    /// with the tenant's status; `Err(TenantDeleted)` when it was deleted.
    pub(super) async fn all_unless_deleted<T: serde::de::DeserializeOwned>(
        &self,
        statement: D1PreparedStatement,
        tenant: TenantId,
    ) -> Result<Vec<T>, ApiError> {
        #[derive(Deserialize)]
        struct Status {
            deleted_at: Option<i64>,
        }
        let status = self.prepare(sql::TENANT_STATUS, &[tenant.to_string().into()])?;
        let results = self.batch(vec![statement, status]).await?;
        let deleted = results
            .get(1)
            .map(|result| result.results::<Status>())
            .transpose()
            .map_err(db_error)?
            .is_some_and(|rows| rows.first().is_some_and(|row| row.deleted_at.is_some()));
        if deleted {
            return Err(ApiError::TenantDeleted);
        }
        results
            .first()
            .ok_or_else(|| ApiError::internal("d1: a batch returned no result"))?
            .results()
            .map_err(db_error)
    }

    /// One D1 round trip: run a statement.
    async fn run(&self, statement: D1PreparedStatement) -> Result<worker::D1Result, ApiError> {
        self.io.count_d1();
        statement.run().await.map_err(db_error)
    }

    /// One D1 round trip: one column of the first row.
    async fn first<T: serde::de::DeserializeOwned>(
        &self,
        statement: D1PreparedStatement,
        column: &str,
    ) -> Result<Option<T>, ApiError> {
        self.io.count_d1();
        statement.first::<T>(Some(column)).await.map_err(db_error)
    }

    /// One D1 round trip: statements in one transaction.
    async fn batch(
        &self,
        statements: Vec<D1PreparedStatement>,
    ) -> Result<Vec<worker::D1Result>, ApiError> {
        self.io.count_d1();
        let extra = u32::try_from(statements.len().saturating_sub(1)).unwrap_or(u32::MAX);
        self.io
            .statements
            .set(self.io.statements.get().saturating_add(extra));
        self.db.batch(statements).await.map_err(db_error)
    }

    /// A record by id, with whether it is shared with `acting`.
    pub(crate) async fn find(
        &self,
        id: CredentialId,
        acting: TenantId,
    ) -> Result<Option<(Record, bool)>, ApiError> {
        let statement = self.prepare(
            sql::FIND,
            &[id.to_string().into(), acting.to_string().into()],
        )?;
        Ok(self.rows(statement).await?.into_iter().next())
    }

    /// The selection rule for an integration without `credentialId`: the
    /// tenant's newest effectively active record, else its newest record.
    pub(crate) async fn select_for_integration(
        &self,
        tenant: TenantId,
        integration: &str,
        now_ms: i64,
    ) -> Result<Option<Record>, ApiError> {
        let statement = self.prepare(
            sql::SELECT_FOR_INTEGRATION,
            &[tenant.to_string().into(), integration.into(), int(now_ms)],
        )?;
        Ok(self
            .rows(statement)
            .await?
            .into_iter()
            .next()
            .map(|(r, _)| r))
    }

    /// One page of the tenant's own records, newest first (ties by id).
    pub(crate) async fn list(
        &self,
        tenant: TenantId,
        filters: &Filters,
        after: Option<&Cursor>,
        limit: u32,
        now_ms: i64,
    ) -> Result<Page<Record>, ApiError> {
        let sql = sql::list(
            filters.integration.is_some(),
            filters.status,
            after.is_some(),
        );
        let mut params: Vec<JsValue> = vec![tenant.to_string().into()];
        if let Some(integration) = &filters.integration {
            params.push(integration.as_str().into());
        }
        if filters.status.is_some() {
            params.push(int(now_ms));
        }
        if let Some(cursor) = after {
            params.push(int(cursor.created_at));
            params.push(cursor.id.as_str().into());
        }
        params.push(int(i64::from(limit) + 1));
        let rows: Vec<Row> = self
            .all_unless_deleted(self.prepare(&sql, &params)?, tenant)
            .await?;
        let records = rows
            .into_iter()
            .map(|row| row.into_record().map(|(record, _)| record))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(records, limit, |r| Cursor {
            created_at: r.created_at,
            id: r.id.to_string(),
        }))
    }

    /// Stores a new record: the blob in KV first, then the row and its
    /// audit event in one batch, only while the tenant key its data key is
    /// wrapped under exists. Returns `false` (nothing stored, the blob
    /// removed) when it does not: a rotation retired it or the tenant was
    /// deleted since it was read.
    pub(crate) async fn insert(
        &self,
        record: &Record,
        blob: &[u8],
        event: &AuditEvent,
    ) -> Result<bool, ApiError> {
        self.put_blob(record, blob).await?;
        let insert = self.prepare(
            sql::INSERT,
            &[
                record.id.to_string().into(),
                record.owner.to_string().into(),
                record.integration.as_str().into(),
                record.name.as_str().into(),
                opt(record.description.as_deref()),
                record.auth_type.as_str().into(),
                json_text(&Value::from(record.scopes.clone())).into(),
                opt(record.token_endpoint.as_deref()),
                opt(record.authorization_endpoint.as_deref()),
                record.metadata.get().into(),
                record.status.as_str().into(),
                opt_int(record.expires_at),
                int(record.created_at),
                json_text(&record.created_by).into(),
                int(record.updated_at),
                json_text(&record.updated_by).into(),
                opt(record.tenant_name.as_deref()),
                int(record.version),
                int(record.secret_version),
                record.kid.as_str().into(),
                STANDARD.encode(&record.wrapped_dek).into(),
                record.blob_nonce.as_str().into(),
                opt_int(record.tk_version.map(i64::from)),
            ],
        )?;
        let audit = self.audit_statement(event, true)?;
        self.before_commit().await;
        let results = self.batch(vec![insert, audit]).await?;
        let stored = changes(results.first())? == 1;
        if !stored {
            self.delete_blob(record).await;
        }
        Ok(stored)
    }

    /// Replaces a record's fields if its version is still `expected`
    /// (compare-and-set), with the audit event in the same batch. A new
    /// secret's blob (when `new_blob` is given) is written to KV first.
    /// Returns `false` when another writer won.
    ///
    /// A secret change keeps the replaced secret version as an earlier one
    /// (in the same batch) and drops the oldest beyond `versions_kept` in
    /// all, deleting their blobs after the commit.
    pub(crate) async fn update(
        &self,
        record: &Record,
        expected: i64,
        new_blob: Option<&[u8]>,
        event: &AuditEvent,
        versions_kept: u32,
    ) -> Result<bool, ApiError> {
        if let Some(blob) = new_blob {
            self.put_blob(record, blob).await?;
        }
        let mut params: Vec<JsValue> = vec![
            record.id.to_string().into(),
            int(expected),
            record.name.as_str().into(),
            opt(record.description.as_deref()),
            json_text(&Value::from(record.scopes.clone())).into(),
            opt(record.token_endpoint.as_deref()),
            opt(record.authorization_endpoint.as_deref()),
            record.metadata.get().into(),
            record.status.as_str().into(),
            opt_int(record.expires_at),
            int(record.updated_at),
            json_text(&record.updated_by).into(),
            int(record.version),
        ];
        // Only a secret change writes the key columns (see
        // `sql::UPDATE_METADATA`).
        let id: JsValue = record.id.to_string().into();
        let tk_version = opt_int(record.tk_version.map(i64::from));
        let mut statements = Vec::with_capacity(4);
        if new_blob.is_some() {
            params.extend([
                int(record.secret_version),
                record.kid.as_str().into(),
                STANDARD.encode(&record.wrapped_dek).into(),
                record.blob_nonce.as_str().into(),
                tk_version.clone(),
            ]);
            statements.push(self.prepare(
                sql::KEEP_CURRENT_VERSION,
                &[id.clone(), int(expected), tk_version],
            )?);
            statements.push(self.prepare(sql::UPDATE_WITH_SECRET, &params)?);
        } else {
            statements.push(self.prepare(sql::UPDATE_METADATA, &params)?);
        }
        let update_at = statements.len() - 1;
        statements.push(self.audit_statement(event, true)?);
        if new_blob.is_some() {
            let earlier = i64::from(versions_kept.max(1) - 1);
            statements.push(self.prepare(sql::DROP_OLD_VERSIONS, &[id, int(earlier)])?);
        }
        self.before_commit().await;
        let results = self.batch(statements).await?;
        let won = changes(results.get(update_at))? == 1;
        if !won && new_blob.is_some() {
            // Nothing points at the blob we wrote: remove it now rather
            // than leave it to the orphan sweep.
            self.delete_blob(record).await;
        }
        if won && new_blob.is_some() {
            self.delete_dropped_blobs(record.id, results.last()).await;
        }
        Ok(won)
    }

    /// Deletes the blobs of secret versions a batch's last statement
    /// dropped (its `RETURNING tenant_id, secret_version, blob_nonce`).
    /// Best effort, like [`Store::delete_blob`].
    async fn delete_dropped_blobs(&self, id: CredentialId, result: Option<&worker::D1Result>) {
        #[derive(Deserialize)]
        struct Dropped {
            tenant_id: String,
            secret_version: i64,
            blob_nonce: String,
        }
        let dropped: Vec<Dropped> = result
            .and_then(|result| result.results().ok())
            .unwrap_or_default();
        let id = id.to_string();
        for version in dropped {
            let key = blob_key_of(
                &version.tenant_id,
                &id,
                version.secret_version,
                &version.blob_nonce,
            );
            self.io.count_kv();
            if let Err(error) = self.secrets.delete(&key).await {
                worker::console_warn!(
                    "{}",
                    serde_json::json!({"event": "blob_delete_failed", "error": error.to_string()})
                );
            }
        }
    }

    /// Deletes a record and its shares (if its version is still `expected`)
    /// with the audit event, then destroys its blob. Returns `false` when
    /// another writer got there first.
    pub(crate) async fn delete(
        &self,
        record: &Record,
        expected: i64,
        event: &AuditEvent,
    ) -> Result<bool, ApiError> {
        let id: JsValue = record.id.to_string().into();
        let delete = self.prepare(sql::DELETE, &[id.clone(), int(expected)])?;
        let audit = self.audit_statement(event, true)?;
        let shares = self.prepare(sql::DELETE_SHARES_OF_DELETED, core::slice::from_ref(&id))?;
        let versions = self.prepare(sql::DELETE_VERSIONS_OF_DELETED, &[id])?;
        let results = self.batch(vec![delete, audit, shares, versions]).await?;
        let won = changes(results.first())? == 1;
        if won {
            self.delete_blob(record).await;
            self.delete_dropped_blobs(record.id, results.last()).await;
        }
        Ok(won)
    }

    /// Counts a decrypted read and writes its audit event in one statement
    /// (a trigger inserts the event), before the secret is returned: if it
    /// fails, the read fails closed. Returns the new `(access_count,
    /// last_accessed_at)`, or `None` when the record or its secret version
    /// changed meanwhile (then nothing was counted or audited).
    ///
    /// The statement re-checks that the record is still the same secret
    /// write, owned by `reader`, with a servable status, so no read that
    /// commits after a revoke, a deactivation or a delete serves the secret.
    pub(crate) async fn record_read(
        &self,
        record: &Record,
        reader: TenantId,
        now_ms: i64,
        event: &AuditEvent,
    ) -> Result<Option<(i64, i64)>, ApiError> {
        #[derive(Deserialize)]
        struct Counted {
            access_count: i64,
            last_accessed_at: i64,
        }
        let counted: Vec<Counted> = self
            .all(self.prepare(
                sql::RECORD_READ,
                &[
                    record.id.to_string().into(),
                    int(now_ms),
                    int(record.secret_version),
                    read_audit_fields(event).into(),
                    record.blob_nonce.as_str().into(),
                    reader.to_string().into(),
                ],
            )?)
            .await?;
        Ok(counted
            .into_iter()
            .next()
            .map(|c| (c.access_count, c.last_accessed_at)))
    }

    /// Writes one audit event on its own (refusals, failed decryptions).
    pub(crate) async fn audit(&self, event: &AuditEvent) -> Result<(), ApiError> {
        self.run(self.audit_statement(event, false)?).await?;
        Ok(())
    }

    /// The sealed blob of the record's current secret version.
    pub(crate) async fn blob(&self, record: &Record) -> Result<Option<Vec<u8>>, ApiError> {
        self.io.count_kv();
        self.secrets
            .get(&blob_key(record))
            .bytes()
            .await
            .map_err(kv_error)
    }

    /// Starts fetching the blob last served for `lookup` in this isolate, so
    /// it can run concurrently with the D1 read that decides access. Only a
    /// guess: [`Store::blob_prefetched`] uses it when D1 names the same
    /// (immutable) key, and nothing is decided from it.
    pub(crate) async fn prefetch_blob(&self, lookup: &Lookup) -> Option<(String, Vec<u8>)> {
        let key = guesses::get(lookup)?.key;
        self.io.count_kv();
        let blob = self.secrets.get(&key).bytes().await.ok().flatten()?;
        Some((key, blob))
    }

    /// The record's current blob: the prefetched one when its key is the
    /// record's, otherwise fetched now. Remembers the key for `lookup`.
    pub(crate) async fn blob_prefetched(
        &self,
        record: &Record,
        lookup: &Lookup,
        prefetched: Option<(String, Vec<u8>)>,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        let key = blob_key(record);
        let blob = match prefetched {
            Some((guessed, blob)) if guessed == key => Some(blob),
            _ => self.blob(record).await?,
        };
        if blob.is_some() {
            guesses::remember(lookup, Remembered::of(record));
        }
        Ok(blob)
    }

    /// What this isolate last served `lookup` from, if anything.
    pub(crate) fn remembered(lookup: &Lookup) -> Option<Remembered> {
        guesses::get(lookup)
    }

    /// Drops what this isolate remembers of `lookup` (it no longer holds).
    pub(crate) fn forget(lookup: &Lookup) {
        guesses::forget(lookup);
    }

    /// The remembered secret write's blob (one KV read).
    pub(crate) async fn remembered_blob(
        &self,
        remembered: &Remembered,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        self.io.count_kv();
        self.secrets
            .get(&remembered.key)
            .bytes()
            .await
            .map_err(kv_error)
    }

    /// The fast path's one D1 round trip: counts and audits a decrypted
    /// read of the remembered secret write, and returns the record, only if
    /// it is still that write (`secret_version`, `blob_nonce`), owned by
    /// `reader`, in a servable status, and still what `lookup` finds (in
    /// `integration`, or the selection rule's pick). `None`: nothing was
    /// counted or audited, and the slow path decides.
    pub(crate) async fn record_remembered_read(
        &self,
        remembered: &Remembered,
        lookup: &Lookup,
        integration: Option<&str>,
        reader: TenantId,
        now_ms: i64,
        event: &AuditEvent,
    ) -> Result<Option<Record>, ApiError> {
        let scope = match (lookup, integration) {
            (Lookup::Selection(..), _) => sql::ReadScope::Selection,
            (Lookup::Id(_), Some(_)) => sql::ReadScope::IdInIntegration,
            (Lookup::Id(_), None) => sql::ReadScope::Id,
        };
        let mut params: Vec<JsValue> = vec![
            remembered.id.to_string().into(),
            int(now_ms),
            int(remembered.secret_version),
            read_audit_fields(event).into(),
            remembered.blob_nonce.as_str().into(),
            reader.to_string().into(),
        ];
        if let Some(integration) = integration {
            params.push(integration.into());
        }
        let statement = self.prepare(&sql::record_read_returning(scope), &params)?;
        Ok(self
            .rows(statement)
            .await?
            .into_iter()
            .next()
            .map(|(record, _)| record))
    }

    /// Writes a secret write's blob with its write time (`record.updated_at`,
    /// the request's clock) as KV metadata: the orphan sweep spares a blob
    /// younger than the retention window, whose D1 commit may still be in
    /// flight, and keeps any blob whose age it cannot tell.
    async fn put_blob(&self, record: &Record, blob: &[u8]) -> Result<(), ApiError> {
        self.io.count_kv();
        self.secrets
            .put_bytes(&blob_key(record), blob)
            .map_err(kv_error)?
            .metadata(BlobMetadata {
                written_at: record.updated_at,
            })
            .map_err(kv_error)?
            .execute()
            .await
            .map_err(kv_error)
    }

    /// Best effort: a blob that survives a failed delete is an orphan for
    /// the sweep, never readable (no row points at it).
    pub(crate) async fn delete_blob(&self, record: &Record) {
        self.io.count_kv();
        if let Err(error) = self.secrets.delete(&blob_key(record)).await {
            worker::console_warn!(
                "{}",
                serde_json::json!({"event": "blob_delete_failed", "error": error.to_string()})
            );
        }
    }
}

/// The reader's audit fields, as JSON text for the `last_read` column: the
/// `credentials_read_audit` trigger (migration 0005) writes the event.
fn read_audit_fields(event: &AuditEvent) -> String {
    let mut fields = serde_json::json!({
        "id": event.id,
        "actor_id": event.actor_id,
        "actor_name": event.actor_name,
        "actor_email": event.actor_email,
        "actor_tenant_id": event.actor_tenant.to_string(),
        "request_id": event.request_id,
    });
    if let Some(version) = event.secret_version {
        // A versioned read: the trigger writes the version into the event.
        fields["secret_version"] = serde_json::json!(version);
    }
    fields.to_string()
}

/// Rows changed by a statement of a batch. A result without a change
/// count is an error, never "nothing changed": a committed write taken for
/// a lost one would delete the blob its row now points at.
fn changes(result: Option<&worker::D1Result>) -> Result<usize, ApiError> {
    result
        .and_then(|r| r.meta().ok().flatten())
        .and_then(|meta| meta.changes)
        .ok_or_else(|| ApiError::internal("d1: a write returned no change count"))
}

/// The KV metadata of a sealed blob.
#[derive(serde::Serialize, Deserialize)]
pub(crate) struct BlobMetadata {
    /// When the Worker wrote the blob (Unix ms).
    pub(crate) written_at: i64,
}

fn json_text(value: &Value) -> String {
    value.to_string()
}
