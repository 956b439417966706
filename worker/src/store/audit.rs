//! Audit events: who did what to which record, when, with what outcome.
use coffer_core::{CredentialId, TenantId, Timestamp};
use wasm_bindgen::JsValue;
use worker::D1PreparedStatement;

use super::{
    int, opt,
    record::{safe_integer, timestamp},
    sql, ts, Cursor, Page, Store,
};
use crate::error::ApiError;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuditAction {
    Create,
    Update,
    Delete,
    ReadSecret,
    ShareGrant,
    ShareRevoke,
    Rollback,
    DestroyVersion,
    TenantDelete,
    TenantKeyRotate,
    /// An OAuth2 token refresh attempt (issue 14).
    Refresh,
}

impl AuditAction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Create => "credential.create",
            Self::Update => "credential.update",
            Self::Delete => "credential.delete",
            Self::ReadSecret => "credential.read_secret",
            Self::ShareGrant => "share.grant",
            Self::ShareRevoke => "share.revoke",
            Self::Rollback => "credential.rollback",
            Self::DestroyVersion => "credential.destroy_version",
            Self::TenantDelete => "tenant.delete",
            Self::TenantKeyRotate => "tenant.rotate_key",
            Self::Refresh => "credential.refresh",
        }
    }
}

/// How it went. `Error` marks a read that was allowed but failed inside
/// (a sealed blob missing or failing to open); `Failure` a token refresh
/// that got no new token (or whose result a concurrent change replaced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Denied,
    Error,
    Failure,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Denied => "denied",
            Self::Error => "error",
            Self::Failure => "failure",
        }
    }
}

/// One event, in the record owner's log.
#[derive(Debug, Clone)]
pub(crate) struct AuditEvent {
    pub(crate) id: String,
    pub(crate) owner: TenantId,
    pub(crate) at: Timestamp,
    pub(crate) action: AuditAction,
    pub(crate) outcome: Outcome,
    pub(crate) credential: Option<CredentialId>,
    pub(crate) actor_id: String,
    pub(crate) actor_name: Option<String>,
    pub(crate) actor_email: Option<String>,
    pub(crate) actor_tenant: TenantId,
    pub(crate) request_id: String,
    /// The secret version the event concerns, where it names one.
    pub(crate) secret_version: Option<i64>,
}

/// A page of the audit log and where the tenant's archive ends: every
/// archived event happened before `archived_before`; `None` when nothing
/// was archived.
pub(crate) struct AuditPage {
    pub(crate) page: Page<AuditEntry>,
    pub(crate) archived_before: Option<Timestamp>,
}

/// One event as read back from the log.
#[derive(Debug, Clone)]
pub(crate) struct AuditEntry {
    pub(crate) id: String,
    pub(crate) at: Timestamp,
    pub(crate) action: String,
    pub(crate) outcome: String,
    /// The bare UUID, as stored.
    pub(crate) credential_id: Option<String>,
    pub(crate) actor_id: String,
    pub(crate) actor_name: Option<String>,
    pub(crate) actor_email: Option<String>,
    pub(crate) actor_tenant_id: String,
    pub(crate) request_id: String,
    /// The secret version the event concerns, where it names one.
    pub(crate) secret_version: Option<i64>,
}

d1_row! {
    pub(super) struct AuditRow {
        seq: f64,
        id: String,
        at: f64,
        action: String,
        outcome: String,
        credential_id: Option<String>,
        actor_id: String,
        actor_name: Option<String>,
        actor_email: Option<String>,
        actor_tenant_id: String,
        request_id: String,
        secret_version: Option<i64>,
    }
}

impl Store {
    /// The insert of `event`; with `if_changed`, only when the batch's
    /// previous statement changed a row (so a lost compare-and-set leaves
    /// no event behind).
    pub(super) fn audit_statement(
        &self,
        event: &AuditEvent,
        if_changed: bool,
    ) -> Result<D1PreparedStatement, ApiError> {
        let sql = if if_changed {
            sql::AUDIT_INSERT_IF_CHANGED
        } else {
            sql::AUDIT_INSERT
        };
        let credential = event.credential.map(|id| id.to_string());
        self.prepare(
            sql,
            &[
                event.id.as_str().into(),
                event.owner.to_string().into(),
                ts(event.at),
                event.action.as_str().into(),
                event.outcome.as_str().into(),
                opt(credential.as_deref()),
                event.actor_id.as_str().into(),
                opt(event.actor_name.as_deref()),
                opt(event.actor_email.as_deref()),
                event.actor_tenant.to_string().into(),
                event.request_id.as_str().into(),
                super::opt_int(event.secret_version),
            ],
        )
    }

    /// One page of `tenant`'s audit log, newest first, and where the
    /// tenant's archive ends; one round trip.
    pub(crate) async fn list_audit(
        &self,
        tenant: TenantId,
        credential: Option<CredentialId>,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<AuditPage, ApiError> {
        let sql = sql::list_audit(credential.is_some(), after.is_some());
        let mut params: Vec<JsValue> = vec![tenant.to_string().into()];
        if let Some(credential) = credential {
            params.push(credential.to_string().into());
        }
        if let Some(cursor) = after {
            params.push(int(cursor.created_at));
        }
        params.push(int(i64::from(limit) + 1));
        // The page, the tenant's archive mark and its status (a deleted
        // tenant's audit log answers 410), in one round trip.
        let mark = self.prepare(sql::ARCHIVE_MARK_GET, &[tenant.to_string().into()])?;
        let status = self.prepare(sql::TENANT_STATUS, &[tenant.to_string().into()])?;
        let results = self
            .batch(vec![self.prepare(&sql, &params)?, mark, status])
            .await?;
        d1_row! {
            struct Status {
                deleted_at: Option<i64>,
            }
        }
        let status: Vec<Status> = match results.get(2) {
            Some(result) => result.results().map_err(super::db_error)?,
            None => Vec::new(),
        };
        if status.first().is_some_and(|row| row.deleted_at.is_some()) {
            return Err(ApiError::TenantDeleted);
        }
        let rows: Vec<AuditRow> = match results.first() {
            Some(result) => result.results().map_err(super::db_error)?,
            None => Vec::new(),
        };
        d1_row! {
            struct Mark {
                archived_before: f64,
            }
        }
        let mark: Vec<Mark> = match results.get(1) {
            Some(result) => result.results().map_err(super::db_error)?,
            None => Vec::new(),
        };
        let archived_before = match mark.first() {
            Some(mark) => Some(timestamp(mark.archived_before).ok_or_else(|| {
                ApiError::internal("stored archive mark has a bad archived_before")
            })?),
            None => None,
        };
        let entries = rows
            .into_iter()
            .map(AuditRow::into_entry)
            .collect::<Result<Vec<_>, _>>()?;
        let page = Page::from_overfetch(entries, limit, |(seq, _)| Cursor {
            created_at: *seq,
            id: String::new(),
        })
        .map(|(_, entry)| entry);
        Ok(AuditPage {
            page,
            archived_before,
        })
    }
}

impl AuditRow {
    /// The entry and its sequence number (the page cursor).
    pub(super) fn into_entry(self) -> Result<(i64, AuditEntry), ApiError> {
        let corrupt = |what: &str| {
            ApiError::internal(format!("stored audit event {} has a bad {what}", self.id))
        };
        let seq = safe_integer(self.seq).ok_or_else(|| corrupt("seq"))?;
        let at = timestamp(self.at).ok_or_else(|| corrupt("at"))?;
        Ok((
            seq,
            AuditEntry {
                id: self.id,
                at,
                action: self.action,
                outcome: self.outcome,
                credential_id: self.credential_id,
                actor_id: self.actor_id,
                actor_name: self.actor_name,
                actor_email: self.actor_email,
                actor_tenant_id: self.actor_tenant_id,
                request_id: self.request_id,
                secret_version: self.secret_version,
            },
        ))
    }
}
