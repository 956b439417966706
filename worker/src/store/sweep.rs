//! What the scheduled sweeps read and write.
use std::collections::HashSet;

use wasm_bindgen::JsValue;

use super::{int, sql, Store};
use crate::error::ApiError;

impl Store {
    /// Marks up to `limit` active records past expiry `expired`; returns how many.
    pub(crate) async fn expire_due(&self, now_ms: i64, limit: u32) -> Result<usize, ApiError> {
        let result = self
            .run(self.prepare(sql::EXPIRE_DUE, &[int(now_ms), int(i64::from(limit))])?)
            .await?;
        Ok(result.changes().unwrap_or(0))
    }

    /// The `(id, secret version, blob nonce)` of every secret write of
    /// `ids` whose blob is still wanted: current and earlier versions.
    pub(crate) async fn secret_versions(
        &self,
        ids: &[&str],
    ) -> Result<HashSet<(String, i64, String)>, ApiError> {
        d1_row! {
            struct Version {
                id: String,
                secret_version: i64,
                blob_nonce: String,
            }
        }
        let rows: Vec<Version> = self
            .all(
                self.prepare(
                    sql::SECRET_VERSIONS,
                    &[serde_json::to_string(&ids)
                        .map_err(worker::Error::from)?
                        .into()],
                )?,
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|v| (v.id, v.secret_version, v.blob_nonce))
            .collect())
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
