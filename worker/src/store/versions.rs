//! Earlier secret versions (migration 0007): listed, read, destroyed.
use base64ct::{Base64, Encoding as _};
use coffer_core::{TenantId, Timestamp};
use serde_json::Value;

use super::{
    blobs::blob_key_of,
    changes, int, kv_error,
    records::{read_audit_fields, Counted},
    sql, AuditEvent, Record, Store,
};
use crate::error::ApiError;

/// An earlier secret version of a record.
#[derive(Debug, Clone)]
pub(crate) struct KeptVersion {
    pub(crate) secret_version: i64,
    pub(crate) created_at: i64,
    pub(crate) created_by: Value,
    pub(crate) destroyed_at: Option<i64>,
    /// What opens it (`None` when only listed, or once destroyed).
    pub(crate) wrap: Option<VersionWrap>,
}

/// The data key of an earlier version, and its blob's nonce.
#[derive(Debug, Clone)]
pub(crate) struct VersionWrap {
    pub(crate) blob_nonce: String,
    pub(crate) tk_version: Option<u32>,
    pub(crate) tenant_key: Option<super::TenantKeyRef>,
    pub(crate) wrapped_dek: Vec<u8>,
}

d1_row! {
    struct VersionRow {
        secret_version: i64,
        created_at: i64,
        created_by: String,
        destroyed_at: Option<i64>,
        blob_nonce: Option<String>,
        tk_version: Option<i64>,
        wrapped_dek: Option<String>,
        tenant_key: Option<String>,
    }
}

impl VersionRow {
    fn parse(self) -> Result<KeptVersion, ApiError> {
        let bad = || ApiError::internal("a stored secret version row is malformed");
        let wrap = match (self.blob_nonce, self.wrapped_dek) {
            (Some(blob_nonce), Some(wrapped)) => Some(VersionWrap {
                blob_nonce,
                tk_version: self
                    .tk_version
                    .map(u32::try_from)
                    .transpose()
                    .map_err(|_| bad())?,
                tenant_key: self
                    .tenant_key
                    .as_deref()
                    .map(super::TenantKeyRef::parse)
                    .transpose()
                    .map_err(|_| bad())?,
                wrapped_dek: Base64::decode_vec(&wrapped).map_err(|_| bad())?,
            }),
            _ => None,
        };
        Ok(KeptVersion {
            secret_version: self.secret_version,
            created_at: self.created_at,
            created_by: serde_json::from_str(&self.created_by).map_err(|_| bad())?,
            destroyed_at: self.destroyed_at,
            wrap,
        })
    }
}

impl Store {
    /// The record's earlier secret versions, newest first (metadata only).
    pub(crate) async fn list_versions(
        &self,
        record: &Record,
    ) -> Result<Vec<KeptVersion>, ApiError> {
        let rows: Vec<VersionRow> = self
            .all(self.prepare(sql::LIST_VERSIONS, &[record.id.to_string().into()])?)
            .await?;
        rows.into_iter().map(VersionRow::parse).collect()
    }

    /// One earlier secret version of the record, with what opens it.
    pub(crate) async fn find_version(
        &self,
        record: &Record,
        secret_version: i64,
    ) -> Result<Option<KeptVersion>, ApiError> {
        let rows: Vec<VersionRow> = self
            .all(self.prepare(
                sql::FIND_VERSION,
                &[record.id.to_string().into(), int(secret_version)],
            )?)
            .await?;
        rows.into_iter().next().map(VersionRow::parse).transpose()
    }

    /// The sealed blob of an earlier secret version.
    pub(crate) async fn version_blob(
        &self,
        record: &Record,
        secret_version: i64,
        wrap: &VersionWrap,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        let key = blob_key_of(
            &record.owner.to_string(),
            &record.id.to_string(),
            secret_version,
            &wrap.blob_nonce,
        );
        self.io
            .get_bytes(&self.secrets, &key)
            .await
            .map_err(kv_error)
    }

    /// Counts and audits a decrypted read of an earlier version (the event
    /// names it) in one statement, only while the version is kept and the
    /// record is `reader`'s and servable. Returns the new `(access_count,
    /// last_accessed_at)`, or `None` when nothing was counted.
    pub(crate) async fn record_version_read(
        &self,
        record: &Record,
        secret_version: i64,
        wrap: &VersionWrap,
        reader: TenantId,
        now_ms: i64,
        event: &AuditEvent,
    ) -> Result<Option<(u64, Timestamp)>, ApiError> {
        let counted: Vec<Counted> = self
            .all(self.prepare(
                sql::RECORD_VERSION_READ,
                &[
                    record.id.to_string().into(),
                    int(now_ms),
                    int(secret_version),
                    read_audit_fields(event).into(),
                    wrap.blob_nonce.as_str().into(),
                    reader.to_string().into(),
                ],
            )?)
            .await?;
        Counted::first(counted, record)
    }

    /// Destroys an earlier version (data key dropped in D1, with its audit
    /// event in the same batch; then its blob deleted). `false` when there
    /// was no such kept version.
    pub(crate) async fn destroy_version(
        &self,
        record: &Record,
        secret_version: i64,
        now_ms: i64,
        event: &AuditEvent,
    ) -> Result<bool, ApiError> {
        d1_row! {
            struct Destroyed {
                blob_nonce: String,
            }
        }
        let destroy = self.prepare(
            sql::DESTROY_VERSION,
            &[
                record.id.to_string().into(),
                int(secret_version),
                int(now_ms),
                record.owner.to_string().into(),
            ],
        )?;
        let audit = self.audit_statement(event, true)?;
        let results = self.batch(vec![destroy, audit]).await?;
        if changes(results.first())? != 1 {
            return Ok(false);
        }
        let destroyed: Vec<Destroyed> = results
            .first()
            .and_then(|result| result.results().ok())
            .unwrap_or_default();
        for version in destroyed {
            let key = blob_key_of(
                &record.owner.to_string(),
                &record.id.to_string(),
                secret_version,
                &version.blob_nonce,
            );
            self.delete_blob_key(&key).await.unwrap_or_else(|error| {
                crate::log::json(
                    crate::log::Console::Warn,
                    &serde_json::json!({"event": "blob_delete_failed", "error": error.log_reason()}),
                );
            });
        }
        Ok(true)
    }
}
