//! Rendering: what the two surfaces show of stored data (records, audit
//! events, shares) and the credentials surface's success envelope. The
//! store returns data; only this module turns it into API JSON.
//!
//! Objects are `serde_json` maps, whose members serialize in sorted order
//! (as they always have); a record's `metadata` is written in afterwards as
//! the stored text ([`crate::context::Reply::metadata`]).
use coffer_core::{effective_status, is_expired, CredentialId, TenantId, Timestamp};
use serde_json::{json, Value};

use crate::store::{Actor, ArchiveObject, AuditEntry, KeptVersion, Record, Share};

/// The credentials surface's success envelope.
pub(crate) fn envelope(now: Timestamp, message: &str, data: Value) -> Value {
    json!({
        "success": true,
        "message": message,
        "data": data,
        "timestamp": now.to_rfc3339(),
    })
}

/// `{id, name, email}`, as `createdBy` / `updatedBy` are rendered.
fn actor_json(actor: &Actor) -> Value {
    json!({"id": actor.id, "name": actor.name, "email": actor.email})
}

/// Common fields of both surfaces' metadata, as `(camelCase, snake_case, value)`.
fn metadata_fields(record: &Record, now: Timestamp) -> Vec<(&'static str, &'static str, Value)> {
    let expires = record.expires_at;
    vec![
        (
            "integrationId",
            "integration_id",
            json!(record.integration.as_str()),
        ),
        ("credentialName", "name", json!(record.name)),
        ("description", "description", json!(record.description)),
        ("authType", "auth_type", json!(record.auth_type.as_str())),
        ("scopes", "scopes", json!(record.scopes)),
        (
            "tokenEndpoint",
            "token_endpoint",
            json!(record.token_endpoint),
        ),
        (
            "authorizationEndpoint",
            "authorization_endpoint",
            json!(record.authorization_endpoint),
        ),
        // A placeholder: `Reply::metadata` writes the stored text here, so
        // its numbers keep their digits.
        ("metadata", "metadata", Value::Null),
        (
            "status",
            "status",
            json!(effective_status(record.status, expires, now).as_str()),
        ),
        (
            "expiresAt",
            "expires_at",
            json!(record.expires_at.map(Timestamp::to_rfc3339)),
        ),
        ("isExpired", "is_expired", json!(is_expired(expires, now))),
        (
            "createdAt",
            "created_at",
            json!(record.created_at.to_rfc3339()),
        ),
        ("createdBy", "created_by", actor_json(&record.created_by)),
        (
            "updatedAt",
            "updated_at",
            json!(record.updated_at.to_rfc3339()),
        ),
        ("updatedBy", "updated_by", actor_json(&record.updated_by)),
        (
            "lastAccessedAt",
            "last_accessed_at",
            json!(record.last_accessed_at.map(Timestamp::to_rfc3339)),
        ),
        ("accessCount", "access_count", json!(record.access_count)),
        ("version", "version", json!(record.version.get())),
    ]
}

/// The credentials surface's details object (the seed's `data` fields).
pub(crate) fn credential(record: &Record, now: Timestamp) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("id".into(), json!(record.id.prefixed()));
    for (name, _, value) in metadata_fields(record, now) {
        object.insert(name.into(), value);
    }
    object.insert(
        "tenant".into(),
        json!({"id": record.owner.to_string(), "name": record.tenant_name}),
    );
    object.insert(
        "refresh".into(),
        crate::refresh::refresh_json(record, false),
    );
    Value::Object(object)
}

/// The connection surface's metadata object.
pub(crate) fn connection(record: &Record, acting: TenantId, now: Timestamp) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("connection_id".into(), json!(record.id.to_string()));
    for (_, name, value) in metadata_fields(record, now) {
        object.insert(name.into(), value);
    }
    object.insert("owner_tenant_id".into(), json!(record.owner.to_string()));
    object.insert("shared".into(), json!(record.owner != acting));
    object.insert("refresh".into(), crate::refresh::refresh_json(record, true));
    Value::Object(object)
}

/// The connection surface's envelope: `{"data": ...}`.
pub(crate) fn data(data: Value) -> Value {
    json!({ "data": data })
}

/// A page on the credentials surface: `items` and `nextCursor`.
pub(crate) fn credentials_page(items: Vec<Value>, next_cursor: Option<String>) -> Value {
    json!({"items": items, "nextCursor": next_cursor})
}

/// A page on the connection surface: `data` and `next_cursor`.
pub(crate) fn connection_page(items: Vec<Value>, next_cursor: Option<String>) -> Value {
    json!({"data": items, "next_cursor": next_cursor})
}

/// What a decrypted read of the connection surface shows besides the
/// secret (spliced in as `credentials`).
pub(crate) fn connection_secret(record: &Record) -> Value {
    data(json!({"connection_id": record.id.to_string()}))
}

/// A deleted credential.
pub(crate) fn deleted(id: CredentialId) -> Value {
    json!({"id": id.prefixed(), "deleted": true})
}

/// One event of `GET /api/v1/audit`.
pub(crate) fn audit_event(entry: &AuditEntry) -> Value {
    crate::archive::event_json(entry)
}

/// A page of the audit log: the credentials surface's page and where the
/// tenant's archive ends (`archivedBefore`, `null` before any archive).
pub(crate) fn audit_page(
    items: Vec<Value>,
    next_cursor: Option<String>,
    archived_before: Option<Timestamp>,
) -> Value {
    json!({
        "items": items,
        "nextCursor": next_cursor,
        "archivedBefore": archived_before.map(Timestamp::to_rfc3339),
    })
}

/// One object of the tenant's audit archive.
pub(crate) fn archive_object(object: &ArchiveObject) -> Value {
    json!({
        "day": object.day,
        "firstSeq": object.first_seq,
        "lastSeq": object.last_seq,
        "events": object.events,
        "bytes": object.bytes,
        "sha256": object.sha256,
    })
}

/// One share of the connection surface.
pub(crate) fn share(share: &Share) -> Value {
    json!({
        "connection_id": share.connection_id,
        "tenant_id": share.tenant_id,
        "granted_at": share.granted_at.to_rfc3339(),
        "granted_by": share.granted_by,
    })
}

/// `GET /api/v1/credentials/{id}/versions`: the version items of a record,
/// newest first: the current version, then the kept earlier ones.
pub(crate) fn versions(record: &Record, earlier: &[KeptVersion]) -> Value {
    let current = json!({
        "secretVersion": record.secret_version.get(),
        "createdAt": record.secret_at.unwrap_or(record.updated_at).to_rfc3339(),
        "createdBy": record.secret_by.as_ref().unwrap_or(&record.updated_by),
        "current": true,
        "destroyed": false,
    });
    let items: Vec<Value> = core::iter::once(current)
        .chain(earlier.iter().map(|version| {
            json!({
                "secretVersion": version.secret_version,
                "createdAt": Timestamp::from_unix_millis(version.created_at)
                    .map(|at| at.to_rfc3339())
                    .ok(),
                "createdBy": version.created_by,
                "current": false,
                "destroyed": version.destroyed_at.is_some(),
            })
        }))
        .collect();
    json!({"id": record.id.prefixed(), "items": items})
}

/// A destroyed secret version.
pub(crate) fn version_destroyed(id: CredentialId, secret_version: i64) -> Value {
    json!({"id": id.prefixed(), "secretVersion": secret_version, "destroyed": true})
}

/// `DELETE /api/v1/tenant`.
pub(crate) fn tenant_deleted(tenant: TenantId) -> Value {
    json!({"tenantId": tenant.to_string(), "deleted": true})
}

/// `POST /api/v1/tenant/keys/rotate`: how far the rotation got.
pub(crate) fn tenant_key_rotation(
    version: u32,
    started: bool,
    rewrapped: usize,
    remaining: i64,
    complete: bool,
) -> Value {
    json!({
        "tenantKeyVersion": version,
        "started": started,
        "rewrapped": rewrapped,
        "remaining": remaining,
        "complete": complete,
    })
}
