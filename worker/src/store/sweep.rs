//! What the scheduled sweeps read and write.
use std::collections::HashSet;

use serde::Deserialize;
use serde_json::json;
use wasm_bindgen::JsValue;

use super::{int, kv_error, sql, BlobMetadata, Store, BLOB_PREFIX};
use crate::error::ApiError;

/// A sealed blob in KV, parsed from its key.
pub(crate) struct Blob {
    pub(crate) key: String,
    pub(crate) id: String,
    pub(crate) secret_version: i64,
    pub(crate) blob_nonce: String,
    /// When the Worker wrote it (Unix ms), from its KV metadata; `None`
    /// when the metadata is missing or unreadable (blobs written before
    /// the Worker recorded write times).
    pub(crate) written_at: Option<i64>,
}

impl Store {
    /// Marks up to `limit` active records past expiry `expired`; returns how many.
    pub(crate) async fn expire_due(&self, now_ms: i64, limit: u32) -> Result<usize, ApiError> {
        let result = self
            .run(self.prepare(sql::EXPIRE_DUE, &[int(now_ms), int(i64::from(limit))])?)
            .await?;
        Ok(result
            .meta()
            .ok()
            .flatten()
            .and_then(|meta| meta.changes)
            .unwrap_or(0))
    }

    /// One page of sealed blobs in KV, and the cursor of the next page.
    pub(crate) async fn list_blobs(
        &self,
        cursor: Option<String>,
        limit: u64,
    ) -> Result<(Vec<Blob>, Option<String>), ApiError> {
        let mut list = self
            .secrets
            .list()
            .prefix(BLOB_PREFIX.to_string())
            .limit(limit);
        if let Some(cursor) = cursor {
            list = list.cursor(cursor);
        }
        self.io.count_kv();
        let page = list.execute().await.map_err(kv_error)?;
        let blobs = page
            .keys
            .into_iter()
            .filter_map(|key| {
                // secret/v1/<tenant>/<credential>/<version>
                // secret/v1/<tenant>/<credential>/<version>[.<nonce>]
                let mut parts = key.name.strip_prefix(BLOB_PREFIX)?.split('/');
                let (_tenant, id, last) = (parts.next()?, parts.next()?, parts.next()?);
                let (version, nonce) = last.split_once('.').unwrap_or((last, ""));
                let written_at = key
                    .metadata
                    .clone()
                    .and_then(|m| serde_json::from_value::<BlobMetadata>(m).ok())
                    .map(|m| m.written_at);
                Some(Blob {
                    id: id.to_string(),
                    secret_version: version.parse().ok()?,
                    blob_nonce: nonce.to_string(),
                    written_at,
                    key: key.name,
                })
            })
            .collect();
        let next = if page.list_complete {
            None
        } else {
            page.cursor
        };
        Ok((blobs, next))
    }

    /// The `(id, secret version, blob nonce)` of every secret write of
    /// `ids` whose blob is still wanted: current and earlier versions.
    pub(crate) async fn secret_versions(
        &self,
        ids: &[&str],
    ) -> Result<HashSet<(String, i64, String)>, ApiError> {
        #[derive(Deserialize)]
        struct Version {
            id: String,
            secret_version: i64,
            blob_nonce: String,
        }
        let rows: Vec<Version> = self
            .all(self.prepare(sql::SECRET_VERSIONS, &[json!(ids).to_string().into()])?)
            .await?;
        Ok(rows
            .into_iter()
            .map(|v| (v.id, v.secret_version, v.blob_nonce))
            .collect())
    }

    /// Deletes a blob by key (the orphan sweep).
    pub(crate) async fn delete_blob_key(&self, key: &str) -> Result<(), ApiError> {
        self.io.count_kv();
        self.secrets.delete(key).await.map_err(kv_error)
    }

    /// A value of the `coffer_meta` table (sweep cursors).
    pub(crate) async fn meta(&self, key: &str) -> Result<Option<String>, ApiError> {
        self.first::<String>(self.prepare(sql::META_GET, &[key.into()])?, "value")
            .await
    }

    /// Sets (or, with `None`, removes) a `coffer_meta` value.
    pub(crate) async fn set_meta(&self, key: &str, value: Option<&str>) -> Result<(), ApiError> {
        let statement = match value {
            Some(value) => self.prepare(sql::META_SET, &[key.into(), value.into()])?,
            None => self.prepare(sql::META_DELETE, &[JsValue::from(key)])?,
        };
        self.run(statement).await?;
        Ok(())
    }
}
