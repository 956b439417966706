//! Thin handlers per surface: load → decide (the access gate asks the
//! core) → store, then render (`render.rs`). Creating a record and
//! applying a patch are pure (`change.rs`); the decrypted read is
//! `secret.rs`; bodies are `body.rs`.
use coffer_core::CredentialId;
use serde_json::json;

use crate::{
    context::{Ctx, Reply},
    error::{ApiError, Place},
    store::{Cursor, Record, Store},
};

pub(crate) mod archives;
mod body;
mod change;
pub(crate) mod connection;
pub(crate) mod console;
pub(crate) mod credentials;
mod render;
mod secret;
pub(crate) mod tenant;
pub(crate) mod versions;

/// `GET /healthz`: 200 once D1 and both KV namespaces answer (the store
/// asks them concurrently: one storage round trip of time).
pub(crate) async fn healthz(ctx: &Ctx) -> Result<Reply, ApiError> {
    Store::health(&ctx.env, ctx.io.clone()).await?;
    Ok(Reply::ok(
        json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}),
    ))
}

/// The OpenAPI 3.1 document of every route, checked against the route table
/// by a test: `src/openapi.json` as `build.rs` minified it. Tests only: the
/// Worker serves the copy `scripts/build-console.sh` puts in the static
/// assets, which keeps its 98 KB (14 KB gzipped) out of the `.wasm`.
#[cfg(test)]
pub(crate) const OPENAPI: &str = include_str!(concat!(core::env!("OUT_DIR"), "/openapi.min.json"));

/// Where the static assets hold the OpenAPI document (see `build-console.sh`).
const OPENAPI_ASSET: &str = "/console/openapi.json";

/// `GET /openapi.json`: the document from the static assets, answered by
/// the Worker so the route keeps its headers and CORS allowlist.
pub(crate) async fn openapi(ctx: &Ctx) -> Result<Reply, ApiError> {
    let text = crate::web_fetch::asset_text(&ctx.env, crate::env::ASSETS, OPENAPI_ASSET)
        .await
        .ok_or_else(|| {
            ApiError::internal(format!(
                "openapi.json: no {OPENAPI_ASSET} through the {} binding",
                crate::env::ASSETS
            ))
        })?;
    serde_json::from_str(&text)
        .map(Reply::ok)
        .map_err(|error| ApiError::internal(format!("openapi.json: {error}")))
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

pub(crate) use crate::keys::versions_kept;

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
