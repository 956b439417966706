//! The route table: which operation a method and path name, and the
//! handler that serves it. Called by `http` (the layer above); calls the
//! handlers in `routes` (the layer below).
use worker::Method;

use crate::{
    context::{Ctx, Params, Reply},
    error::ApiError,
    routes,
    store::session::Start,
};

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
    AuditArchives,
    AuditArchiveDay,
    ConsolePage,
    ConsoleRedirect,
    ConsoleConfig,
    VersionList,
    VersionRollback,
    VersionDestroy,
    TenantDelete,
    TenantKeyRotate,
    CredentialRefresh,
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
    (Method::Get, "/api/v1/audit/archives", Op::AuditArchives),
    (
        Method::Get,
        "/api/v1/audit/archives/{day}",
        Op::AuditArchiveDay,
    ),
    // The console's page and sign-in configuration (public, secret-free);
    // its scripts and styles are static assets (`[assets]`).
    (Method::Get, "/console", Op::ConsoleRedirect),
    (Method::Get, "/console/", Op::ConsolePage),
    (Method::Get, "/console/config.json", Op::ConsoleConfig),
    (
        Method::Post,
        "/api/v1/credentials/{id}/refresh",
        Op::CredentialRefresh,
    ),
];

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
pub(crate) fn resolve(method: &Method, path: &str) -> Result<(Op, Params), ApiError> {
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

/// Runs the handler of `op`.
pub(crate) async fn dispatch(op: Op, ctx: &mut Ctx) -> Result<Reply, ApiError> {
    match op {
        Op::Healthz => routes::healthz(ctx).await,
        Op::OpenApi => routes::openapi(ctx).await,
        Op::ConnectionCredentials => routes::connection::credentials(ctx).await,
        Op::ConnectionGet => routes::connection::get(ctx).await,
        Op::ConnectionList => routes::connection::list(ctx).await,
        Op::SharesList => routes::connection::shares(ctx).await,
        Op::ShareGrant => routes::connection::grant(ctx).await,
        Op::ShareRevoke => routes::connection::revoke(ctx).await,
        Op::CredentialDetails => routes::credentials::details(ctx).await,
        Op::CredentialRead => routes::credentials::read(ctx).await,
        Op::CredentialList => routes::credentials::list(ctx).await,
        Op::CredentialCreate => routes::credentials::create(ctx).await,
        Op::CredentialUpdate => routes::credentials::update(ctx).await,
        Op::CredentialDelete => routes::credentials::delete(ctx).await,
        Op::AuditList => routes::credentials::audit(ctx).await,
        Op::AuditArchives => routes::archives::list(ctx).await,
        Op::AuditArchiveDay => routes::archives::day(ctx).await,
        Op::ConsolePage => routes::console::page(ctx),
        Op::ConsoleRedirect => routes::console::redirect(),
        Op::ConsoleConfig => routes::console::config(ctx),
        Op::VersionList => routes::versions::list(ctx).await,
        Op::VersionRollback => routes::versions::rollback(ctx).await,
        Op::VersionDestroy => routes::versions::destroy(ctx).await,
        Op::TenantDelete => routes::tenant::delete(ctx).await,
        Op::TenantKeyRotate => routes::tenant::rotate_key(ctx).await,
        Op::CredentialRefresh => routes::credentials::refresh(ctx).await,
    }
}

/// Where `op`'s D1 session starts: metadata reads on any replica, writes
/// and decrypted reads (which write their audit event) on the primary;
/// `None` for routes without a session.
pub(crate) fn session_start(op: Op) -> Option<Start> {
    match op {
        Op::Healthz | Op::OpenApi | Op::ConsolePage | Op::ConsoleRedirect | Op::ConsoleConfig => {
            None
        }
        Op::CredentialDetails
        | Op::CredentialList
        | Op::ConnectionGet
        | Op::ConnectionList
        | Op::SharesList
        | Op::AuditList
        | Op::AuditArchives
        | Op::AuditArchiveDay
        | Op::VersionList => Some(Start::AnyReplica),
        Op::ConnectionCredentials
        | Op::CredentialRead
        | Op::CredentialCreate
        | Op::CredentialUpdate
        | Op::CredentialDelete
        | Op::ShareGrant
        | Op::ShareRevoke
        | Op::CredentialRefresh
        | Op::VersionRollback
        | Op::VersionDestroy
        | Op::TenantDelete
        | Op::TenantKeyRotate => Some(Start::Primary),
    }
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
