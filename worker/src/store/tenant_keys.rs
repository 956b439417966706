//! Tenant keys in D1 (migration 0007): the middle layer of the key
//! hierarchy, and what the master rotation and the legacy migration read
//! and write.
use base64ct::{Base64, Encoding as _};
use coffer_core::{CredentialId, TenantId};
use wasm_bindgen::JsValue;

use super::{changes, int, kv_error, sql, Store, TenantKeyRef};
use crate::error::ApiError;

/// A tenant key as stored: wrapped under the master key `kid` in D1, its
/// KV half under `tenant-key/v1/<tenant>/<version>.<kv_nonce>`.
#[derive(Debug, Clone)]
pub(crate) struct StoredTenantKey {
    pub(crate) tenant: TenantId,
    pub(crate) version: u32,
    pub(crate) kid: String,
    pub(crate) wrapped: Vec<u8>,
    pub(crate) kv_nonce: String,
}

impl StoredTenantKey {
    /// What names it as a row's tenant key.
    pub(crate) fn reference(&self) -> TenantKeyRef {
        TenantKeyRef {
            wrapped: self.wrapped.clone(),
            kv_nonce: self.kv_nonce.clone(),
        }
    }
}

d1_row! {
    pub(super) struct TenantKeyRow {
        tenant_id: Option<String>,
        version: i64,
        kid: String,
        wrapped_key: String,
        kv_nonce: String,
    }
}

/// Where tenants' KV halves live.
const KV_HALF_PREFIX: &str = "tenant-key/v1/";

fn kv_half_key(tenant: TenantId, version: u32, nonce: &str) -> String {
    format!("{KV_HALF_PREFIX}{tenant}/{version}.{nonce}")
}

impl TenantKeyRow {
    pub(super) fn parse(self, tenant: Option<TenantId>) -> Result<StoredTenantKey, ApiError> {
        let bad = || ApiError::internal("a stored tenant key row is malformed");
        let tenant = match (tenant, self.tenant_id.as_deref()) {
            (Some(tenant), _) => tenant,
            (None, Some(text)) => TenantId::parse(text).map_err(|_| bad())?,
            (None, None) => return Err(bad()),
        };
        Ok(StoredTenantKey {
            tenant,
            version: u32::try_from(self.version).map_err(|_| bad())?,
            kid: self.kid,
            wrapped: Base64::decode_vec(&self.wrapped_key).map_err(|_| bad())?,
            kv_nonce: self.kv_nonce,
        })
    }
}

/// A data key to move under a tenant key: `(credential, secret version,
/// earlier version?, old wrap, new wrap, tenant-key version)`.
pub(crate) type WrapMove = (CredentialId, i64, bool, Vec<u8>, Vec<u8>, u32);

/// A data key wrapped under a master key directly (a row from before the
/// hierarchy): a current one (`earlier == false`) or an earlier version's.
pub(crate) struct LegacyWrap {
    pub(crate) id: CredentialId,
    pub(crate) owner: TenantId,
    pub(crate) secret_version: i64,
    pub(crate) kid: String,
    pub(crate) wrapped_dek: Vec<u8>,
    pub(crate) earlier: bool,
}

d1_row! {
    struct WrapRow {
        id: String,
        tenant_id: String,
        secret_version: i64,
        kid: String,
        wrapped_dek: String,
    }
}

impl Store {
    /// The tenant's active key, if it has one.
    pub(crate) async fn active_tenant_key(
        &self,
        tenant: TenantId,
    ) -> Result<Option<StoredTenantKey>, ApiError> {
        let rows: Vec<TenantKeyRow> = self
            .all(self.prepare(sql::ACTIVE_TENANT_KEY, &[tenant.to_string().into()])?)
            .await?;
        rows.into_iter()
            .next()
            .map(|row| row.parse(Some(tenant)))
            .transpose()
    }

    /// Writes a tenant key's KV half (before its D1 row: KV first, then D1).
    pub(crate) async fn put_kv_half(
        &self,
        key: &StoredTenantKey,
        half: &[u8],
    ) -> Result<(), ApiError> {
        self.io
            .put_plain_bytes(
                &self.secrets,
                &kv_half_key(key.tenant, key.version, &key.kv_nonce),
                half,
            )
            .await
            .map_err(kv_error)
    }

    /// A tenant key's KV half, if it is still there.
    pub(crate) async fn kv_half(
        &self,
        tenant: TenantId,
        version: u32,
        key: &TenantKeyRef,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        self.io
            .get_bytes(&self.secrets, &kv_half_key(tenant, version, &key.kv_nonce))
            .await
            .map_err(kv_error)
    }

    /// Deletes a tenant key's KV half; a failure is logged (the shredding
    /// sweep deletes every half of a deleted tenant again).
    pub(crate) async fn delete_kv_half(&self, tenant: TenantId, version: u32, nonce: &str) {
        if let Err(error) = self
            .io
            .delete(&self.secrets, &kv_half_key(tenant, version, nonce))
            .await
        {
            crate::log::json(
                crate::log::Console::Error,
                &serde_json::json!({"level": "error", "event": "kv_half_delete_failed",
                                   "tenant": tenant.to_string(), "error": error.to_string()}),
            );
        }
    }

    /// Deletes every KV half of `tenant` left in KV (one list page of up
    /// to 1000); returns how many were found.
    pub(crate) async fn delete_kv_halves_of(&self, tenant: TenantId) -> Result<usize, ApiError> {
        let page = self
            .io
            .list(
                &self.secrets,
                &format!("{KV_HALF_PREFIX}{tenant}/"),
                1000,
                None,
            )
            .await
            .map_err(kv_error)?;
        for key in &page.keys {
            self.delete_blob_key(&key.name).await?;
        }
        Ok(page.keys.len())
    }

    /// Stores a tenant's first key (and its `tenants` row) unless it has
    /// one already or was deleted; returns whether this one was stored.
    pub(crate) async fn create_first_tenant_key(
        &self,
        key: &StoredTenantKey,
        now_ms: i64,
    ) -> Result<bool, ApiError> {
        let tenant: JsValue = key.tenant.to_string().into();
        let row = self.prepare(sql::INSERT_TENANT, &[tenant.clone(), int(now_ms)])?;
        let insert = self.prepare(
            sql::INSERT_FIRST_TENANT_KEY,
            &[
                tenant,
                int(i64::from(key.version)),
                key.kid.as_str().into(),
                Base64::encode_string(&key.wrapped).into(),
                int(now_ms),
                key.kv_nonce.as_str().into(),
            ],
        )?;
        let results = self.batch(vec![row, insert]).await?;
        Ok(changes(results.get(1))? == 1)
    }

    /// Up to `limit` tenant keys not wrapped under `active_kid`, ordered by
    /// (tenant, version) after `after`.
    pub(crate) async fn tenant_keys_not_under(
        &self,
        active_kid: &str,
        after: (&str, i64),
        limit: u32,
    ) -> Result<Vec<StoredTenantKey>, ApiError> {
        let rows: Vec<TenantKeyRow> = self
            .all(self.prepare(
                sql::TENANT_KEYS_NOT_UNDER,
                &[
                    active_kid.into(),
                    after.0.into(),
                    int(after.1),
                    int(i64::from(limit)),
                ],
            )?)
            .await?;
        rows.into_iter().map(|row| row.parse(None)).collect()
    }

    /// How many tenant keys are not wrapped under `active_kid`.
    pub(crate) async fn count_tenant_keys_not_under(
        &self,
        active_kid: &str,
    ) -> Result<i64, ApiError> {
        self.first::<i64>(
            self.prepare(sql::COUNT_TENANT_KEYS_NOT_UNDER, &[active_kid.into()])?,
            "n",
        )
        .await
        .map(Option::unwrap_or_default)
    }

    /// Stores rewrapped tenant keys in one batch, one statement each, each
    /// only if still under the master key it was read under; returns how
    /// many were replaced.
    pub(crate) async fn replace_tenant_key_wraps(
        &self,
        updates: &[(&StoredTenantKey, String, Vec<u8>)],
    ) -> Result<usize, ApiError> {
        if updates.is_empty() {
            return Ok(0);
        }
        let statements = updates
            .iter()
            .map(|(old, kid, wrapped)| {
                self.prepare(
                    sql::REWRAP_TENANT_KEY,
                    &[
                        old.tenant.to_string().into(),
                        int(i64::from(old.version)),
                        kid.as_str().into(),
                        Base64::encode_string(wrapped).into(),
                        old.kid.as_str().into(),
                    ],
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let results = self.batch(statements).await?;
        Ok(results.iter().map(|r| r.changes().unwrap_or(0)).sum())
    }

    /// Up to `limit` legacy data keys: current ones by id after `after_id`
    /// (`earlier == false`), or earlier versions' after `(after_id,
    /// after_version)`.
    pub(crate) async fn legacy_wraps(
        &self,
        earlier: bool,
        after_id: &str,
        after_version: i64,
        limit: u32,
    ) -> Result<Vec<LegacyWrap>, ApiError> {
        let statement = if earlier {
            self.prepare(
                sql::LEGACY_VERSION_WRAPS,
                &[after_id.into(), int(after_version), int(i64::from(limit))],
            )?
        } else {
            self.prepare(sql::LEGACY_WRAPS, &[after_id.into(), int(i64::from(limit))])?
        };
        let rows: Vec<WrapRow> = self.all(statement).await?;
        rows.into_iter()
            .map(|row| {
                let bad = || ApiError::internal(format!("stored row {} is malformed", row.id));
                Ok(LegacyWrap {
                    id: CredentialId::parse(&row.id).map_err(|_| bad())?,
                    owner: TenantId::parse(&row.tenant_id).map_err(|_| bad())?,
                    wrapped_dek: Base64::decode_vec(&row.wrapped_dek).map_err(|_| bad())?,
                    secret_version: row.secret_version,
                    kid: row.kid,
                    earlier,
                })
            })
            .collect()
    }

    /// Legacy data keys left (current and earlier versions).
    pub(crate) async fn count_legacy_wraps(&self) -> Result<i64, ApiError> {
        self.first::<i64>(self.prepare(sql::COUNT_LEGACY_WRAPS, &[])?, "n")
            .await
            .map(Option::unwrap_or_default)
    }

    /// Moves data keys under a tenant key in one batch, each only if its
    /// secret and wrap are unchanged and the tenant key exists; returns how
    /// many moved.
    pub(crate) async fn move_wraps(&self, moves: &[WrapMove]) -> Result<usize, ApiError> {
        if moves.is_empty() {
            return Ok(0);
        }
        let statements = moves
            .iter()
            .map(|(id, secret_version, earlier, old, new, tk_version)| {
                self.prepare(
                    if *earlier {
                        sql::MOVE_VERSION_WRAP
                    } else {
                        sql::MOVE_WRAP
                    },
                    &[
                        id.to_string().into(),
                        int(*secret_version),
                        Base64::encode_string(new).into(),
                        int(i64::from(*tk_version)),
                        Base64::encode_string(old).into(),
                    ],
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let results = self.batch(statements).await?;
        Ok(results.iter().map(|r| r.changes().unwrap_or(0)).sum())
    }
}
