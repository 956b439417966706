//! Bearer tokens: HS256 and per-realm JWKS verification.
//!
//! Placeholder: refuses every token until verification lands.
use coffer_core::Principal;
use worker::{Env, Request};

/// Why a request was not authenticated. The reason is logged, never sent.
#[derive(Debug)]
pub(crate) enum AuthError {
    /// No `Authorization: Bearer` header.
    Missing,
    /// Not three non-empty base64url segments, or a header that is not a JSON object.
    NotAJwt,
    /// A JWT that failed verification or the claim rules; the reason is for the log.
    Invalid(&'static str),
    /// The deployment's auth configuration is broken (logged, answered 500).
    Misconfigured(&'static str),
}

/// Verifies the request's bearer token and returns the principal.
pub(crate) async fn authenticate(
    _req: &Request,
    _env: &Env,
    _now_ms: i64,
) -> Result<Principal, AuthError> {
    Err(AuthError::Missing)
}
