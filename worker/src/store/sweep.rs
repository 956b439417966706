//! What the scheduled sweeps read and write.
use std::collections::HashMap;

use base64::{engine::general_purpose::STANDARD, Engine as _};
use coffer_core::{CredentialId, TenantId, Version};
use serde::Deserialize;
use serde_json::json;
use wasm_bindgen::JsValue;

use super::{int, sql, ver, Store};
use crate::error::ApiError;

/// A data key still wrapped under a retired master key.
pub(crate) struct Wrap {
    pub(crate) id: CredentialId,
    pub(crate) owner: TenantId,
    pub(crate) secret_version: Version,
    pub(crate) kid: String,
    pub(crate) wrapped_dek: Vec<u8>,
}

#[derive(Deserialize)]
struct WrapRow {
    id: String,
    tenant_id: String,
    secret_version: f64,
    kid: String,
    wrapped_dek: String,
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

    /// Up to `limit` data keys not wrapped under `active_kid`, by id after `after`.
    pub(crate) async fn wraps_not_under(
        &self,
        active_kid: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<Wrap>, ApiError> {
        let rows: Vec<WrapRow> = self
            .all(self.prepare(
                sql::WRAPS_NOT_UNDER,
                &[active_kid.into(), after.into(), int(i64::from(limit))],
            )?)
            .await?;
        rows.into_iter()
            .map(|row| {
                let bad = || ApiError::internal(format!("stored row {} is malformed", row.id));
                Ok(Wrap {
                    id: CredentialId::parse(&row.id).map_err(|_| bad())?,
                    owner: TenantId::parse(&row.tenant_id).map_err(|_| bad())?,
                    wrapped_dek: STANDARD.decode(&row.wrapped_dek).map_err(|_| bad())?,
                    secret_version: super::record::version(row.secret_version).ok_or_else(bad)?,
                    kid: row.kid,
                })
            })
            .collect()
    }

    /// How many data keys are not wrapped under `active_kid`.
    pub(crate) async fn count_not_under(&self, active_kid: &str) -> Result<i64, ApiError> {
        self.first::<i64>(
            self.prepare(sql::COUNT_NOT_UNDER, &[active_kid.into()])?,
            "n",
        )
        .await
        .map(Option::unwrap_or_default)
    }

    /// Stores re-wrapped data keys in one batch, each only if its secret and
    /// wrap are unchanged; returns how many were replaced.
    pub(crate) async fn replace_wraps(
        &self,
        updates: &[(&Wrap, String, Vec<u8>)],
    ) -> Result<usize, ApiError> {
        if updates.is_empty() {
            return Ok(0);
        }
        let statements = updates
            .iter()
            .map(|(old, kid, wrapped)| {
                self.prepare(
                    sql::REWRAP,
                    &[
                        old.id.to_string().into(),
                        ver(old.secret_version),
                        kid.as_str().into(),
                        STANDARD.encode(wrapped).into(),
                        old.kid.as_str().into(),
                    ],
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let results = self.batch(statements).await?;
        Ok(results
            .iter()
            .map(|r| r.meta().ok().flatten().and_then(|m| m.changes).unwrap_or(0))
            .sum())
    }

    /// The current `(secret version, blob nonce)` of each of `ids` that
    /// still exists.
    pub(crate) async fn secret_versions(
        &self,
        ids: &[&str],
    ) -> Result<HashMap<String, (i64, String)>, ApiError> {
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
            .map(|v| (v.id, (v.secret_version, v.blob_nonce)))
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
