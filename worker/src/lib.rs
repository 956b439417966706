//! Coffer's Worker: the entry points and the router, nothing else.
//!
//! A request flows router → [`http::serve`] (request id, log line, error
//! rendering) → a handler in `routes/` → `auth` → the core's policy →
//! `store/`.
extern crate alloc;

use worker::{
    event, Context, Date, Env, Method, Request, Response, Result, ScheduleContext, ScheduledEvent,
};

mod auth;
mod cors;
mod env;
mod error;
#[cfg(feature = "fault-injection")]
mod faults;
mod http;
mod keys;
#[cfg(test)]
mod openapi_tests;
#[cfg(test)]
mod plain_vars;
mod routes;
mod store;
mod sweep;

use error::ApiError;

/// Every operation the Worker serves, one per route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Healthz,
    OpenApi,
    ConnectionCredentials,
    ConnectionGet,
    ConnectionList,
    SharesList,
    ShareGrant,
    ShareRevoke,
    CredentialDetails,
    CredentialRead,
    CredentialList,
    CredentialCreate,
    CredentialUpdate,
    CredentialDelete,
    AuditList,
    VersionList,
    VersionRollback,
    VersionDestroy,
    TenantDelete,
    TenantKeyRotate,
}

/// The route table: method, path template (`{name}` captures one segment)
/// and operation. The OpenAPI document is checked against this list.
pub(crate) const ROUTES: &[(Method, &str, Op)] = &[
    (Method::Get, "/healthz", Op::Healthz),
    (Method::Get, "/openapi.json", Op::OpenApi),
    (
        Method::Get,
        "/connection/{connection_id}/credentials",
        Op::ConnectionCredentials,
    ),
    (Method::Get, "/connection", Op::ConnectionList),
    (
        Method::Get,
        "/connection/{connection_id}",
        Op::ConnectionGet,
    ),
    (
        Method::Get,
        "/connection/{connection_id}/shares",
        Op::SharesList,
    ),
    (
        Method::Put,
        "/connection/{connection_id}/shares/{tenant_id}",
        Op::ShareGrant,
    ),
    (
        Method::Delete,
        "/connection/{connection_id}/shares/{tenant_id}",
        Op::ShareRevoke,
    ),
    (
        Method::Get,
        "/api/v1/credentials/{integrationId}/details",
        Op::CredentialDetails,
    ),
    (Method::Get, "/api/v1/credentials", Op::CredentialList),
    (Method::Post, "/api/v1/credentials", Op::CredentialCreate),
    (Method::Get, "/api/v1/credentials/{id}", Op::CredentialRead),
    (
        Method::Patch,
        "/api/v1/credentials/{id}",
        Op::CredentialUpdate,
    ),
    (
        Method::Delete,
        "/api/v1/credentials/{id}",
        Op::CredentialDelete,
    ),
    (Method::Get, "/api/v1/audit", Op::AuditList),
    (
        Method::Get,
        "/api/v1/credentials/{id}/versions",
        Op::VersionList,
    ),
    (
        Method::Post,
        "/api/v1/credentials/{id}/rollback",
        Op::VersionRollback,
    ),
    (
        Method::Delete,
        "/api/v1/credentials/{id}/versions/{n}",
        Op::VersionDestroy,
    ),
    (Method::Delete, "/api/v1/tenant", Op::TenantDelete),
    (
        Method::Post,
        "/api/v1/tenant/keys/rotate",
        Op::TenantKeyRotate,
    ),
];

/// Captured path parameters, by template name.
pub(crate) type Params = Vec<(&'static str, String)>;

/// Matches a template against a path; `Some(params)` on a match.
fn matches(template: &'static str, path: &str) -> Option<Params> {
    let mut params = Vec::new();
    let mut segments = path.split('/');
    for expected in template.split('/') {
        let segment = segments.next()?;
        if let Some(name) = expected.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if segment.is_empty() {
                return None;
            }
            params.push((name, segment.to_string()));
        } else if expected != segment {
            return None;
        }
    }
    segments.next().is_none().then_some(params)
}

/// Finds the operation for `method` and `path`: 404 when no template
/// matches, 405 with the allowed methods when only the method is wrong.
pub(crate) fn resolve(method: &Method, path: &str) -> core::result::Result<(Op, Params), ApiError> {
    let mut allowed: Vec<&str> = Vec::new();
    for (route_method, template, op) in ROUTES {
        if let Some(params) = matches(template, path) {
            // HEAD is not mapped onto GET: a HEAD of a decrypted read would
            // count and audit a read whose secret nobody receives.
            if route_method == method {
                return Ok((*op, params));
            }
            allowed.push(route_method.as_ref());
        }
    }
    if allowed.is_empty() {
        Err(ApiError::RouteNotFound)
    } else {
        Err(ApiError::MethodNotAllowed {
            allow: allowed.join(", "),
        })
    }
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    env::warn_once_about_secrets_in_plain_vars();
    http::serve(req, env).await
}

/// The cron in `wrangler.toml` (locally: `GET /__scheduled` under
/// `wrangler dev --test-scheduled`): expiry, rewrap and orphan sweeps.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    env::warn_once_about_secrets_in_plain_vars();
    let now_ms = i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX);
    sweep::run(&env, now_ms).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_capture_segments_and_refuse_extra_ones() {
        let params = matches(
            "/connection/{connection_id}/credentials",
            "/connection/abc/credentials",
        );
        assert_eq!(params, Some(vec![("connection_id", "abc".to_string())]));
        assert_eq!(matches("/connection/{connection_id}", "/connection/"), None);
        assert_eq!(matches("/healthz", "/healthz/"), None);
        assert_eq!(matches("/healthz", "/healthz/x"), None);
    }

    #[test]
    fn wrong_method_lists_the_allowed_ones() {
        match resolve(&Method::Post, "/healthz") {
            Err(ApiError::MethodNotAllowed { allow }) => assert_eq!(allow, "GET"),
            other => panic!("expected 405, got {other:?}"),
        }
        assert!(matches!(
            resolve(&Method::Get, "/nope"),
            Err(ApiError::RouteNotFound)
        ));
    }
}
