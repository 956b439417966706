//! CORS for browser-based admin dashboards: only origins listed in
//! `CORS_ALLOWED_ORIGINS` get `Access-Control-Allow-Origin`, so a browser
//! never hands a response (let alone a secret) to any other origin. No
//! cookies are involved (bearer tokens only), so credentials mode is off.
use worker::Env;

use crate::{
    context::Reply,
    env,
    error::{ApiError, Outgoing},
    router,
};

/// Request headers a dashboard may send.
const ALLOW_HEADERS: &str =
    "authorization, content-type, x-tenantid, realmname, x-api-version, if-match, x-coffer-bookmark";
/// Response headers a dashboard may read.
const EXPOSE_HEADERS: &str = "etag, x-request-id, x-api-version, x-coffer-bookmark";

/// The allowed origins, exact matches (scheme, host and port).
pub(crate) struct Policy {
    origins: Vec<String>,
}

impl Policy {
    /// Reads `CORS_ALLOWED_ORIGINS`; unset or empty allows none.
    pub(crate) fn from_env(env: &Env) -> Self {
        let raw = env
            .var(env::CORS_ALLOWED_ORIGINS)
            .map(|v| v.to_string())
            .unwrap_or_default();
        Self::parse(&raw)
    }

    fn parse(raw: &str) -> Self {
        Self {
            origins: raw
                .split(',')
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                // A wildcard would expose responses to every site.
                .filter(|o| !o.is_empty() && o != "*" && o != "null")
                .collect(),
        }
    }

    /// Whether `origin` may read responses.
    pub(crate) fn allows(&self, origin: &str) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        self.origins.contains(&origin)
    }
}

/// Adds the headers that let an allowed origin read the response.
pub(crate) fn allow(response: &mut Outgoing, origin: String) {
    response.set("access-control-allow-origin", origin);
    response.append("vary", "Origin".into());
    response.set("access-control-expose-headers", EXPOSE_HEADERS.into());
}

/// Answers a preflight: 204 with the route's methods for an allowed
/// origin and a known path; a refusal otherwise (and no CORS headers, so
/// the browser blocks the real request).
pub(crate) fn preflight(path: &str, allowed_origin: Option<&str>) -> Result<Reply, ApiError> {
    if allowed_origin.is_none() {
        return Err(ApiError::Forbidden);
    }
    let methods = match router::resolve(&worker::Method::Options, path) {
        Err(ApiError::MethodNotAllowed { allow }) => allow,
        Err(error) => return Err(error),
        Ok(_) => return Err(ApiError::RouteNotFound),
    };
    Ok(Reply::no_content()
        .header("access-control-allow-methods", methods)
        .header("access-control-allow-headers", ALLOW_HEADERS.into())
        .header("access-control-max-age", "600".into()))
}

#[cfg(test)]
mod tests {
    use super::{allow, preflight, Policy};
    use crate::error::{ApiError, Body, Outgoing};

    #[test]
    fn only_listed_origins_are_allowed_and_wildcards_are_ignored() {
        let policy = Policy::parse("https://admin.example.com, https://ops.example.com/ ,*,null");
        assert!(policy.allows("https://admin.example.com"));
        assert!(policy.allows("HTTPS://OPS.EXAMPLE.COM"));
        assert!(!policy.allows("https://evil.example.com"));
        assert!(!policy.allows("*"));
        assert!(!policy.allows("null"));
        assert!(!Policy::parse("").allows("https://admin.example.com"));
    }
    /// Entries are trimmed, compared without a trailing slash and without
    /// letter case, and empty entries (a trailing comma, a blank value)
    /// never allow an empty or missing `Origin`.
    #[test]
    fn empty_entries_allow_nothing_and_entries_match_exactly() {
        for raw in ["", " ", ",", "https://admin.example.com,,", " , *, null ,"] {
            let policy = Policy::parse(raw);
            assert!(!policy.allows(""), "{raw:?}");
            assert!(!policy.allows(" "), "{raw:?}");
            assert!(!policy.allows("*"), "{raw:?}");
            assert!(!policy.allows("null"), "{raw:?}");
        }
        let policy = Policy::parse(" https://Admin.Example.com/ ,http://localhost:5173");
        assert!(policy.allows("https://admin.example.com"));
        assert!(policy.allows(" https://admin.example.com "));
        assert!(policy.allows("http://localhost:5173"));
        for origin in [
            "https://admin.example.com.evil.example",
            "https://evil-admin.example.com",
            "http://admin.example.com",
            "https://admin.example.com:8443",
            "http://localhost:5174",
            "http://localhost",
        ] {
            assert!(!policy.allows(origin), "{origin}");
        }
    }

    #[test]
    fn an_allowed_origin_is_echoed_exposed_headers_listed_and_vary_kept() {
        let mut response = Outgoing::new(200, Body::Empty);
        response.set("vary", "Accept-Encoding".into());
        response.set(
            "access-control-allow-origin",
            "https://stale.example.com".into(),
        );
        allow(&mut response, "https://admin.example.com".into());
        assert_eq!(
            response.headers(),
            [
                ("vary", "Accept-Encoding".to_string()),
                (
                    "access-control-allow-origin",
                    "https://admin.example.com".to_string()
                ),
                ("vary", "Origin".to_string()),
                (
                    "access-control-expose-headers",
                    "etag, x-request-id, x-api-version, x-coffer-bookmark".to_string()
                ),
            ]
        );
    }

    #[test]
    fn a_preflight_lists_the_routes_methods_for_an_allowed_origin_only() {
        let reply = preflight("/api/v1/credentials", Some("https://admin.example.com"))
            .expect("a known path");
        assert_eq!(reply.status, 204);
        assert_eq!(
            reply.headers,
            [
                ("access-control-allow-methods", "GET, POST".to_string()),
                (
                    "access-control-allow-headers",
                    "authorization, content-type, x-tenantid, realmname, x-api-version, \
                     if-match, x-coffer-bookmark"
                        .to_string()
                ),
                ("access-control-max-age", "600".to_string()),
            ]
        );
        assert!(matches!(
            preflight("/api/v1/credentials", None),
            Err(ApiError::Forbidden)
        ));
        assert!(matches!(
            preflight("/no/such/route", Some("https://admin.example.com")),
            Err(ApiError::RouteNotFound)
        ));
    }
}
