//! Shares and the connection surface's list (own and shared records).
use coffer_core::{CredentialId, TenantId};
use serde::Deserialize;
use serde_json::{json, Value};
use wasm_bindgen::JsValue;

use super::{db_error, int, sql, AuditEvent, Cursor, Page, Record, Store};
use crate::{error::ApiError, http::rfc3339};

#[derive(Deserialize)]
struct ShareRow {
    credential_id: String,
    tenant_id: String,
    granted_at: i64,
    granted_by: String,
}

impl ShareRow {
    fn to_json(&self) -> Value {
        json!({
            "connection_id": self.credential_id,
            "tenant_id": self.tenant_id,
            "granted_at": rfc3339(self.granted_at),
            "granted_by": self.granted_by,
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
        let rows: Vec<super::Row> = self
            .all_unless_deleted(self.prepare(&sql, &params)?, tenant)
            .await?;
        let rows = rows
            .into_iter()
            .map(super::Row::into_record)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(rows, limit, |(record, _)| Cursor {
            created_at: record.created_at,
            id: record.id.to_string(),
        }))
    }

    /// The tenants a record is shared with, oldest grant first.
    pub(crate) async fn list_shares(&self, id: CredentialId) -> Result<Vec<Value>, ApiError> {
        let rows: Vec<ShareRow> = self
            .all(self.prepare(sql::LIST_SHARES, &[id.to_string().into()])?)
            .await?;
        Ok(rows.iter().map(ShareRow::to_json).collect())
    }

    /// Shares a record with `tenant` (idempotent: an existing grant keeps
    /// its time and grantor) and audits it, in one batch. Returns the share,
    /// or `None` when the record no longer exists.
    pub(crate) async fn grant_share(
        &self,
        id: CredentialId,
        tenant: TenantId,
        now_ms: i64,
        granted_by: &str,
        event: &AuditEvent,
    ) -> Result<Option<Value>, ApiError> {
        let grant = self.prepare(
            sql::GRANT_SHARE,
            &[
                id.to_string().into(),
                tenant.to_string().into(),
                int(now_ms),
                granted_by.into(),
            ],
        )?;
        let audit = self.audit_statement(event, true)?;
        let results = self.batch(vec![grant, audit]).await?;
        let rows: Vec<ShareRow> = match results.first() {
            Some(result) => result.results().map_err(db_error)?,
            None => Vec::new(),
        };
        Ok(rows.first().map(ShareRow::to_json))
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
