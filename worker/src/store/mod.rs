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
use coffer_core::{CredentialId, IntegrationId, Status, TenantId, Timestamp, Version};
use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, Env, KvStore};

use crate::{env, error::ApiError};

mod audit;
mod guesses;
pub(crate) mod jwks_cache;
mod page;
mod record;
mod shares;
mod sql;
mod sweep;

pub(crate) use guesses::{Lookup, Remembered};

pub(crate) use audit::{AuditAction, AuditEvent, Outcome};
pub(crate) use page::{Cursor, Page};
use record::Row;
pub(crate) use record::{Actor, Record};

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

/// A timestamp binds as its Unix milliseconds.
fn ts(value: Timestamp) -> JsValue {
    int(value.as_unix_millis())
}

fn opt_ts(value: Option<Timestamp>) -> JsValue {
    value.map_or(JsValue::NULL, ts)
}

/// A version binds as its number (at most 2^53 - 1, exact as a double).
fn ver(value: Version) -> JsValue {
    JsValue::from_f64(value.get() as f64)
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
    let (owner, id, version) = (record.owner, record.id, record.secret_version);
    if record.blob_nonce.is_empty() {
        format!("{BLOB_PREFIX}{owner}/{id}/{version}")
    } else {
        format!("{BLOB_PREFIX}{owner}/{id}/{version}.{}", record.blob_nonce)
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
        self.db.batch(statements).await.map_err(db_error)
    }

    /// A record by id, with whether it is shared with `acting`. Handlers
    /// reach records through `access::load_visible`, never this.
    pub(crate) async fn find_record(
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
    /// Handlers reach records through `access::load_visible`, never this.
    pub(crate) async fn select_for_integration(
        &self,
        tenant: TenantId,
        integration: &IntegrationId,
        now: Timestamp,
    ) -> Result<Option<Record>, ApiError> {
        let statement = self.prepare(
            sql::SELECT_FOR_INTEGRATION,
            &[
                tenant.to_string().into(),
                integration.as_str().into(),
                ts(now),
            ],
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
        now: Timestamp,
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
            params.push(ts(now));
        }
        if let Some(cursor) = after {
            params.push(int(cursor.created_at));
            params.push(cursor.id.as_str().into());
        }
        params.push(int(i64::from(limit) + 1));
        let records = self
            .rows(self.prepare(&sql, &params)?)
            .await?
            .into_iter()
            .map(|(record, _)| record)
            .collect();
        Ok(Page::from_overfetch(records, limit, |r: &Record| Cursor {
            created_at: r.created_at.as_unix_millis(),
            id: r.id.to_string(),
        }))
    }

    /// Stores a new record: the blob in KV first, then the row and its
    /// audit event in one batch.
    pub(crate) async fn insert(
        &self,
        record: &Record,
        blob: &[u8],
        event: &AuditEvent,
    ) -> Result<(), ApiError> {
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
                scopes_text(&record.scopes).into(),
                opt(record.token_endpoint.as_deref()),
                opt(record.authorization_endpoint.as_deref()),
                record.metadata.get().into(),
                record.status.as_str().into(),
                opt_ts(record.expires_at),
                ts(record.created_at),
                record.created_by.to_column().into(),
                ts(record.updated_at),
                record.updated_by.to_column().into(),
                opt(record.tenant_name.as_deref()),
                ver(record.version),
                ver(record.secret_version),
                record.kid.as_str().into(),
                STANDARD.encode(&record.wrapped_dek).into(),
                record.blob_nonce.as_str().into(),
            ],
        )?;
        let audit = self.audit_statement(event, false)?;
        self.before_commit().await;
        self.batch(vec![insert, audit]).await?;
        Ok(())
    }

    /// Replaces a record's fields if its version is still `expected`
    /// (compare-and-set), with the audit event in the same batch. A new
    /// secret's blob (when `new_blob` is given) is written to KV first.
    /// Returns `false` when another writer won.
    pub(crate) async fn update(
        &self,
        record: &Record,
        expected: Version,
        new_blob: Option<&[u8]>,
        event: &AuditEvent,
    ) -> Result<bool, ApiError> {
        if let Some(blob) = new_blob {
            self.put_blob(record, blob).await?;
        }
        let mut params: Vec<JsValue> = vec![
            record.id.to_string().into(),
            ver(expected),
            record.name.as_str().into(),
            opt(record.description.as_deref()),
            scopes_text(&record.scopes).into(),
            opt(record.token_endpoint.as_deref()),
            opt(record.authorization_endpoint.as_deref()),
            record.metadata.get().into(),
            record.status.as_str().into(),
            opt_ts(record.expires_at),
            ts(record.updated_at),
            record.updated_by.to_column().into(),
            ver(record.version),
        ];
        // Only a secret change writes the key columns (see
        // `sql::UPDATE_METADATA`).
        let statement = if new_blob.is_some() {
            params.extend([
                ver(record.secret_version),
                record.kid.as_str().into(),
                STANDARD.encode(&record.wrapped_dek).into(),
                record.blob_nonce.as_str().into(),
            ]);
            sql::UPDATE_WITH_SECRET
        } else {
            sql::UPDATE_METADATA
        };
        let update = self.prepare(statement, &params)?;
        let audit = self.audit_statement(event, true)?;
        self.before_commit().await;
        let results = self.batch(vec![update, audit]).await?;
        let won = changes(results.first())? == 1;
        if !won && new_blob.is_some() {
            // Nothing points at the blob we wrote: remove it now rather
            // than leave it to the orphan sweep.
            self.delete_blob(record).await;
        }
        Ok(won)
    }

    /// Deletes a record and its shares (if its version is still `expected`)
    /// with the audit event, then destroys its blob. Returns `false` when
    /// another writer got there first.
    pub(crate) async fn delete(
        &self,
        record: &Record,
        expected: Version,
        event: &AuditEvent,
    ) -> Result<bool, ApiError> {
        let id: JsValue = record.id.to_string().into();
        let delete = self.prepare(sql::DELETE, &[id.clone(), ver(expected)])?;
        let audit = self.audit_statement(event, true)?;
        let shares = self.prepare(sql::DELETE_SHARES_OF_DELETED, &[id])?;
        let results = self.batch(vec![delete, audit, shares]).await?;
        let won = changes(results.first())? == 1;
        if won {
            self.delete_blob(record).await;
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
        now: Timestamp,
        event: &AuditEvent,
    ) -> Result<Option<(u64, Timestamp)>, ApiError> {
        #[derive(Deserialize)]
        struct Counted {
            access_count: f64,
            last_accessed_at: f64,
        }
        let counted: Vec<Counted> = self
            .all(self.prepare(
                sql::RECORD_READ,
                &[
                    record.id.to_string().into(),
                    ts(now),
                    ver(record.secret_version),
                    read_audit_fields(event).into(),
                    record.blob_nonce.as_str().into(),
                    reader.to_string().into(),
                ],
            )?)
            .await?;
        counted
            .into_iter()
            .next()
            .map(|c| {
                let count =
                    record::safe_integer(c.access_count).and_then(|n| u64::try_from(n).ok());
                count
                    .zip(record::timestamp(c.last_accessed_at))
                    .ok_or_else(|| {
                        ApiError::internal(format!("stored row {} has a bad count", record.id))
                    })
            })
            .transpose()
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
        integration: Option<&IntegrationId>,
        reader: TenantId,
        now: Timestamp,
        event: &AuditEvent,
    ) -> Result<Option<Record>, ApiError> {
        let scope = match (lookup, integration) {
            (Lookup::Selection(..), _) => sql::ReadScope::Selection,
            (Lookup::Id(_), Some(_)) => sql::ReadScope::IdInIntegration,
            (Lookup::Id(_), None) => sql::ReadScope::Id,
        };
        let mut params: Vec<JsValue> = vec![
            remembered.id.to_string().into(),
            ts(now),
            ver(remembered.secret_version),
            read_audit_fields(event).into(),
            remembered.blob_nonce.as_str().into(),
            reader.to_string().into(),
        ];
        if let Some(integration) = integration {
            params.push(integration.as_str().into());
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
                written_at: record.updated_at.as_unix_millis(),
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
    serde_json::json!({
        "id": event.id,
        "actor_id": event.actor_id,
        "actor_name": event.actor_name,
        "actor_email": event.actor_email,
        "actor_tenant_id": event.actor_tenant.to_string(),
        "request_id": event.request_id,
    })
    .to_string()
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

/// RFC 3339 with milliseconds and `Z` (audit and share JSON, until the
/// store returns data rather than API JSON).
fn rfc3339(ms: i64) -> String {
    coffer_core::Timestamp::from_unix_millis(ms)
        .map(coffer_core::Timestamp::to_rfc3339)
        .unwrap_or_default()
}

/// The `scopes` column: a JSON array of strings.
fn scopes_text(scopes: &[String]) -> String {
    serde_json::to_string(scopes).unwrap_or_default()
}
