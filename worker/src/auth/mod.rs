//! Bearer tokens: HS256 and per-realm JWKS verification.
//!
//! The request's configuration picks one verifier (see [`config`]'s table):
//! a realm's JWKS when the `realmname` header or `AUTH_DEFAULT_REALM` names
//! one, otherwise HS256 with `AUTH_HS256_SECRET`. The key fixes the
//! algorithm ([`verify`]); the core's claim rules then build the
//! [`Principal`], refusing a token that names a tenant its issuer may not
//! speak for (a realm's `tenants`; HS256, the operator's own key, speaks
//! for any). The token itself is never logged.

use alloc::rc::Rc;
use core::cell::RefCell;

use coffer_core::{ClaimRules, Principal, TenantScope};
use wasm_bindgen::JsValue;
use worker::{
    js_sys::{Reflect, JSON},
    Env, Request,
};

mod config;
mod jwks;
mod verify;
mod webcrypto;

use crate::store::Io;
use config::{Realms, SelectError, Verifier};
use verify::ParseFailure;

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
    Misconfigured(String),
}

/// The variables and secret this module reads.
const HS256_SECRET: &str = "AUTH_HS256_SECRET";
const ISSUER: &str = "AUTH_ISSUER";
const AUDIENCE: &str = "AUTH_AUDIENCE";
const REALMS: &str = "AUTH_REALMS";
const DEFAULT_REALM: &str = "AUTH_DEFAULT_REALM";
/// The request header that picks a realm.
const REALM_HEADER: &str = "realmname";

/// Realm algorithms: the only `alg` values worth a JWKS lookup.
const REALM_ALGORITHMS: [&str; 3] = ["RS256", "ES256", "EdDSA"];

/// Verifies the request's bearer token and returns the principal. JWKS
/// cache reads and writes are counted in `io`.
pub(crate) async fn authenticate(
    req: &Request,
    env: &Env,
    io: &Io,
    now_ms: i64,
) -> Result<Principal, AuthError> {
    let authorization = header(req, "authorization").ok_or(AuthError::Missing)?;
    let token = bearer(&authorization).ok_or(AuthError::Missing)?;
    let token = verify::parse(token).map_err(|failure| match failure {
        ParseFailure::NotAJwt => AuthError::NotAJwt,
        ParseFailure::Invalid(reason) => AuthError::Invalid(reason),
    })?;

    // The whole configuration is checked before the token is judged, so a
    // broken one fails every authenticated request, whichever verifier the
    // request would get.
    let realms = realms(env)?;
    let hs256_secret = text_var(env, HS256_SECRET);
    let hs256_secret = config::hs256_secret(hs256_secret.as_deref())
        .map_err(|reason| AuthError::Misconfigured(reason.to_owned()))?;
    let default_realm = text_var(env, DEFAULT_REALM).unwrap_or_default();
    let realm_header = header(req, REALM_HEADER);
    let verifier =
        config::select(realm_header.as_deref(), &default_realm, &realms).map_err(|error| {
            match error {
                SelectError::UnknownRealm => AuthError::Invalid("unknown realm"),
                SelectError::UnknownDefaultRealm => AuthError::Misconfigured(
                    "AUTH_DEFAULT_REALM names no realm of AUTH_REALMS".to_owned(),
                ),
            }
        })?;

    match verifier {
        Verifier::Hs256 => {
            let secret = hs256_secret.ok_or(AuthError::Invalid(
                "HS256 token but AUTH_HS256_SECRET is unset",
            ))?;
            // The HMAC key is the secret's UTF-8 bytes, as in most JWT libraries.
            let claims = webcrypto::verify_hs256(&token, secret)
                .await
                .map_err(|e| AuthError::Invalid(e.reason()))?;
            let issuer = text_var(env, ISSUER).filter(|value| !value.is_empty());
            let audience = text_var(env, AUDIENCE).filter(|value| !value.is_empty());
            // The operator's own key speaks for every tenant.
            let rules = ClaimRules {
                issuer: issuer.as_deref(),
                audience: audience.as_deref(),
                tenants: &TenantScope::Any,
            };
            claims
                .validate(&rules, now_ms)
                .map_err(|e| AuthError::Invalid(e.reason()))
        }
        Verifier::Realm(name, realm) => {
            // Refuse what no realm key could verify before any JWKS work.
            if !REALM_ALGORITHMS.contains(&token.algorithm()) {
                return Err(AuthError::Invalid("alg not accepted for realm tokens"));
            }
            let kid = token
                .key_id()
                .ok_or(AuthError::Invalid("realm token without kid"))?;
            let keys = jwks::key_set(env, io, name, realm, kid, now_ms)
                .await
                .map_err(AuthError::Invalid)?;
            let key = keys.get(kid).ok_or(AuthError::Invalid("unknown kid"))?;
            let claims = webcrypto::verify(&token, kid, key, keys.imported())
                .await
                .map_err(|e| AuthError::Invalid(e.reason()))?;
            let rules = ClaimRules {
                issuer: Some(&realm.issuer),
                audience: Some(&realm.audience),
                tenants: &realm.tenants,
            };
            claims
                .validate(&rules, now_ms)
                .map_err(|e| AuthError::Invalid(e.reason()))
        }
    }
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// The token of an `Authorization: Bearer <token>` value (RFC 6750 §2.1;
/// the scheme is case-insensitive).
fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A string variable or secret; `None` when unset.
fn text_var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|value| value.to_string())
}

/// A variable as JSON text: a string var as it is, an object var (a table
/// in `[vars]`) as `JSON.stringify` writes it; empty when unset.
fn object_or_text_var(env: &Env, name: &str) -> String {
    let value = Reflect::get(env, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED);
    if value.is_null() || value.is_undefined() {
        return String::new();
    }
    value
        .as_string()
        .or_else(|| JSON::stringify(&value).ok()?.as_string())
        .unwrap_or_default()
}

thread_local! {
    /// `AUTH_REALMS` parsed once per isolate (keyed by its text, which only
    /// changes with a deployment).
    static PARSED_REALMS: RefCell<Option<(String, Rc<Realms>)>> = const { RefCell::new(None) };
}

/// `AUTH_REALMS`, as a JSON string (the usual form) or a JSON object var.
pub(crate) fn realms(env: &Env) -> Result<Rc<Realms>, AuthError> {
    let text = object_or_text_var(env, REALMS);
    if let Some(parsed) = PARSED_REALMS.with(|cell| {
        cell.borrow()
            .as_ref()
            .filter(|(raw, _)| *raw == text)
            .map(|(_, parsed)| Rc::clone(parsed))
    }) {
        return Ok(parsed);
    }
    let parsed = Rc::new(Realms::parse(&text).map_err(AuthError::Misconfigured)?);
    PARSED_REALMS.with(|cell| *cell.borrow_mut() = Some((text, Rc::clone(&parsed))));
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_values() {
        let cases = [
            ("Bearer abc.def.ghi", Some("abc.def.ghi")),
            ("bearer   abc ", Some("abc")),
            ("BEARER x", Some("x")),
            ("Bearer ", None),
            ("Bearer", None),
            ("Basic dXNlcjpwYXNz", None),
            ("", None),
        ];
        for (value, expected) in cases {
            assert_eq!(bearer(value), expected, "{value:?}");
        }
    }
}
