//! The credential rows: finding, listing, inserting, updating and deleting
//! records, and counting decrypted reads. Rows are parsed into [`Record`]s
//! once, here (`record.rs`).
use base64ct::{Base64, Encoding as _};
use coffer_core::{oauth::Grant, CredentialId, IntegrationId, TenantId, Timestamp, Version};
use wasm_bindgen::JsValue;
use worker::D1PreparedStatement;

use super::{
    blobs::blob_key_of, changes, int, opt, opt_int, opt_ts, record, record::Row, scopes_text, sql,
    ts, ver, AuditEvent, Cursor, Filters, Lookup, Page, Record, Remembered, Store,
};
use crate::error::ApiError;

impl Store {
    pub(super) async fn rows(
        &self,
        statement: D1PreparedStatement,
    ) -> Result<Vec<(Record, bool)>, ApiError> {
        let rows: Vec<Row> = self.all(statement).await?;
        rows.into_iter().map(Row::into_record).collect()
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
        let rows: Vec<Row> = self
            .all_unless_deleted(self.prepare(&sql, &params)?, tenant)
            .await?;
        let records = rows
            .into_iter()
            .map(|row| row.into_record().map(|(record, _)| record))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(records, limit, |r: &Record| Cursor {
            created_at: r.created_at.as_unix_millis(),
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
                Base64::encode_string(&record.wrapped_dek).into(),
                record.blob_nonce.as_str().into(),
                opt_int(record.tk_version.map(i64::from)),
                opt(record.refresh.grant.map(Grant::as_str)),
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
        expected: Version,
        new_blob: Option<&[u8]>,
        event: &AuditEvent,
        versions_kept: u32,
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
        let id: JsValue = record.id.to_string().into();
        let tk_version = opt_int(record.tk_version.map(i64::from));
        let mut statements = Vec::with_capacity(4);
        if new_blob.is_some() {
            params.extend([
                ver(record.secret_version),
                record.kid.as_str().into(),
                Base64::encode_string(&record.wrapped_dek).into(),
                record.blob_nonce.as_str().into(),
                tk_version.clone(),
                opt(record.refresh.grant.map(Grant::as_str)),
            ]);
            statements.push(self.prepare(
                sql::KEEP_CURRENT_VERSION,
                &[id.clone(), ver(expected), tk_version],
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
    pub(super) async fn delete_dropped_blobs(
        &self,
        id: CredentialId,
        result: Option<&super::io::Answer>,
    ) {
        d1_row! {
            struct Dropped {
                tenant_id: String,
                secret_version: i64,
                blob_nonce: String,
            }
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
            // Best effort: a failure is logged, the orphan sweep retries.
            let _ = self.delete_blob_key(&key).await;
        }
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
        now: Timestamp,
        event: &AuditEvent,
    ) -> Result<Option<(u64, Timestamp)>, ApiError> {
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
        Counted::first(counted, record)
    }

    /// Writes one audit event on its own (refusals, failed decryptions).
    pub(crate) async fn audit(&self, event: &AuditEvent) -> Result<(), ApiError> {
        self.run(self.audit_statement(event, false)?).await?;
        Ok(())
    }

    /// The fast path's one D1 round trip: counts and audits a decrypted
    /// read of the remembered secret write, and returns the record, only if
    /// it is still that write (`secret_version`, `blob_nonce`), owned by
    /// `reader`, in a servable status, and still what `lookup` finds (in
    /// `integration`, or the selection rule's pick), and not a refreshing
    /// record whose token is due at `due_at`. `None`: nothing was counted
    /// or audited, and the slow path decides.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn record_remembered_read(
        &self,
        remembered: &Remembered,
        lookup: &Lookup,
        integration: Option<&IntegrationId>,
        reader: TenantId,
        now: Timestamp,
        due_at: Timestamp,
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
            ts(due_at),
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
}

/// The reader's audit fields, as JSON text for the `last_read` column: the
/// `credentials_read_audit` trigger (migration 0005) writes the event.
pub(super) fn read_audit_fields(event: &AuditEvent) -> String {
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
    // Serializing a `Value` cannot fail; were it to, the trigger's
    // `json_extract` would refuse the empty text and the read fail closed.
    serde_json::to_string(&fields).unwrap_or_default()
}

d1_row! {
    /// What a counted decrypted read returns (`RETURNING access_count,
    /// last_accessed_at`), for the current version and earlier ones alike.
    pub(super) struct Counted {
        access_count: f64,
        last_accessed_at: f64,
    }
}

impl Counted {
    /// The new `(access_count, last_accessed_at)` of the first row, `None`
    /// when the statement counted nothing; a row that is not a safe integer
    /// count and a timestamp is an opaque 500.
    pub(super) fn first(
        counted: Vec<Counted>,
        record: &Record,
    ) -> Result<Option<(u64, Timestamp)>, ApiError> {
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
}
