//! Thin handlers per surface: load → decide (core) → store.
use coffer_core::{effective_status, is_expired, CredentialId, TenantId, Timestamp};
use serde_json::{json, Value};

use crate::{
    context::{Caller, Ctx, Reply},
    env,
    error::{ApiError, Place},
    store::{Actor, Cursor, Record},
};

mod body;
pub(crate) mod connection;
pub(crate) mod console;
pub(crate) mod credentials;
mod secret;

/// `GET /healthz`: 200 once D1 and both KV namespaces answer. The three
/// checks run concurrently: the route costs one storage round trip.
pub(crate) async fn healthz(ctx: &Ctx) -> Result<Reply, ApiError> {
    let unavailable = |error: String| ApiError::Unavailable(error);
    let db = ctx
        .env
        .d1(env::DB)
        .map_err(|e| unavailable(e.to_string()))?;
    let secrets = ctx
        .env
        .kv(env::SECRETS)
        .map_err(|e| unavailable(e.to_string()))?;
    let cache = ctx
        .env
        .kv(env::CACHE)
        .map_err(|e| unavailable(e.to_string()))?;
    let schema = db.prepare("SELECT value FROM coffer_meta WHERE key = 'schema'");
    // Counted like every other storage call, for the log line and budget.
    ctx.io.count_d1();
    ctx.io.count_kv();
    ctx.io.count_kv();
    let (d1, kv_secrets, kv_cache) = futures_util::future::join3(
        schema.first::<Value>(None),
        secrets.get("healthz").text(),
        cache.get("healthz").text(),
    )
    .await;
    d1.map_err(|e| unavailable(e.to_string()))?;
    kv_secrets.map_err(|e| unavailable(e.to_string()))?;
    kv_cache.map_err(|e| unavailable(e.to_string()))?;
    Ok(Reply::ok(
        json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}),
    ))
}

/// The OpenAPI 3.1 document of every route, checked against the route table
/// by a test: `src/openapi.json` as `build.rs` minified it (the `.wasm`
/// carries no indentation).
pub(crate) const OPENAPI: &str = include_str!(concat!(core::env!("OUT_DIR"), "/openapi.min.json"));

/// `GET /openapi.json`.
pub(crate) fn openapi() -> Result<Reply, ApiError> {
    serde_json::from_str(OPENAPI)
        .map(Reply::ok)
        .map_err(|error| ApiError::internal(format!("openapi.json: {error}")))
}

/// The caller, for `createdBy` / `updatedBy`.
pub(crate) fn actor(caller: &Caller) -> Actor {
    let principal = &caller.principal;
    Actor {
        id: principal.sub().to_string(),
        name: principal.name().map(str::to_string),
        email: principal.email().map(str::to_string),
    }
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
pub(crate) fn credential_json(record: &Record, now: Timestamp) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("id".into(), json!(record.id.prefixed()));
    for (name, _, value) in metadata_fields(record, now) {
        object.insert(name.into(), value);
    }
    object.insert(
        "tenant".into(),
        json!({"id": record.owner.to_string(), "name": record.tenant_name}),
    );
    Value::Object(object)
}

/// The connection surface's metadata object.
pub(crate) fn connection_json(record: &Record, acting: TenantId, now: Timestamp) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("connection_id".into(), json!(record.id.to_string()));
    for (_, name, value) in metadata_fields(record, now) {
        object.insert(name.into(), value);
    }
    object.insert("owner_tenant_id".into(), json!(record.owner.to_string()));
    object.insert("shared".into(), json!(record.owner != acting));
    Value::Object(object)
}

/// Parses a query parameter that must be a credential id.
pub(crate) fn credential_id_param(
    raw: &str,
    place: Place,
    field: &str,
) -> Result<CredentialId, ApiError> {
    CredentialId::parse(raw).map_err(|error| ApiError::invalid(place, field, error, "uuid_parsing"))
}

/// Parses an opaque `cursor` query parameter issued for `scope` (the
/// tenant and filters of the page it came from).
pub(crate) fn cursor_param(raw: Option<String>, scope: &str) -> Result<Option<Cursor>, ApiError> {
    raw.map(|raw| {
        Cursor::decode(&raw, scope).ok_or_else(|| {
            ApiError::invalid(
                Place::Query,
                "cursor",
                "is not a cursor issued for this tenant and these filters",
                "value_error",
            )
        })
    })
    .transpose()
}

/// An `If-Match` precondition (RFC 9110 §13.1.1), honoured on `PATCH`,
/// `DELETE` and share changes: the strong entity tags it lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IfMatch {
    /// The opaque tags of the strong entity tags, without quotes. Weak tags
    /// (`W/"3"`) are left out: `If-Match` uses the strong comparison
    /// (RFC 9110 §8.8.3.2), under which a weak tag matches nothing.
    strong: Vec<String>,
}

impl IfMatch {
    /// Parses a header value; `None` for `*` (any current record matches).
    /// A list that holds no well-formed strong tag matches nothing.
    fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw == "*" {
            return None;
        }
        let strong = raw
            .split(',')
            .map(str::trim)
            .filter_map(|tag| {
                // entity-tag = [ weakness ] opaque-tag; opaque-tag = DQUOTE *etagc DQUOTE
                // (RFC 9110 §8.8.3). Commas do not occur in the tags Coffer issues.
                let opaque = tag.strip_prefix('"')?.strip_suffix('"')?;
                (!opaque.contains('"')).then(|| opaque.to_string())
            })
            .collect();
        Some(Self { strong })
    }

    /// Whether the strong comparison finds the record's current ETag.
    fn matches(&self, record: &Record) -> bool {
        let current = record.version.to_string();
        self.strong.contains(&current)
    }
}

/// The request's `If-Match`; `None` when absent or `*`.
pub(crate) fn if_match(ctx: &Ctx) -> Option<IfMatch> {
    IfMatch::parse(&ctx.header("if-match")?)
}

/// 412 when `If-Match` names no strong tag equal to the record's version.
pub(crate) fn check_if_match(expected: Option<&IfMatch>, record: &Record) -> Result<(), ApiError> {
    match expected {
        Some(condition) if !condition.matches(record) => Err(ApiError::PreconditionFailed {
            current: record.version.get(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::IfMatch;

    fn check(raw: &str, expected: Option<&[&str]>) {
        let parsed = IfMatch::parse(raw).map(|m| m.strong);
        let expected = expected.map(|tags| tags.iter().map(|t| t.to_string()).collect());
        assert_eq!(parsed, expected, "{raw:?}");
    }

    #[test]
    fn if_match_keeps_strong_tags_only() {
        check("*", None);
        check(" * ", None);
        check("\"3\"", Some(&["3"]));
        check("\"2\", \"3\"", Some(&["2", "3"]));
        // RFC 9110 §13.1.1: If-Match uses the strong comparison, so a weak
        // tag never matches, even with the current version.
        check("W/\"3\"", Some(&[]));
        check("W/\"3\", \"4\"", Some(&["4"]));
        // Not entity tags at all: nothing can match.
        check("3", Some(&[]));
        check("", Some(&[]));
        check("\"3", Some(&[]));
    }
}
