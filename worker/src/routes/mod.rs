//! Thin handlers per surface: load → decide (core) → store.
use alloc::rc::Rc;

use coffer_core::{
    decide, effective_status, is_expired, Action, CredentialId, Denial, Keyring, Relation,
    TenantId, Timestamp, Zeroizing,
};
use serde_json::{json, Value};
use worker::Env;

use credentials::WRITE_ATTEMPTS;

use crate::{
    env,
    error::{ApiError, Missing, Place},
    http::{rfc3339, Caller, Ctx, Reply},
    store::{AuditAction, AuditEvent, Cursor, Outcome, Record},
    Op,
};

mod body;
mod connection;
mod credentials;
mod secret;
mod tenant;
mod versions;

/// The connection surface's API version served (and the default).
pub(crate) const API_VERSION: &str = "2024-03-27";

/// Runs the handler of `op`.
pub(crate) async fn dispatch(op: Op, ctx: &mut Ctx) -> Result<Reply, ApiError> {
    match op {
        Op::Healthz => healthz(ctx).await,
        Op::OpenApi => openapi(),
        Op::ConnectionCredentials => connection::credentials(ctx).await,
        Op::ConnectionGet => connection::get(ctx).await,
        Op::ConnectionList => connection::list(ctx).await,
        Op::SharesList => connection::shares(ctx).await,
        Op::ShareGrant => connection::grant(ctx).await,
        Op::ShareRevoke => connection::revoke(ctx).await,
        Op::CredentialDetails => credentials::details(ctx).await,
        Op::CredentialRead => credentials::read(ctx).await,
        Op::CredentialList => credentials::list(ctx).await,
        Op::CredentialCreate => credentials::create(ctx).await,
        Op::CredentialUpdate => credentials::update(ctx).await,
        Op::CredentialDelete => credentials::delete(ctx).await,
        Op::AuditList => credentials::audit(ctx).await,
        Op::VersionList => versions::list(ctx).await,
        Op::VersionRollback => versions::rollback(ctx).await,
        Op::VersionDestroy => versions::destroy(ctx).await,
        Op::TenantDelete => tenant::delete(ctx).await,
        Op::TenantKeyRotate => tenant::rotate_key(ctx).await,
    }
}

/// `GET /healthz`: 200 once D1 and both KV namespaces answer. The three
/// checks run concurrently: the route costs one storage round trip.
async fn healthz(ctx: &Ctx) -> Result<Reply, ApiError> {
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

/// The OpenAPI 3.1 document of every route, checked against [`crate::ROUTES`]
/// by a test: `src/openapi.json` as `build.rs` minified it (the `.wasm`
/// carries no indentation).
pub(crate) const OPENAPI: &str = include_str!(concat!(core::env!("OUT_DIR"), "/openapi.min.json"));

/// `GET /openapi.json`.
fn openapi() -> Result<Reply, ApiError> {
    serde_json::from_str(OPENAPI)
        .map(Reply::ok)
        .map_err(|error| ApiError::internal(format!("openapi.json: {error}")))
}

thread_local! {
    /// `COFFER_KEYS` parsed once per isolate, keyed by its text (which only
    /// changes with a deployment); both are wiped when replaced.
    static PARSED_KEYRING: core::cell::RefCell<Option<(Zeroizing<String>, Rc<Keyring>)>> =
        const { core::cell::RefCell::new(None) };
}

/// The master keys. A malformed `COFFER_KEYS` fails the request with a
/// logged reason (never the value) and a generic 500.
pub(crate) fn keyring(env: &Env) -> Result<Rc<Keyring>, ApiError> {
    let raw = Zeroizing::new(
        env.secret(env::COFFER_KEYS)
            .map(|secret| secret.to_string())
            .or_else(|_| env.var(env::COFFER_KEYS).map(|var| var.to_string()))
            .map_err(|_| ApiError::internal("COFFER_KEYS is not set"))?,
    );
    let cached = PARSED_KEYRING.with(|cell| {
        cell.borrow()
            .as_ref()
            .filter(|(text, _)| **text == *raw)
            .map(|(_, keyring)| Rc::clone(keyring))
    });
    if let Some(keyring) = cached {
        return Ok(keyring);
    }
    let keyring = Rc::new(
        Keyring::parse(&raw)
            .map_err(|error| ApiError::internal(format!("COFFER_KEYS: {error}")))?,
    );
    PARSED_KEYRING.with(|cell| *cell.borrow_mut() = Some((raw, Rc::clone(&keyring))));
    Ok(keyring)
}

/// Secret versions kept per record, the current one included
/// (`COFFER_SECRET_VERSIONS_KEPT`, default 10, at least 1, at most 100).
pub(crate) fn versions_kept(env: &Env) -> u32 {
    env.var(env::SECRET_VERSIONS_KEPT)
        .ok()
        .and_then(|value| value.to_string().trim().parse::<u32>().ok())
        .unwrap_or(DEFAULT_VERSIONS_KEPT)
        .clamp(1, 100)
}

/// Vault KV v2's default `max_versions` is 10 too.
const DEFAULT_VERSIONS_KEPT: u32 = 10;

/// The acting tenant's relation to a loaded record.
pub(crate) fn relation(record: &Record, shared: bool, acting: TenantId) -> Relation {
    Relation::from_share_flag(acting, record.owner, shared)
}

/// Asks the core's policy; `NotVisible` becomes the surface's 404.
pub(crate) fn allow(
    caller: &Caller,
    action: Action,
    record: Option<Relation>,
    missing: impl FnOnce() -> Missing,
) -> Result<(), ApiError> {
    decide(&caller.principal, caller.tenant, action, record).map_err(|denial| match denial {
        Denial::NotVisible => ApiError::NotFound(missing()),
        _ => ApiError::Forbidden,
    })
}

/// A milliseconds value as the core's timestamp (stored values are always
/// in range; an out-of-range one is clamped, never trusted to panic).
pub(crate) fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// `{id, name, email}` of the caller, for `createdBy` / `updatedBy`.
pub(crate) fn actor(caller: &Caller) -> Value {
    let principal = &caller.principal;
    json!({"id": principal.sub(), "name": principal.name(), "email": principal.email()})
}

/// An audit event by `caller` in `owner`'s log.
pub(crate) fn event(
    ctx: &Ctx,
    caller: &Caller,
    owner: TenantId,
    action: AuditAction,
    outcome: Outcome,
    credential: Option<CredentialId>,
) -> AuditEvent {
    AuditEvent {
        id: secret::random_uuid(),
        owner,
        at: ctx.now_ms,
        action,
        outcome,
        credential,
        actor_id: caller.principal.sub().to_string(),
        actor_name: caller.principal.name().map(str::to_string),
        actor_email: caller.principal.email().map(str::to_string),
        actor_tenant: caller.tenant,
        request_id: ctx.request_id.clone(),
        secret_version: None,
    }
}

/// Common fields of both surfaces' metadata, as `(camelCase, snake_case, value)`.
fn metadata_fields(record: &Record, now_ms: i64) -> Vec<(&'static str, &'static str, Value)> {
    let now = timestamp(now_ms);
    let expires = record.expires_at.map(timestamp);
    vec![
        ("integrationId", "integration_id", json!(record.integration)),
        ("credentialName", "name", json!(record.name)),
        ("description", "description", json!(record.description)),
        ("authType", "auth_type", json!(record.auth_type)),
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
            json!(record.expires_at.map(rfc3339)),
        ),
        ("isExpired", "is_expired", json!(is_expired(expires, now))),
        ("createdAt", "created_at", json!(rfc3339(record.created_at))),
        ("createdBy", "created_by", record.created_by.clone()),
        ("updatedAt", "updated_at", json!(rfc3339(record.updated_at))),
        ("updatedBy", "updated_by", record.updated_by.clone()),
        (
            "lastAccessedAt",
            "last_accessed_at",
            json!(record.last_accessed_at.map(rfc3339)),
        ),
        ("accessCount", "access_count", json!(record.access_count)),
        ("version", "version", json!(record.version)),
    ]
}

/// The credentials surface's details object (the seed's `data` fields).
pub(crate) fn credential_json(record: &Record, now_ms: i64) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("id".into(), json!(record.id.prefixed()));
    for (name, _, value) in metadata_fields(record, now_ms) {
        object.insert(name.into(), value);
    }
    object.insert(
        "tenant".into(),
        json!({"id": record.owner.to_string(), "name": record.tenant_name}),
    );
    Value::Object(object)
}

/// The connection surface's metadata object.
pub(crate) fn connection_json(record: &Record, acting: TenantId, now_ms: i64) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("connection_id".into(), json!(record.id.to_string()));
    for (_, name, value) in metadata_fields(record, now_ms) {
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
            current: record.version as u64,
        }),
        _ => Ok(()),
    }
}

/// The checks that need no record (tenant membership and the route's
/// minimum role, from the core's policy), run before a request body is
/// read; the full decision follows once the record is loaded.
pub(crate) fn admit(caller: &Caller, action: Action) -> Result<(), ApiError> {
    coffer_core::admit(&caller.principal, caller.tenant, action).map_err(|_| ApiError::Forbidden)
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
