//! Shares and the connection surface's list (own and shared records).
use coffer_core::{CredentialId, TenantId, Timestamp};
use wasm_bindgen::JsValue;

use super::{db_error, int, record::timestamp, sql, ts, AuditEvent, Cursor, Page, Record, Store};
use crate::error::ApiError;

/// A record shared with a tenant.
#[derive(Debug, Clone)]
pub(crate) struct Share {
    /// The record's id, as stored (a bare UUID).
    pub(crate) connection_id: String,
    pub(crate) tenant_id: String,
    pub(crate) granted_at: Timestamp,
    /// The `sub` of who granted it.
    pub(crate) granted_by: String,
}

d1_row! {
    struct ShareRow {
        credential_id: String,
        tenant_id: String,
        granted_at: f64,
        granted_by: String,
    }
}

impl ShareRow {
    fn into_share(self) -> Result<Share, ApiError> {
        let granted_at = timestamp(self.granted_at).ok_or_else(|| {
            ApiError::internal(format!(
                "stored share of {} has a bad granted_at",
                self.credential_id
            ))
        })?;
        Ok(Share {
            connection_id: self.credential_id,
            tenant_id: self.tenant_id,
            granted_at,
            granted_by: self.granted_by,
        })
    }
}

impl Store {
    /// One page of the records `tenant` owns or that are shared with it,
    /// newest first, each with whether it is shared (not owned).
    pub(crate) async fn list_connections(
        &self,
        tenant: TenantId,
        integration: Option<&str>,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Page<(Record, bool)>, ApiError> {
        let sql = sql::list_connections(integration.is_some(), after.is_some());
        let mut params: Vec<JsValue> = vec![tenant.to_string().into()];
        if let Some(integration) = integration {
            params.push(integration.into());
        }
        if let Some(cursor) = after {
            params.push(int(cursor.created_at));
            params.push(cursor.id.as_str().into());
        }
        params.push(int(i64::from(limit) + 1));
        let rows: Vec<super::record::Row> = self
            .all_unless_deleted(self.prepare(&sql, &params)?, tenant)
            .await?;
        let rows = rows
            .into_iter()
            .map(super::record::Row::into_record)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(rows, limit, |(record, _)| Cursor {
            created_at: record.created_at.as_unix_millis(),
            id: record.id.to_string(),
        }))
    }

    /// The tenants a record is shared with, oldest grant first.
    pub(crate) async fn list_shares(&self, id: CredentialId) -> Result<Vec<Share>, ApiError> {
        let rows: Vec<ShareRow> = self
            .all(self.prepare(sql::LIST_SHARES, &[id.to_string().into()])?)
            .await?;
        rows.into_iter().map(ShareRow::into_share).collect()
    }

    /// Shares a record with `tenant` (idempotent: an existing grant keeps
    /// its time and grantor) and audits it, in one batch. Returns the share,
    /// or `None` when the record no longer exists.
    pub(crate) async fn grant_share(
        &self,
        id: CredentialId,
        tenant: TenantId,
        now: Timestamp,
        granted_by: &str,
        event: &AuditEvent,
    ) -> Result<Option<Share>, ApiError> {
        let grant = self.prepare(
            sql::GRANT_SHARE,
            &[
                id.to_string().into(),
                tenant.to_string().into(),
                ts(now),
                granted_by.into(),
            ],
        )?;
        let audit = self.audit_statement(event, true)?;
        let results = self.batch(vec![grant, audit]).await?;
        let rows: Vec<ShareRow> = match results.first() {
            Some(result) => result.results().map_err(db_error)?,
            None => Vec::new(),
        };
        rows.into_iter()
            .next()
            .map(ShareRow::into_share)
            .transpose()
    }

    /// Removes a share (if any) and audits the revocation, in one batch.
    pub(crate) async fn revoke_share(
        &self,
        id: CredentialId,
        tenant: TenantId,
        event: &AuditEvent,
    ) -> Result<(), ApiError> {
        let revoke = self.prepare(
            sql::REVOKE_SHARE,
            &[id.to_string().into(), tenant.to_string().into()],
        )?;
        let audit = self.audit_statement(event, false)?;
        self.batch(vec![revoke, audit]).await?;
        Ok(())
    }
}
