//! The only code that knows SQL and KV key layouts.
//!
//! D1 is the source of truth: ownership, shares, status, versions, the
//! wrapped data key and audit events. KV holds sealed blobs under immutable
//! keys (`secret/v1/<tenant>/<credential>/<secret version>`) and is never
//! consulted for access decisions. Writes go KV first, then D1, so D1 never
//! points at a missing blob; a blob whose D1 write failed is an orphan a
//! sweep may remove. Every multi-statement change is one D1 `batch`
//! (a transaction), and updates compare-and-set on `version`.
//!
//! Split by what each part knows: `records.rs` (the credential rows and
//! their statements) with `record.rs` (the typed [`Record`] and row
//! parsing), `blobs.rs` (KV keys of sealed blobs, get/put/delete, and the
//! remembered guesses of `guesses.rs`), `audit.rs`, `shares.rs`, `sweep.rs`
//! (what the sweeps read and write), `jwks_cache.rs` (the JWKS cache's
//! KV layout), `sql.rs` (every statement), and `io.rs`, the round-trip
//! primitives: the only code that calls D1 or KV, each call counted in
//! [`Io`].
use alloc::rc::Rc;

use base64ct::{Base64, Encoding as _};

use coffer_core::{Status, TenantId, Timestamp, Version};
use wasm_bindgen::JsValue;
use worker::{D1PreparedStatement, Env};

use crate::{env, error::ApiError};

// First, so that every module below has its `d1_row!`.
#[macro_use]
mod row;
mod archive;
mod audit;
mod blobs;
mod guesses;
mod io;
pub(crate) mod jwks_cache;
mod page;
mod record;
mod records;
mod refresh;
pub(crate) mod session;
mod shares;
mod sql;
mod sweep;
mod tenant_keys;
mod tenants;
mod versions;

pub(crate) use io::Io;

pub(crate) use guesses::{Lookup, Remembered};

pub(crate) use archive::{
    civil_from_days, object_key, valid_day, ArchiveBucket, ArchiveObject, DueEvent,
};
pub(crate) use audit::{AuditAction, AuditEntry, AuditEvent, Outcome};
pub(crate) use page::{Cursor, Page};
pub(crate) use record::{Actor, Record, RefreshColumns};
pub(crate) use refresh::Lease;
pub(crate) use shares::Share;
pub(crate) use tenant_keys::StoredTenantKey;
pub(crate) use tenants::TenantWrap;
pub(crate) use versions::KeptVersion;

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
            wrapped: Base64::decode_vec(wrapped).map_err(|_| ())?,
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

/// `None` binds as SQL NULL, a number as a number.
fn opt_int(value: Option<i64>) -> JsValue {
    value.map_or(JsValue::NULL, int)
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

/// Handles on D1 (the database, or a request's session) and the secrets
/// KV namespace.
pub(crate) struct Store {
    db: session::Db,
    secrets: io::KvNamespace,
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
        let db = Io::d1_binding(env, env::DB)
            .map_err(|error| ApiError::Unavailable(format!("d1 binding: {error}")))?;
        let secrets = Io::kv_binding(env, env::SECRETS)
            .map_err(|error| ApiError::Unavailable(format!("kv binding: {error}")))?;
        Ok(Self {
            db: session::Db::Database(db),
            secrets,
            io,
            #[cfg(feature = "fault-injection")]
            commit_delay_ms: 0,
        })
    }

    /// As [`Store::open`], running every statement in a request's D1 session.
    pub(crate) fn open_in(
        env: &Env,
        io: Rc<Io>,
        session: session::Session,
    ) -> Result<Self, ApiError> {
        let mut store = Self::open(env, io)?;
        store.db = session::Db::Session(session);
        Ok(store)
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
        Io::prepare(&self.db, sql, params).map_err(db_error)
    }

    /// One D1 round trip: all rows of a statement.
    async fn all<T: row::FromRow>(
        &self,
        statement: D1PreparedStatement,
    ) -> Result<Vec<T>, ApiError> {
        let answer = self.io.all(statement).await.map_err(db_error)?;
        answer.results().map_err(db_error)
    }

    /// One D1 round trip: all rows of a tenant-level statement, batched
    /// with the tenant's status; `Err(TenantDeleted)` when it was deleted.
    pub(super) async fn all_unless_deleted<T: row::FromRow>(
        &self,
        statement: D1PreparedStatement,
        tenant: TenantId,
    ) -> Result<Vec<T>, ApiError> {
        d1_row! {
            struct Status {
                deleted_at: Option<i64>,
            }
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
    async fn run(&self, statement: D1PreparedStatement) -> Result<io::Answer, ApiError> {
        self.io.run(statement).await.map_err(db_error)
    }

    /// One D1 round trip: one column of the first row.
    async fn first<T: row::Column>(
        &self,
        statement: D1PreparedStatement,
        column: &'static str,
    ) -> Result<Option<T>, ApiError> {
        self.io.first(statement, column).await.map_err(db_error)
    }

    /// One D1 round trip: statements in one transaction.
    async fn batch(
        &self,
        statements: Vec<D1PreparedStatement>,
    ) -> Result<Vec<io::Answer>, ApiError> {
        self.io.batch(&self.db, statements).await.map_err(db_error)
    }

    /// `/healthz`: D1 and both KV namespaces answer (one round trip each,
    /// concurrently, so the route costs one storage round trip of time). A
    /// missing binding or a failed call is a 503 with the reason logged.
    pub(crate) async fn health(env: &Env, io: Rc<Io>) -> Result<(), ApiError> {
        let unavailable = |error: String| ApiError::Unavailable(error);
        let store = Self::open(env, io)?;
        let cache = Io::kv_binding(env, env::CACHE).map_err(unavailable)?;
        let schema = store.prepare(sql::META_GET, &["schema".into()])?;
        let (d1, kv_secrets, kv_cache) = futures_util::future::join3(
            store.io.first::<String>(schema, "value"),
            store.io.get_text(&store.secrets, "healthz"),
            store.io.get_text(&cache, "healthz"),
        )
        .await;
        d1.map_err(|e| unavailable(e.to_string()))?;
        kv_secrets.map_err(|e| unavailable(e.to_string()))?;
        kv_cache.map_err(|e| unavailable(e.to_string()))?;
        Ok(())
    }
}

/// Rows changed by a statement of a batch. A result without a change
/// count is an error, never "nothing changed": a committed write taken for
/// a lost one would delete the blob its row now points at.
fn changes(result: Option<&io::Answer>) -> Result<usize, ApiError> {
    result
        .and_then(io::Answer::changes)
        .ok_or_else(|| ApiError::internal("d1: a write returned no change count"))
}

/// The `scopes` column: a JSON array of strings.
fn scopes_text(scopes: &[String]) -> String {
    serde_json::to_string(scopes).unwrap_or_default()
}
