//! OAuth2 token refresh, without I/O: which records refresh and with which
//! grant, when, the token request's form, the token response's checks, the
//! merged secret, the backoff and the lease.
//!
//! The worker loads a record, asks [`plan`] what to do, takes the lease in
//! D1, sends the [`token_request`] built here, hands the answer to
//! [`parse_token_response`], and stores the [`merge_secret`] result. `now`
//! is always a parameter.
//!
//! The secret stays exact JSON text (see `exact.rs`): its members are read
//! as raw text and written back byte for byte, only `accessToken` and
//! `refreshToken` are replaced or added; it never passes through a
//! `serde_json::Value`.
use alloc::{
    borrow::ToOwned as _,
    boxed::Box,
    string::{String, ToString as _},
    vec::Vec,
};
use core::fmt::{self, Write as _};

use base64ct::{Base64, Encoding as _};
use serde::{
    de::{self, MapAccess, Visitor},
    Deserialize, Deserializer,
};
use serde_json::value::RawValue;
use zeroize::Zeroizing;

use crate::{limits, AuthType, Timestamp};

/// Largest token-endpoint response body read: 64 KiB. A longer one is a
/// failure (`invalid_response`) and nothing of it is kept.
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;
/// How long a token endpoint may take to answer, in milliseconds.
pub const TOKEN_TIMEOUT_MS: u32 = 10_000;
/// How long a refresher's lease lasts: longer than the endpoint timeout and
/// the write after it, short enough that a refresher that died is replaced
/// soon (RFC 6749 does not say; Nango's lock is of the same order).
pub const LEASE_MS: i64 = 15_000;
/// Longest `lastError.message`, in characters.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 200;
/// The first backoff after a failure; each further failure doubles it.
pub const BACKOFF_BASE_MS: i64 = 30_000;
/// The longest backoff.
pub const BACKOFF_MAX_MS: i64 = 60 * 60 * 1000;

/// The OAuth2 grant a record refreshes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Grant {
    /// `refresh_token` (RFC 6749 §6): `oauth2_bearer` with a `refreshToken`.
    RefreshToken,
    /// `client_credentials` (RFC 6749 §4.4): `oauth2_client_credentials`
    /// with `clientId` and `clientSecret`.
    ClientCredentials,
}

impl Grant {
    /// The `grant_type` value, also the stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
        }
    }

    /// The stored form back; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "refresh_token" => Some(Self::RefreshToken),
            "client_credentials" => Some(Self::ClientCredentials),
            _ => None,
        }
    }
}

/// How the client authenticates at the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic with the form-encoded id and secret (the default).
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

/// Why a refresh could not even be attempted, or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshError {
    /// The secret is not a JSON object, or lacks what the grant needs.
    SecretUnusable,
    /// The token endpoint is not `https` (or loopback `http` when allowed).
    EndpointRefused,
    /// The merged secret would exceed the secret limit.
    SecretTooLarge,
}

impl fmt::Display for RefreshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SecretUnusable => "the secret lacks what the grant needs",
            Self::EndpointRefused => {
                "the token endpoint must be https (http only on loopback when allowed)"
            }
            Self::SecretTooLarge => "the refreshed secret would exceed 65536 bytes",
        })
    }
}

/// A JSON object's members as raw text, in order.
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Walk;
        impl<'de> Visitor<'de> for Walk {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    let value: Box<RawValue> = map.next_value()?;
                    members.push((name, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Walk)
    }
}

impl Drop for Members {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        for (name, value) in &mut self.0 {
            name.zeroize();
            // `Box<RawValue>` owns a `Box<str>`: wipe it through a String.
            let raw = core::mem::replace(value, RawValue::NULL.to_owned());
            let mut text: String = String::from(Box::<str>::from(raw));
            text.zeroize();
        }
    }
}

impl Members {
    fn parse(secret: &str) -> Option<Self> {
        serde_json::from_str(secret).ok()
    }

    /// A member whose value is a non-empty JSON string.
    fn string(&self, name: &str) -> Option<Zeroizing<String>> {
        let (_, raw) = self.0.iter().find(|(key, _)| key == name)?;
        let value: String = serde_json::from_str(raw.get()).ok()?;
        let value = Zeroizing::new(value);
        (!value.is_empty()).then_some(value)
    }
}

/// The grant a record with `auth_type` and `secret` (its compact JSON)
/// refreshes with, if any. The token endpoint is checked apart (it may be
/// changed without the secret).
pub fn grant_for(auth_type: AuthType, secret: &str) -> Option<Grant> {
    let members = Members::parse(secret)?;
    match auth_type {
        AuthType::OAuth2Bearer => members.string("refreshToken").map(|_| Grant::RefreshToken),
        AuthType::OAuth2ClientCredentials => (members.string("clientId").is_some()
            && members.string("clientSecret").is_some())
        .then_some(Grant::ClientCredentials),
        _ => None,
    }
}

/// Every top-level string member of `secret` (its tokens, client id and
/// secret, ...): what a failure's message must never repeat.
pub fn secret_strings(secret: &str) -> Vec<Zeroizing<String>> {
    let Some(members) = Members::parse(secret) else {
        return Vec::new();
    };
    members
        .0
        .iter()
        .filter_map(|(name, _)| members.string(name))
        .collect()
}

/// `client_secret_post` when `metadata.tokenEndpointAuthMethod` says so,
/// else `client_secret_basic` (RFC 6749 §2.3.1: servers must support Basic).
pub fn client_auth(metadata: &str) -> ClientAuth {
    let method = Members::parse(metadata).and_then(|m| m.string("tokenEndpointAuthMethod"));
    match method.as_deref().map(String::as_str) {
        Some("client_secret_post") => ClientAuth::Post,
        _ => ClientAuth::Basic,
    }
}

/// Whether the worker may call `url`: `https`, or `http` to a loopback
/// host (`127.0.0.1`, `localhost`, `[::1]`) when `allow_loopback_http`.
///
/// # Errors
///
/// [`RefreshError::EndpointRefused`] otherwise, and for URLs with user
/// information (`user@host`), which would send credentials elsewhere.
pub fn check_endpoint(url: &str, allow_loopback_http: bool) -> Result<(), RefreshError> {
    let refused = Err(RefreshError::EndpointRefused);
    let (scheme, rest) = match url.split_once("://") {
        Some(parts) => parts,
        None => return refused,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') || url.chars().any(char::is_whitespace) {
        return refused;
    }
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        match bracketed.split_once(']') {
            Some((inner, _)) => inner,
            None => return refused,
        }
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    let loopback = matches!(host, "127.0.0.1" | "localhost" | "::1");
    match scheme {
        "https" => Ok(()),
        "http" if allow_loopback_http && loopback => Ok(()),
        _ => refused,
    }
}

/// A token request: the form body and, for Basic, the `Authorization`
/// header value. Both hold secrets and are wiped on drop.
pub struct TokenRequest {
    /// `application/x-www-form-urlencoded` body.
    pub body: Zeroizing<String>,
    /// `Basic <base64>` when the client authenticates with HTTP Basic.
    pub authorization: Option<Zeroizing<String>>,
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenRequest { .. }")
    }
}

/// `application/x-www-form-urlencoded` encoding of one name or value
/// (WHATWG URL §5.2: `*-._` and alphanumerics kept, space as `+`).
fn form_encode(text: &str, out: &mut String) {
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
}

fn form_pair(out: &mut String, name: &str, value: &str) {
    if !out.is_empty() {
        out.push('&');
    }
    form_encode(name, out);
    out.push('=');
    form_encode(value, out);
}

/// The token request for `grant` from the record's `secret` (compact JSON)
/// and `scopes`: `grant_type=refresh_token&refresh_token=…` (RFC 6749 §6) or
/// `grant_type=client_credentials[&scope=…]` (§4.4), with the client
/// authenticated by `auth` when the secret holds `clientId` and
/// `clientSecret` (§2.3.1: Basic encodes both with the form encoding
/// first). A `refresh_token` request of a public client (no secret) sends
/// `client_id` alone when the secret has one (§3.2.1).
///
/// # Errors
///
/// [`RefreshError::SecretUnusable`] when the secret lacks what the grant
/// needs.
pub fn token_request(
    grant: Grant,
    secret: &str,
    scopes: &[String],
    auth: ClientAuth,
) -> Result<TokenRequest, RefreshError> {
    let members = Members::parse(secret).ok_or(RefreshError::SecretUnusable)?;
    let client_id = members.string("clientId");
    let client_secret = members.string("clientSecret");
    let mut body = Zeroizing::new(String::new());
    form_pair(&mut body, "grant_type", grant.as_str());
    match grant {
        Grant::RefreshToken => {
            let token = members
                .string("refreshToken")
                .ok_or(RefreshError::SecretUnusable)?;
            form_pair(&mut body, "refresh_token", &token);
        }
        Grant::ClientCredentials => {
            if client_id.is_none() || client_secret.is_none() {
                return Err(RefreshError::SecretUnusable);
            }
            if !scopes.is_empty() {
                // RFC 6749 §3.3: space-delimited.
                form_pair(&mut body, "scope", &scopes.join(" "));
            }
        }
    }
    let authorization = match (client_id, client_secret, auth) {
        (Some(id), Some(secret), ClientAuth::Basic) => {
            // Sized once (the form encoding at most triples a byte), so no
            // reallocation leaves an unwiped copy of the secret behind.
            let mut pair = Zeroizing::new(String::with_capacity(3 * (id.len() + secret.len()) + 1));
            form_encode(&id, &mut pair);
            pair.push(':');
            form_encode(&secret, &mut pair);
            // Encoded in constant time into a wiped buffer: the pair holds
            // the client secret.
            let mut encoded =
                Zeroizing::new(alloc::vec![0_u8; Base64::encoded_len(pair.as_bytes())]);
            let mut header = Zeroizing::new(String::from("Basic "));
            header.push_str(
                // The buffer is exactly `encoded_len`: never refused.
                Base64::encode(pair.as_bytes(), &mut encoded)
                    .map_err(|_| RefreshError::SecretUnusable)?,
            );
            Some(header)
        }
        (Some(id), Some(secret), ClientAuth::Post) => {
            form_pair(&mut body, "client_id", &id);
            form_pair(&mut body, "client_secret", &secret);
            None
        }
        (Some(id), None, _) => {
            form_pair(&mut body, "client_id", &id);
            None
        }
        _ => None,
    };
    Ok(TokenRequest {
        body,
        authorization,
    })
}

/// A successful token response's members Coffer keeps.
pub struct Tokens {
    /// The new access token.
    pub access_token: Zeroizing<String>,
    /// A rotated refresh token, when the endpoint sent one.
    pub refresh_token: Option<Zeroizing<String>>,
    /// Seconds the access token lives, when stated.
    pub expires_in: Option<u64>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// A failed attempt, as stored in `refresh.lastError`: never a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The OAuth `error` code, `http_<status>`, `timeout`,
    /// `invalid_response`, `unreachable` or `invalid_endpoint`.
    pub code: String,
    /// What went wrong, at most 200 characters, secrets removed.
    pub message: String,
}

impl Failure {
    fn new(code: &str, message: &str) -> Self {
        Self {
            code: code.to_string(),
            message: message.to_string(),
        }
    }

    /// No answer within [`TOKEN_TIMEOUT_MS`].
    pub fn timeout() -> Self {
        Self::new("timeout", "the token endpoint did not answer within 10 s")
    }

    /// The connection failed.
    pub fn unreachable() -> Self {
        Self::new("unreachable", "the token endpoint could not be reached")
    }

    /// A body over [`MAX_TOKEN_RESPONSE_BYTES`].
    pub fn too_large() -> Self {
        Self::new(
            "invalid_response",
            "the token endpoint's response exceeds 65536 bytes",
        )
    }

    /// The endpoint may not be called.
    pub fn endpoint_refused() -> Self {
        Self::new(
            "invalid_endpoint",
            "the token endpoint must be https (http only on loopback when allowed)",
        )
    }

    /// The secret lacks what the grant needs, or the result does not fit.
    pub fn from_error(error: &RefreshError) -> Self {
        match error {
            RefreshError::EndpointRefused => Self::endpoint_refused(),
            RefreshError::SecretUnusable => Self::new("invalid_secret", &error.to_string()),
            RefreshError::SecretTooLarge => Self::new("invalid_response", &error.to_string()),
        }
    }

    /// Whether automatic refreshes stop until the secret changes: the grant
    /// or the client itself was refused (RFC 6749 §5.2), and retrying
    /// would only be refused again (or lock the account).
    pub fn is_final(&self) -> bool {
        matches!(self.code.as_str(), "invalid_grant" | "invalid_client")
    }
}

/// `message` with every secret in `secrets` replaced, control characters
/// dropped and cut to [`MAX_ERROR_MESSAGE_CHARS`].
pub fn clean_message(message: &str, secrets: &[&str]) -> String {
    let mut text: String = message.chars().filter(|c| !c.is_control()).collect();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        if text.contains(*secret) {
            text = text.replace(*secret, "[redacted]");
        }
    }
    let cut: String = text.chars().take(MAX_ERROR_MESSAGE_CHARS).collect();
    // Secrets were replaced before the cut, so not even a part of one is
    // left at the end.
    cut
}

/// A token endpoint's JSON answer: the members of a success (RFC 6749
/// §5.1) and of an error (§5.2), parsed once.
#[derive(Deserialize)]
struct Answer {
    access_token: Option<String>,
    refresh_token: Option<String>,
    #[serde(default, deserialize_with = "expires_in")]
    expires_in: Option<u64>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `expires_in` as a number, or a numeric string (some servers send one),
/// by a visitor of its own: an untagged enum's buffering would cost the
/// `.wasm` more than the rest of this module.
fn expires_in<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    struct Seconds;
    impl<'de> Visitor<'de> for Seconds {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number of seconds")
        }
        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
            Ok(Some(value))
        }
        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
            u64::try_from(value)
                .map(Some)
                .map_err(|_| E::custom("negative expires_in"))
        }
        fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
            if value.is_finite() && value >= 0.0 {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(Some(value as u64))
            } else {
                Err(E::custom("negative expires_in"))
            }
        }
        fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
            value.trim().parse().map(Some).map_err(E::custom)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    deserializer.deserialize_any(Seconds)
}

/// Checks a token endpoint's answer (RFC 6749 §5.1, §5.2): a 2xx JSON
/// object with a string `access_token`, at most 64 KiB. `secrets` are the
/// strings to keep out of the failure's message (the record's tokens and
/// client secret).
///
/// # Errors
///
/// The [`Failure`] to record: the OAuth `error` code with
/// `error_description` when the body carries one (any status), else
/// `http_<status>` for a non-2xx, else `invalid_response`.
pub fn parse_token_response(status: u16, body: &[u8], secrets: &[&str]) -> Result<Tokens, Failure> {
    if body.len() > MAX_TOKEN_RESPONSE_BYTES {
        return Err(Failure::too_large());
    }
    let ok = (200..300).contains(&status);
    // Parsed from text, as every other JSON the Worker reads (one copy of
    // serde_json's reader in the `.wasm`); a body that is not UTF-8 is not
    // JSON either.
    let parsed = core::str::from_utf8(body)
        .ok()
        .and_then(|text| serde_json::from_str::<Answer>(text).ok());
    if let Some(Answer {
        error: Some(code),
        error_description,
        ..
    }) = parsed
    {
        let description = error_description.unwrap_or_default();
        let code_ok = !code.is_empty()
            && code.len() <= 64
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
        let code = if code_ok && !secrets.iter().any(|s| s.len() >= 4 && code.contains(*s)) {
            code
        } else if ok {
            "invalid_response".to_string()
        } else {
            alloc::format!("http_{status}")
        };
        return Err(Failure {
            code,
            message: clean_message(&description, secrets),
        });
    }
    if !ok {
        return Err(Failure {
            code: alloc::format!("http_{status}"),
            message: alloc::format!("the token endpoint answered HTTP {status}"),
        });
    }
    let invalid = |message: &str| Failure::new("invalid_response", message);
    let parsed =
        parsed.ok_or_else(|| invalid("the token endpoint's response is not a JSON object"))?;
    let access_token = parsed
        .access_token
        .filter(|t| !t.is_empty())
        .map(Zeroizing::new)
        .ok_or_else(|| invalid("the token endpoint's response has no access_token"))?;
    Ok(Tokens {
        access_token,
        refresh_token: parsed
            .refresh_token
            .filter(|t| !t.is_empty())
            .map(Zeroizing::new),
        expires_in: parsed.expires_in,
    })
}

/// The secret after a successful refresh: `accessToken` replaced (or
/// added), `refreshToken` replaced when the endpoint rotated it (and the
/// grant is `refresh_token`), every other member as it was, in its place.
///
/// # Errors
///
/// [`RefreshError::SecretUnusable`] when `secret` is not a JSON object;
/// [`RefreshError::SecretTooLarge`] when the result exceeds the limit.
pub fn merge_secret(
    secret: &str,
    grant: Grant,
    tokens: &Tokens,
) -> Result<Zeroizing<String>, RefreshError> {
    let members = Members::parse(secret).ok_or(RefreshError::SecretUnusable)?;
    let encode = |text: &str| -> Zeroizing<String> {
        Zeroizing::new(serde_json::to_string(text).unwrap_or_default())
    };
    let access = encode(&tokens.access_token);
    let refresh = match (grant, &tokens.refresh_token) {
        (Grant::RefreshToken, Some(token)) => Some(encode(token)),
        _ => None,
    };
    let mut merged = Zeroizing::new(String::with_capacity(secret.len() + access.len() + 32));
    let out: &mut String = &mut merged;
    out.push('{');
    let mut first = true;
    let mut push = |out: &mut String, name: &str, value: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&serde_json::to_string(name).unwrap_or_default());
        out.push(':');
        out.push_str(value);
    };
    let (mut wrote_access, mut wrote_refresh) = (false, false);
    for (name, value) in &members.0 {
        match (name.as_str(), &refresh) {
            ("accessToken", _) => {
                push(out, name, &access);
                wrote_access = true;
            }
            ("refreshToken", Some(token)) => {
                push(out, name, token);
                wrote_refresh = true;
            }
            _ => push(out, name, value.get()),
        }
    }
    if !wrote_access {
        push(out, "accessToken", &access);
    }
    if let (false, Some(token)) = (wrote_refresh, &refresh) {
        push(out, "refreshToken", token);
    }
    out.push('}');
    // Every part is compact already (the stored secret is compact text,
    // the new strings are serde_json's), so the length is the limit's count.
    if out.len() > limits::MAX_SECRET_BYTES {
        return Err(RefreshError::SecretTooLarge);
    }
    Ok(merged)
}

/// The new `expiresAt`: `now + expires_in`, or none (no automatic refresh
/// until one is forced). A lifetime beyond the timestamp range is clamped.
pub fn new_expiry(now: Timestamp, expires_in: Option<u64>) -> Option<Timestamp> {
    let seconds = i64::try_from(expires_in?).unwrap_or(i64::MAX);
    let at = now
        .as_unix_millis()
        .saturating_add(seconds.saturating_mul(1000));
    Some(Timestamp::from_unix_millis(at).unwrap_or(Timestamp::MAX))
}

/// How long to wait after `failures` consecutive failures (1 or more)
/// before the next automatic attempt: 30 s doubling, at most an hour.
pub fn backoff_ms(failures: u32) -> i64 {
    let doublings = failures.saturating_sub(1).min(20);
    BACKOFF_BASE_MS
        .saturating_mul(1_i64 << doublings)
        .min(BACKOFF_MAX_MS)
}

/// A record's refresh state, as loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    /// The grant, if the record refreshes at all.
    pub grant: Option<Grant>,
    /// Whether the record has a token endpoint.
    pub has_endpoint: bool,
    /// The access token's expiry.
    pub expires_at: Option<Timestamp>,
    /// Automatic refreshes stopped after `invalid_grant` / `invalid_client`.
    pub halted: bool,
    /// No automatic attempt before this (the backoff after a failure).
    pub not_before: Option<Timestamp>,
}

impl State {
    /// The grant, when the record refreshes (a grant and an endpoint).
    pub fn refreshable(&self) -> Option<Grant> {
        self.grant.filter(|_| self.has_endpoint)
    }

    /// Whether the access token is past its expiry at `now`.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.refreshable().is_some() && self.expires_at.is_some_and(|at| at <= now)
    }
}

/// What to do about a record's token before serving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Serve what is stored: the record does not refresh, or its token is
    /// not due.
    Serve,
    /// Refresh now (whoever gets the lease).
    Refresh,
    /// Due, but automatic attempts are held back (backoff, or halted after
    /// a final failure): serve the current token if it is still valid,
    /// else fail.
    HeldBack,
}

/// What a read (`forced` false) or a forced refresh should do at `now`,
/// refreshing once the expiry is within `skew_ms`. A forced refresh ignores
/// the expiry, the backoff and a halt.
pub fn plan(state: &State, now: Timestamp, skew_ms: i64, forced: bool) -> Plan {
    if state.refreshable().is_none() {
        return Plan::Serve;
    }
    if forced {
        return Plan::Refresh;
    }
    let Some(expires) = state.expires_at else {
        return Plan::Serve;
    };
    if expires.as_unix_millis() > now.as_unix_millis().saturating_add(skew_ms) {
        return Plan::Serve;
    }
    let backing_off = state.not_before.is_some_and(|at| at > now);
    if state.halted || backing_off {
        Plan::HeldBack
    } else {
        Plan::Refresh
    }
}

/// When a lease taken at `now` ends.
pub fn lease_until(now: Timestamp) -> i64 {
    now.as_unix_millis().saturating_add(LEASE_MS)
}

/// The refresh state after a failure: `(failures, not_before, halted)`.
/// A final failure halts automatic attempts; any other backs off.
pub fn after_failure(failure: &Failure, failures_before: u32, now: Timestamp) -> (u32, i64, bool) {
    let failures = failures_before.saturating_add(1);
    let not_before = now.as_unix_millis().saturating_add(backoff_ms(failures));
    (failures, not_before, failure.is_final())
}

#[cfg(test)]
mod tests {
    use alloc::{string::String, vec, vec::Vec};

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn ts(ms: i64) -> Timestamp {
        Timestamp::from_unix_millis(ms).expect("in range")
    }

    #[test]
    fn grants_follow_auth_type_and_secret() {
        let cases: &[(AuthType, &str, Option<Grant>)] = &[
            (
                AuthType::OAuth2Bearer,
                r#"{"accessToken":"a","refreshToken":"r"}"#,
                Some(Grant::RefreshToken),
            ),
            (AuthType::OAuth2Bearer, r#"{"accessToken":"a"}"#, None),
            (AuthType::OAuth2Bearer, r#"{"refreshToken":""}"#, None),
            (AuthType::OAuth2Bearer, r#"{"refreshToken":7}"#, None),
            (
                AuthType::OAuth2ClientCredentials,
                r#"{"clientId":"i","clientSecret":"s"}"#,
                Some(Grant::ClientCredentials),
            ),
            (
                AuthType::OAuth2ClientCredentials,
                r#"{"clientId":"i"}"#,
                None,
            ),
            (
                AuthType::OAuth2ClientCredentials,
                r#"{"refreshToken":"r"}"#,
                None,
            ),
            (AuthType::ApiKey, r#"{"refreshToken":"r"}"#, None),
            (
                AuthType::Custom,
                r#"{"clientId":"i","clientSecret":"s"}"#,
                None,
            ),
            (AuthType::OAuth2Bearer, "[1]", None),
        ];
        for (auth, secret, expected) in cases {
            assert_eq!(grant_for(*auth, secret), *expected, "{auth} {secret}");
        }
        for grant in [Grant::RefreshToken, Grant::ClientCredentials] {
            assert_eq!(Grant::parse(grant.as_str()), Some(grant));
        }
        assert_eq!(Grant::parse("password"), None);
    }

    #[test]
    fn secret_strings_are_the_string_members() {
        let strings = secret_strings(r#"{"a":"x1","b":2,"c":"y2","d":{"e":"z"}}"#);
        let strings: Vec<&str> = strings.iter().map(|s| s.as_str()).collect();
        assert_eq!(strings, vec!["x1", "y2"]);
        assert!(secret_strings("[]").is_empty());
    }

    #[test]
    fn client_auth_is_basic_unless_metadata_says_post() {
        assert_eq!(client_auth("{}"), ClientAuth::Basic);
        assert_eq!(
            client_auth(r#"{"tokenEndpointAuthMethod":"client_secret_post"}"#),
            ClientAuth::Post
        );
        assert_eq!(
            client_auth(r#"{"tokenEndpointAuthMethod":"client_secret_basic"}"#),
            ClientAuth::Basic
        );
        assert_eq!(
            client_auth(r#"{"tokenEndpointAuthMethod":5}"#),
            ClientAuth::Basic
        );
    }

    #[test]
    fn endpoints_must_be_https_or_allowed_loopback_http() {
        let cases: &[(&str, bool, bool)] = &[
            ("https://idp.example.com/token", false, true),
            ("https://idp.example.com:8443/t?x=1", false, true),
            ("http://idp.example.com/token", true, false),
            ("http://127.0.0.1:8080/token", false, false),
            ("http://127.0.0.1:8080/token", true, true),
            ("http://localhost/token", true, true),
            ("http://[::1]:9/token", true, true),
            ("http://127.0.0.1.example.com/token", true, false),
            ("http://user@127.0.0.1/token", true, false),
            ("https://user:pw@idp.example.com/token", false, false),
            ("ftp://idp.example.com/token", true, false),
            ("idp.example.com/token", true, false),
            ("https://", false, false),
            ("http://[::1/token", true, false),
        ];
        for (url, allow, ok) in cases {
            assert_eq!(check_endpoint(url, *allow).is_ok(), *ok, "{url} {allow}");
        }
    }

    #[test]
    fn token_requests_carry_the_grant_and_the_client() {
        let scopes = vec![String::from("read"), String::from("write all")];
        let check = |grant, secret: &str, auth, body: &str, header: Option<&str>| {
            let request = token_request(grant, secret, &scopes, auth).expect("request");
            assert_eq!(request.body.as_str(), body, "{secret}");
            assert_eq!(
                request.authorization.as_ref().map(|h| h.as_str()),
                header,
                "{secret}"
            );
        };
        check(
            Grant::RefreshToken,
            r#"{"refreshToken":"r t/+="}"#,
            ClientAuth::Basic,
            "grant_type=refresh_token&refresh_token=r+t%2F%2B%3D",
            None,
        );
        // RFC 6749 §2.3.1: id and secret form-encoded, then Basic.
        check(
            Grant::RefreshToken,
            r#"{"refreshToken":"r","clientId":"a b","clientSecret":"s:1"}"#,
            ClientAuth::Basic,
            "grant_type=refresh_token&refresh_token=r",
            Some("Basic YStiOnMlM0Ex"),
        );
        check(
            Grant::RefreshToken,
            r#"{"refreshToken":"r","clientId":"id","clientSecret":"sec"}"#,
            ClientAuth::Post,
            "grant_type=refresh_token&refresh_token=r&client_id=id&client_secret=sec",
            None,
        );
        check(
            Grant::RefreshToken,
            r#"{"refreshToken":"r","clientId":"public"}"#,
            ClientAuth::Basic,
            "grant_type=refresh_token&refresh_token=r&client_id=public",
            None,
        );
        check(
            Grant::ClientCredentials,
            r#"{"clientId":"id","clientSecret":"sec"}"#,
            ClientAuth::Basic,
            "grant_type=client_credentials&scope=read+write+all",
            Some("Basic aWQ6c2Vj"),
        );
        assert!(matches!(
            token_request(
                Grant::RefreshToken,
                r#"{"accessToken":"a"}"#,
                &[],
                ClientAuth::Basic
            ),
            Err(RefreshError::SecretUnusable)
        ));
        assert!(matches!(
            token_request(
                Grant::ClientCredentials,
                r#"{"clientId":"a"}"#,
                &[],
                ClientAuth::Basic
            ),
            Err(RefreshError::SecretUnusable)
        ));
        let no_scope = token_request(
            Grant::ClientCredentials,
            r#"{"clientId":"id","clientSecret":"sec"}"#,
            &[],
            ClientAuth::Post,
        )
        .expect("request");
        assert_eq!(
            no_scope.body.as_str(),
            "grant_type=client_credentials&client_id=id&client_secret=sec"
        );
    }

    #[test]
    fn token_responses_are_checked() {
        let secrets = ["rt-secret-1", "client-secret-2"];
        let ok = parse_token_response(
            200,
            br#"{"access_token":"at-2","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-3"}"#,
            &secrets,
        )
        .expect("tokens");
        assert_eq!(ok.access_token.as_str(), "at-2");
        assert_eq!(
            ok.refresh_token.as_deref().map(String::as_str),
            Some("rt-3")
        );
        assert_eq!(ok.expires_in, Some(3600));
        let text_expiry =
            parse_token_response(200, br#"{"access_token":"a","expires_in":"60"}"#, &secrets)
                .expect("tokens");
        assert_eq!(text_expiry.expires_in, Some(60));
        assert!(text_expiry.refresh_token.is_none());
        let none = parse_token_response(200, br#"{"access_token":"a"}"#, &secrets).expect("ok");
        assert_eq!(none.expires_in, None);
        for (text, expected) in [("null", None), ("3.9", Some(3)), ("\" 7 \"", Some(7))] {
            let body = alloc::format!(r#"{{"access_token":"a","expires_in":{text}}}"#);
            let tokens = parse_token_response(200, body.as_bytes(), &secrets).expect("tokens");
            assert_eq!(tokens.expires_in, expected, "{text}");
        }
        for text in ["-5", "\"soon\"", "[1]"] {
            let body = alloc::format!(r#"{{"access_token":"a","expires_in":{text}}}"#);
            let failure = parse_token_response(200, body.as_bytes(), &secrets).expect_err(text);
            assert_eq!(failure.code, "invalid_response", "{text}");
        }

        let failure = |status: u16, body: &[u8]| {
            parse_token_response(status, body, &secrets).expect_err("failure")
        };
        let cases: Vec<(u16, Vec<u8>, &str)> = vec![
            (
                400,
                br#"{"error":"invalid_grant","error_description":"expired"}"#.to_vec(),
                "invalid_grant",
            ),
            (
                401,
                br#"{"error":"invalid_client"}"#.to_vec(),
                "invalid_client",
            ),
            (200, br#"{"error":"slow_down"}"#.to_vec(), "slow_down"),
            (503, b"down".to_vec(), "http_503"),
            (500, b"{}".to_vec(), "http_500"),
            (200, b"not json".to_vec(), "invalid_response"),
            (
                200,
                br#"{"token_type":"Bearer"}"#.to_vec(),
                "invalid_response",
            ),
            (200, br#"{"access_token":""}"#.to_vec(), "invalid_response"),
            (200, br#"[1]"#.to_vec(), "invalid_response"),
            (
                200,
                vec![b' '; MAX_TOKEN_RESPONSE_BYTES + 1],
                "invalid_response",
            ),
            (400, br#"{"error":"has space"}"#.to_vec(), "http_400"),
            (400, br#"{"error":"x-rt-secret-1"}"#.to_vec(), "http_400"),
        ];
        for (status, body, code) in cases {
            assert_eq!(failure(status, &body).code, code, "{status}");
        }
        assert!(failure(400, br#"{"error":"invalid_grant"}"#).is_final());
        assert!(failure(401, br#"{"error":"invalid_client"}"#).is_final());
        assert!(!failure(503, b"").is_final());
        assert!(!Failure::timeout().is_final());
    }

    #[test]
    fn error_messages_are_cut_and_never_carry_a_secret() {
        let long: String = "é".repeat(300);
        let body = alloc::format!(r#"{{"error":"invalid_grant","error_description":"{long}"}}"#);
        let failure = parse_token_response(400, body.as_bytes(), &[]).expect_err("failure");
        assert_eq!(failure.message.chars().count(), MAX_ERROR_MESSAGE_CHARS);
        let leaky =
            br#"{"error":"invalid_grant","error_description":"token rt-secret-1 was revoked\n"}"#;
        let failure = parse_token_response(400, leaky, &["rt-secret-1"]).expect_err("failure");
        assert_eq!(failure.message, "token [redacted] was revoked");
        assert_eq!(clean_message("abcd", &["abcd"]), "[redacted]");
        // Secrets shorter than four characters are not worth hiding (and
        // would blank ordinary words).
        assert_eq!(clean_message("a b", &["a"]), "a b");
    }

    #[test]
    fn merged_secrets_keep_every_other_member_exactly() {
        let tokens = |refresh: Option<&str>| Tokens {
            access_token: Zeroizing::new(String::from("new-at")),
            refresh_token: refresh.map(|r| Zeroizing::new(String::from(r))),
            expires_in: Some(60),
        };
        let check = |secret: &str, grant, refresh: Option<&str>, expected: &str| {
            let merged = merge_secret(secret, grant, &tokens(refresh)).expect("merged");
            assert_eq!(merged.as_str(), expected, "{secret}");
        };
        check(
            r#"{"n":1.50,"accessToken":"old","refreshToken":"rt","x":{"big":123456789012345678901234567890}}"#,
            Grant::RefreshToken,
            None,
            r#"{"n":1.50,"accessToken":"new-at","refreshToken":"rt","x":{"big":123456789012345678901234567890}}"#,
        );
        check(
            r#"{"refreshToken":"rt","accessToken":"old"}"#,
            Grant::RefreshToken,
            Some("rt-2"),
            r#"{"refreshToken":"rt-2","accessToken":"new-at"}"#,
        );
        check(
            r#"{"refreshToken":"rt"}"#,
            Grant::RefreshToken,
            None,
            r#"{"refreshToken":"rt","accessToken":"new-at"}"#,
        );
        // A client-credentials secret never gains a refresh token.
        check(
            r#"{"clientId":"i","clientSecret":"s"}"#,
            Grant::ClientCredentials,
            Some("rt-x"),
            r#"{"clientId":"i","clientSecret":"s","accessToken":"new-at"}"#,
        );
        let quoted = Tokens {
            access_token: Zeroizing::new(String::from("a\"b\\c")),
            refresh_token: None,
            expires_in: None,
        };
        let merged =
            merge_secret(r#"{"refreshToken":"r"}"#, Grant::RefreshToken, &quoted).expect("merged");
        assert_eq!(
            merged.as_str(),
            r#"{"refreshToken":"r","accessToken":"a\"b\\c"}"#
        );
        assert_eq!(
            merge_secret("[]", Grant::RefreshToken, &tokens(None)).map(|_| ()),
            Err(RefreshError::SecretUnusable)
        );
        let huge = Tokens {
            access_token: Zeroizing::new("a".repeat(limits::MAX_SECRET_BYTES)),
            refresh_token: None,
            expires_in: None,
        };
        assert_eq!(
            merge_secret(r#"{"refreshToken":"r"}"#, Grant::RefreshToken, &huge).map(|_| ()),
            Err(RefreshError::SecretTooLarge)
        );
    }

    #[test]
    fn expiry_is_now_plus_expires_in() {
        assert_eq!(new_expiry(ts(1_000), Some(60)), Some(ts(61_000)));
        assert_eq!(new_expiry(ts(1_000), Some(0)), Some(ts(1_000)));
        assert_eq!(new_expiry(ts(1_000), None), None);
        assert_eq!(new_expiry(ts(1_000), Some(u64::MAX)), Some(Timestamp::MAX));
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let cases = [
            (0, 30_000),
            (1, 30_000),
            (2, 60_000),
            (3, 120_000),
            (8, 3_600_000),
            (40, 3_600_000),
        ];
        for (failures, expected) in cases {
            assert_eq!(backoff_ms(failures), expected, "{failures}");
        }
        let (failures, not_before, halted) = after_failure(&Failure::timeout(), 2, ts(1_000));
        assert_eq!((failures, not_before, halted), (3, 121_000, false));
        let grant = Failure {
            code: String::from("invalid_grant"),
            message: String::new(),
        };
        assert!(after_failure(&grant, 0, ts(0)).2);
        assert_eq!(lease_until(ts(5)), 15_005);
    }

    #[test]
    fn plans_follow_expiry_skew_backoff_and_halt() {
        let base = State {
            grant: Some(Grant::RefreshToken),
            has_endpoint: true,
            expires_at: Some(ts(100_000)),
            halted: false,
            not_before: None,
        };
        let skew = 60_000;
        let cases: &[(State, i64, bool, Plan)] = &[
            (base, 0, false, Plan::Serve),
            (base, 39_999, false, Plan::Serve),
            (base, 40_000, false, Plan::Refresh),
            (base, 200_000, false, Plan::Refresh),
            (base, 0, true, Plan::Refresh),
            (
                State {
                    grant: None,
                    ..base
                },
                200_000,
                false,
                Plan::Serve,
            ),
            (
                State {
                    grant: None,
                    ..base
                },
                200_000,
                true,
                Plan::Serve,
            ),
            (
                State {
                    has_endpoint: false,
                    ..base
                },
                200_000,
                false,
                Plan::Serve,
            ),
            (
                State {
                    expires_at: None,
                    ..base
                },
                200_000,
                false,
                Plan::Serve,
            ),
            (
                State {
                    expires_at: None,
                    ..base
                },
                200_000,
                true,
                Plan::Refresh,
            ),
            (
                State {
                    halted: true,
                    ..base
                },
                200_000,
                false,
                Plan::HeldBack,
            ),
            (
                State {
                    halted: true,
                    ..base
                },
                200_000,
                true,
                Plan::Refresh,
            ),
            (
                State {
                    not_before: Some(ts(300_000)),
                    ..base
                },
                200_000,
                false,
                Plan::HeldBack,
            ),
            (
                State {
                    not_before: Some(ts(200_000)),
                    ..base
                },
                200_000,
                false,
                Plan::Refresh,
            ),
        ];
        for (state, now, forced, expected) in cases {
            assert_eq!(
                plan(state, ts(*now), skew, *forced),
                *expected,
                "{state:?} {now} {forced}"
            );
        }
        assert!(base.expired(ts(100_000)));
        assert!(!base.expired(ts(99_999)));
        assert!(!State {
            has_endpoint: false,
            ..base
        }
        .expired(ts(200_000)));
    }
}
