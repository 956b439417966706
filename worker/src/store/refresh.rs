//! What OAuth2 token refresh reads and writes (migration 0006): the lease,
//! the refreshed secret, a failed attempt, the state a waiting reader
//! polls, and the sweep's due records.
use base64ct::{Base64, Encoding as _};
use coffer_core::{CredentialId, Timestamp, Version};
use wasm_bindgen::JsValue;

use super::{
    changes, int, opt_int, opt_ts,
    record::{self, Row},
    sql, ts, ver, AuditEvent, Record, Store,
};
use crate::error::ApiError;

/// A lease taken on a record: who holds it (a random id per attempt).
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub(crate) holder: String,
}

/// A record's refresh state, as a waiting reader polls it.
#[derive(Debug, Clone)]
pub(crate) struct Polled {
    pub(crate) version: Version,
    pub(crate) lease_until: Option<Timestamp>,
    pub(crate) failures: u64,
    pub(crate) not_before: Option<Timestamp>,
    pub(crate) halted: bool,
    pub(crate) error: Option<String>,
}

fn flag(value: bool) -> JsValue {
    int(i64::from(value))
}

impl Store {
    /// Takes the refresh lease of `record` (at the version it was loaded
    /// with) until `until`; `None` when someone else holds it, the record
    /// changed, or (unless `forced`) a backoff or halt holds refreshes back.
    pub(crate) async fn take_lease(
        &self,
        record: &Record,
        holder: String,
        now: Timestamp,
        until: Timestamp,
        forced: bool,
    ) -> Result<Option<Lease>, ApiError> {
        let result = self
            .run(self.prepare(
                super::sql::REFRESH_LEASE,
                &[
                    record.id.to_string().into(),
                    holder.as_str().into(),
                    ts(until),
                    ver(record.version),
                    ts(now),
                    flag(forced),
                ],
            )?)
            .await?;
        let won = changes(Some(&result))? == 1;
        Ok(won.then_some(Lease { holder }))
    }

    /// Stores a refreshed secret as a new secret version, as a `PATCH`
    /// stores one: the blob in KV first, then in one batch the replaced
    /// version kept as an earlier one, the row (only if still at
    /// `expected`, the lease is ours and the tenant key the new data key is
    /// wrapped under exists), its audit event, the lease given back, and
    /// the oldest versions beyond `versions_kept` in all dropped (their
    /// blobs deleted after the commit). Returns `false` when the record
    /// changed meanwhile (a `PATCH` won), the tenant key is gone (rotated
    /// or the tenant deleted): the new blob is removed.
    pub(crate) async fn store_refreshed(
        &self,
        next: &Record,
        expected: Version,
        lease: &Lease,
        blob: &[u8],
        event: &AuditEvent,
        versions_kept: u32,
    ) -> Result<bool, ApiError> {
        self.put_blob(next, blob).await?;
        let id: JsValue = next.id.to_string().into();
        let tk_version = opt_int(next.tk_version.map(i64::from));
        let keep = self.prepare(
            sql::KEEP_REFRESHED_VERSION,
            &[
                id.clone(),
                ver(expected),
                tk_version.clone(),
                lease.holder.as_str().into(),
            ],
        )?;
        let update = self.prepare(
            sql::REFRESH_STORE,
            &[
                id.clone(),
                ver(expected),
                ver(next.version),
                next.kid.as_str().into(),
                Base64::encode_string(&next.wrapped_dek).into(),
                next.blob_nonce.as_str().into(),
                opt_ts(next.expires_at),
                ts(next.updated_at),
                next.updated_by.to_column().into(),
                lease.holder.as_str().into(),
                tk_version,
            ],
        )?;
        let audit = self.audit_statement(event, true)?;
        let release = self.prepare(
            sql::REFRESH_RELEASE,
            &[id.clone(), lease.holder.as_str().into()],
        )?;
        let earlier = i64::from(versions_kept.max(1) - 1);
        let drop_old = self.prepare(sql::DROP_OLD_VERSIONS, &[id, int(earlier)])?;
        self.before_commit().await;
        let results = self
            .batch(vec![keep, update, audit, release, drop_old])
            .await?;
        let won = changes(results.get(1))? == 1;
        if won {
            self.delete_dropped_blobs(next.id, results.last()).await;
        } else {
            self.delete_blob(next).await;
        }
        Ok(won)
    }

    /// Records a failed attempt (when the record is still at the version it
    /// was made with), gives the lease back and writes the audit event, in
    /// one batch.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn store_refresh_failure(
        &self,
        record: &Record,
        lease: &Lease,
        error_json: &str,
        failures: u64,
        not_before: Timestamp,
        halted: bool,
        event: &AuditEvent,
    ) -> Result<(), ApiError> {
        let id: JsValue = record.id.to_string().into();
        let failed = self.prepare(
            sql::REFRESH_FAILED,
            &[
                id.clone(),
                lease.holder.as_str().into(),
                ver(record.version),
                error_json.into(),
                int(i64::try_from(failures).unwrap_or(i64::MAX)),
                ts(not_before),
                flag(halted),
            ],
        )?;
        let release = self.prepare(sql::REFRESH_RELEASE, &[id, lease.holder.as_str().into()])?;
        let audit = self.audit_statement(event, false)?;
        self.batch(vec![failed, release, audit]).await?;
        Ok(())
    }

    /// Gives a lease back without recording anything (an attempt that
    /// could not start for a fault of ours).
    pub(crate) async fn release_lease(
        &self,
        record: &Record,
        lease: &Lease,
    ) -> Result<(), ApiError> {
        self.run(self.prepare(
            sql::REFRESH_RELEASE,
            &[record.id.to_string().into(), lease.holder.as_str().into()],
        )?)
        .await?;
        Ok(())
    }

    /// The refresh state of record `id`, for a reader waiting on another
    /// refresher; `None` when the record is gone.
    pub(crate) async fn poll_refresh(&self, id: CredentialId) -> Result<Option<Polled>, ApiError> {
        d1_row! {
            struct PollRow {
                version: f64,
                refresh_lease_until: Option<f64>,
                refresh_failures: f64,
                refresh_not_before: Option<f64>,
                refresh_halted: f64,
                refresh_error: Option<String>,
            }
        }
        let rows: Vec<PollRow> = self
            .all(self.prepare(sql::REFRESH_POLL, &[id.to_string().into()])?)
            .await?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let corrupt = |what: &str| ApiError::internal(format!("stored row {id} has a bad {what}"));
        let optional = |value: Option<f64>, what: &str| {
            value
                .map(|value| record::timestamp(value).ok_or_else(|| corrupt(what)))
                .transpose()
        };
        Ok(Some(Polled {
            version: record::version(row.version).ok_or_else(|| corrupt("version"))?,
            lease_until: optional(row.refresh_lease_until, "refresh_lease_until")?,
            failures: record::safe_integer(row.refresh_failures)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| corrupt("refresh_failures"))?,
            not_before: optional(row.refresh_not_before, "refresh_not_before")?,
            halted: row.refresh_halted != 0.0,
            error: row.refresh_error,
        }))
    }

    /// Up to `limit` records whose token expires before `due_before` and
    /// that may be refreshed automatically at `now`, soonest first.
    pub(crate) async fn refresh_due(
        &self,
        due_before: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Record>, ApiError> {
        let rows: Vec<Row> = self
            .all(self.prepare(
                sql::REFRESH_DUE,
                &[ts(due_before), ts(now), int(i64::from(limit))],
            )?)
            .await?;
        rows.into_iter()
            .map(|row| row.into_record().map(|(record, _)| record))
            .collect()
    }
}
