//! Tenant deletion (crypto-shredding), its purge by the sweep, and
//! tenant-key rotation (migration 0007).
use base64ct::{Base64, Encoding as _};
use coffer_core::{CredentialId, TenantId};
use wasm_bindgen::JsValue;

use super::{
    blobs::blob_key_of, changes, int, sql, tenant_keys::TenantKeyRow, AuditEvent, Store,
    StoredTenantKey,
};
use crate::error::ApiError;

/// A data key under a tenant key: a record's current one (`earlier ==
/// false`) or an earlier version's.
pub(crate) struct TenantWrap {
    pub(crate) id: CredentialId,
    pub(crate) secret_version: i64,
    pub(crate) wrapped_dek: Vec<u8>,
    pub(crate) earlier: bool,
}

d1_row! {
    struct WrapRow {
        id: String,
        secret_version: i64,
        wrapped_dek: String,
    }
}

d1_row! {
    struct DestroyedKey {
        version: i64,
        kv_nonce: String,
    }
}

d1_row! {
    struct BlobRow {
        id: String,
        secret_version: i64,
        blob_nonce: String,
    }
}

/// What one purge step removed.
#[derive(Debug, Default)]
pub(crate) struct Purged {
    pub(crate) records: usize,
    pub(crate) versions: usize,
    pub(crate) blobs: usize,
    pub(crate) audit_events: usize,
    /// Nothing of the tenant is left but its `tenant.delete` event.
    pub(crate) done: bool,
}

fn changed(result: Option<&super::io::Answer>) -> usize {
    result.and_then(super::io::Answer::changes).unwrap_or(0)
}

impl Store {
    /// Deletes `tenant`: in ONE batch, marks it deleted, writes the
    /// `tenant.delete` audit event, destroys every tenant key and drops the
    /// data keys not yet under one. From the commit on no secret of the
    /// tenant can be opened. `false` when it was already deleted.
    pub(crate) async fn delete_tenant(
        &self,
        tenant: TenantId,
        by: &str,
        now_ms: i64,
        event: &AuditEvent,
    ) -> Result<bool, ApiError> {
        let id: JsValue = tenant.to_string().into();
        let statements = vec![
            self.prepare(
                sql::MARK_TENANT_DELETED,
                &[id.clone(), int(now_ms), by.into()],
            )?,
            self.audit_statement(event, true)?,
            self.prepare(sql::DESTROY_TENANT_KEYS, core::slice::from_ref(&id))?,
            self.prepare(sql::DROP_LEGACY_WRAPS, core::slice::from_ref(&id))?,
            self.prepare(sql::DROP_LEGACY_VERSION_WRAPS, &[id, int(now_ms)])?,
        ];
        let results = self.batch(statements).await?;
        // The KV halves go right after the commit, before the answer: from
        // then on a D1 restored from before the deletion finds no half.
        let destroyed: Vec<DestroyedKey> = results
            .get(2)
            .and_then(|result| result.results().ok())
            .unwrap_or_default();
        for key in destroyed {
            let version = u32::try_from(key.version).unwrap_or(0);
            self.delete_kv_half(tenant, version, &key.kv_nonce).await;
        }
        Ok(changes(results.first())? == 1)
    }

    /// `Err(TenantDeleted)` when `tenant` was deleted: for tenant-level
    /// routes that read no D1 row of their own (the audit archive in R2).
    pub(crate) async fn check_tenant_live(&self, tenant: TenantId) -> Result<(), ApiError> {
        d1_row! {
            struct Status {
                deleted_at: Option<i64>,
            }
        }
        let rows: Vec<Status> = self
            .all(self.prepare(sql::TENANT_STATUS, &[tenant.to_string().into()])?)
            .await?;
        if rows.first().is_some_and(|row| row.deleted_at.is_some()) {
            return Err(ApiError::TenantDeleted);
        }
        Ok(())
    }

    /// Deleted tenants whose rows and blobs are not all removed yet.
    pub(crate) async fn tenants_to_purge(&self, limit: u32) -> Result<Vec<TenantId>, ApiError> {
        d1_row! {
            struct Row {
                tenant_id: String,
            }
        }
        let rows: Vec<Row> = self
            .all(self.prepare(sql::TENANTS_TO_PURGE, &[int(i64::from(limit))])?)
            .await?;
        rows.into_iter()
            .map(|row| {
                TenantId::parse(&row.tenant_id)
                    .map_err(|_| ApiError::internal("a stored tenant id is malformed"))
            })
            .collect()
    }

    /// Deletes the blobs of `rows` (secret writes of `owner`), one by one;
    /// returns how many.
    async fn delete_blobs_of(&self, owner: &str, rows: &[BlobRow]) -> Result<usize, ApiError> {
        for row in rows {
            self.delete_blob_key(&blob_key_of(
                owner,
                &row.id,
                row.secret_version,
                &row.blob_nonce,
            ))
            .await?;
        }
        Ok(rows.len())
    }

    /// One bounded step of removing a deleted tenant: up to `limit` earlier
    /// versions, then records (blobs first, then rows with their shares),
    /// then audit events but the `tenant.delete` one. The tenant is marked
    /// purged only once nothing is left, `archive_left` included (its
    /// audit archive objects in R2, which the caller deletes).
    pub(crate) async fn purge_tenant(
        &self,
        tenant: TenantId,
        limit: u32,
        now_ms: i64,
        archive_left: bool,
    ) -> Result<Purged, ApiError> {
        let owner = tenant.to_string();
        let id: JsValue = owner.as_str().into();
        let mut purged = Purged::default();
        let versions: Vec<BlobRow> = self
            .all(self.prepare(sql::TENANT_VERSIONS, &[id.clone(), int(i64::from(limit))])?)
            .await?;
        purged.blobs += self.delete_blobs_of(&owner, &versions).await?;
        if !versions.is_empty() {
            let statements = versions
                .iter()
                .map(|row| {
                    self.prepare(
                        sql::PURGE_VERSION,
                        &[row.id.as_str().into(), int(row.secret_version)],
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            let results = self.batch(statements).await?;
            purged.versions = results.iter().map(|r| changed(Some(r))).sum();
            return Ok(purged);
        }
        let records: Vec<BlobRow> = self
            .all(self.prepare(sql::TENANT_RECORDS, &[id.clone(), int(i64::from(limit))])?)
            .await?;
        purged.blobs += self.delete_blobs_of(&owner, &records).await?;
        if !records.is_empty() {
            let mut statements = Vec::with_capacity(records.len() * 2);
            for row in &records {
                statements.push(self.prepare(sql::PURGE_SHARES_OF, &[row.id.as_str().into()])?);
                statements.push(self.prepare(sql::PURGE_RECORD, &[row.id.as_str().into()])?);
            }
            let results = self.batch(statements).await?;
            purged.records = results
                .iter()
                .skip(1)
                .step_by(2)
                .map(|r| changed(Some(r)))
                .sum();
            return Ok(purged);
        }
        let results = self
            .batch(vec![
                self.prepare(sql::PURGE_SHARES_TO, core::slice::from_ref(&id))?,
                self.prepare(sql::PURGE_AUDIT, &[id.clone(), int(i64::from(limit))])?,
            ])
            .await?;
        purged.audit_events = changed(results.get(1));
        // KV halves whose delete failed at the deletion, if any.
        purged.blobs += self.delete_kv_halves_of(tenant).await?;
        if purged.audit_events < limit as usize && !archive_left {
            self.run(self.prepare(sql::MARK_PURGED, &[id, int(now_ms)])?)
                .await?;
            purged.done = true;
        }
        Ok(purged)
    }

    /// The tenant's retiring key: a tenant-key rotation in progress.
    pub(crate) async fn retiring_tenant_key(
        &self,
        tenant: TenantId,
    ) -> Result<Option<StoredTenantKey>, ApiError> {
        let rows: Vec<TenantKeyRow> = self
            .all(self.prepare(sql::RETIRING_TENANT_KEY, &[tenant.to_string().into()])?)
            .await?;
        rows.into_iter()
            .next()
            .map(|row| row.parse(Some(tenant)))
            .transpose()
    }

    /// Starts a tenant-key rotation in one batch: the active key `from`
    /// becomes `retiring`, `next` becomes active, with the audit event.
    /// `false` when another rotation is in progress or `from` is no longer
    /// the active key.
    pub(crate) async fn start_tenant_key_rotation(
        &self,
        from: &StoredTenantKey,
        next: &StoredTenantKey,
        now_ms: i64,
        event: &AuditEvent,
    ) -> Result<bool, ApiError> {
        let tenant: JsValue = from.tenant.to_string().into();
        let results = self
            .batch(vec![
                self.prepare(
                    sql::RETIRE_ACTIVE_KEY,
                    &[tenant.clone(), int(i64::from(from.version))],
                )?,
                self.prepare(
                    sql::INSERT_NEXT_TENANT_KEY,
                    &[
                        tenant,
                        int(i64::from(next.version)),
                        next.kid.as_str().into(),
                        Base64::encode_string(&next.wrapped).into(),
                        int(now_ms),
                        next.kv_nonce.as_str().into(),
                    ],
                )?,
                self.audit_statement(event, true)?,
            ])
            .await?;
        Ok(changes(results.get(1))? == 1)
    }

    /// Up to `limit` data keys of `tenant` under its key `version`: current
    /// ones after id `after.0`, or (`earlier`) earlier versions' after
    /// `after`.
    pub(crate) async fn wraps_under(
        &self,
        tenant: TenantId,
        version: u32,
        earlier: bool,
        after: (&str, i64),
        limit: u32,
    ) -> Result<Vec<TenantWrap>, ApiError> {
        let tenant: JsValue = tenant.to_string().into();
        let statement = if earlier {
            self.prepare(
                sql::VERSION_WRAPS_UNDER,
                &[
                    tenant,
                    int(i64::from(version)),
                    after.0.into(),
                    int(after.1),
                    int(i64::from(limit)),
                ],
            )?
        } else {
            self.prepare(
                sql::WRAPS_UNDER,
                &[
                    tenant,
                    int(i64::from(version)),
                    after.0.into(),
                    int(i64::from(limit)),
                ],
            )?
        };
        let rows: Vec<WrapRow> = self.all(statement).await?;
        rows.into_iter()
            .map(|row| {
                let bad = || ApiError::internal(format!("stored row {} is malformed", row.id));
                Ok(TenantWrap {
                    id: CredentialId::parse(&row.id).map_err(|_| bad())?,
                    secret_version: row.secret_version,
                    wrapped_dek: Base64::decode_vec(&row.wrapped_dek).map_err(|_| bad())?,
                    earlier,
                })
            })
            .collect()
    }

    /// Data keys of `tenant` still under its key `version`.
    pub(crate) async fn count_wraps_under(
        &self,
        tenant: TenantId,
        version: u32,
    ) -> Result<i64, ApiError> {
        self.first::<i64>(
            self.prepare(
                sql::COUNT_WRAPS_UNDER,
                &[tenant.to_string().into(), int(i64::from(version))],
            )?,
            "n",
        )
        .await
        .map(Option::unwrap_or_default)
    }

    /// Deletes a retiring tenant key if no data key is under it any more;
    /// returns whether it was deleted.
    pub(crate) async fn delete_retired_key(
        &self,
        tenant: TenantId,
        version: u32,
    ) -> Result<bool, ApiError> {
        d1_row! {
            struct Deleted {
                kv_nonce: String,
            }
        }
        let deleted: Vec<Deleted> = self
            .all(self.prepare(
                sql::DELETE_RETIRED_KEY,
                &[tenant.to_string().into(), int(i64::from(version))],
            )?)
            .await?;
        for key in &deleted {
            self.delete_kv_half(tenant, version, &key.kv_nonce).await;
        }
        Ok(!deleted.is_empty())
    }
}
