//! Token shape, key sets and signature verification: pure code with no
//! runtime API, so it compiles natively for unit tests and for the
//! benchmark in `benches/verify.rs` (which includes this file by path, so it
//! names no `crate::` item).
//!
//! The algorithm is fixed by the key, never by the token: a key from a JWKS
//! gets its algorithm from its type (RSA → RS256, EC P-256 → ES256, OKP
//! Ed25519 → EdDSA) and the HS256 key is the configured secret. The token's
//! `alg` must then equal the key's, which jwt-compact checks before it looks
//! at the signature.
use std::collections::HashMap;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use coffer_core::{IdentityClaims, TokenClaims};
use jwt_compact::{
    alg::{Ed25519, Es256, Hs256, Hs256Key, Rsa, RsaPublicKey, StrongAlg, StrongKey},
    jwk::JsonWebKey,
    Algorithm, AlgorithmExt as _, Token, UntrustedToken, ValidationError,
};
use serde_json::{Map, Value};

/// Longest bearer token accepted; real IdP tokens are a few KiB.
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Longest JWKS document accepted.
pub(crate) const MAX_JWKS_LEN: usize = 128 * 1024;

/// RS256 over keys of 2048, 3072 or 4096 bits only (RFC 7518 §3.3: "A key of
/// size 2048 bits or larger MUST be used").
const RS256: StrongAlg<Rsa> = StrongAlg(Rsa::rs256());

type Es256Key = <Es256 as Algorithm>::VerifyingKey;
type Ed25519Key = <Ed25519 as Algorithm>::VerifyingKey;

/// Why a bearer value could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParseFailure {
    /// Not three non-empty base64url segments, or a header that is not a
    /// JSON object.
    NotAJwt,
    /// Shaped like a JWT but refused before any key is tried.
    Invalid(&'static str),
}

/// Parses a bearer token. Only the shape is judged here; nothing in the
/// result is trusted.
pub(crate) fn parse(token: &str) -> Result<UntrustedToken<'_>, ParseFailure> {
    let mut segments = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(ParseFailure::NotAJwt);
    };
    for segment in [header, payload, signature] {
        if segment.is_empty() || URL_SAFE_NO_PAD.decode(segment).is_err() {
            return Err(ParseFailure::NotAJwt);
        }
    }
    let header_is_object = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
        .is_some();
    if !header_is_object {
        return Err(ParseFailure::NotAJwt);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(ParseFailure::Invalid("token too long"));
    }
    UntrustedToken::new(token).map_err(|error| match error {
        jwt_compact::ParseError::InvalidTokenStructure
        | jwt_compact::ParseError::InvalidBase64Encoding => ParseFailure::NotAJwt,
        // A JSON object without `alg`, or with a `cty` we do not read.
        _ => ParseFailure::Invalid("unsupported token header"),
    })
}

/// A verifying key with the one algorithm it may be used with.
#[derive(Debug, Clone)]
pub(crate) enum VerifyingKey {
    /// HMAC with SHA-256 under the deployment's secret.
    Hs256(Hs256Key),
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256(StrongKey<RsaPublicKey>),
    /// ECDSA on P-256 with SHA-256.
    Es256(Es256Key),
    /// Ed25519.
    EdDsa(Ed25519Key),
}

impl VerifyingKey {
    /// The JWS `alg` this key verifies.
    pub(crate) fn algorithm(&self) -> &'static str {
        match self {
            Self::Hs256(_) => "HS256",
            Self::Rs256(_) => "RS256",
            Self::Es256(_) => "ES256",
            Self::EdDsa(_) => "EdDSA",
        }
    }

    /// Reads a public key from one JWKS entry. `None` for keys Coffer does
    /// not use: encryption keys, other types or curves, weak RSA moduli, and
    /// keys whose declared `alg` is not the one their type implies.
    pub(crate) fn from_jwk(entry: &Value) -> Option<Self> {
        if entry.get("use").is_some_and(|usage| usage != "sig") {
            return None;
        }
        let jwk: JsonWebKey<'static> = serde_json::from_value(entry.clone()).ok()?;
        let key = match &jwk {
            JsonWebKey::Rsa { .. } => {
                let key = RsaPublicKey::try_from(&jwk).ok()?;
                Self::Rs256(StrongKey::try_from(key).ok()?)
            }
            JsonWebKey::EllipticCurve { .. } => Self::Es256(Es256Key::try_from(&jwk).ok()?),
            JsonWebKey::KeyPair { .. } => Self::EdDsa(Ed25519Key::try_from(&jwk).ok()?),
            _ => return None,
        };
        match entry.get("alg") {
            Some(alg) if alg != key.algorithm() => None,
            _ => Some(key),
        }
    }
}

/// The signing keys of one realm, by `kid`.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: HashMap<String, VerifyingKey>,
}

/// A JWKS document that could not be read at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MalformedJwks;

impl KeySet {
    /// Reads a JWKS (RFC 7517 §5). Entries without a `kid` or that
    /// [`VerifyingKey::from_jwk`] refuses are skipped; the first of two
    /// entries with one `kid` wins.
    pub(crate) fn from_jwks(json: &str) -> Result<Self, MalformedJwks> {
        if json.len() > MAX_JWKS_LEN {
            return Err(MalformedJwks);
        }
        let document: Value = serde_json::from_str(json).map_err(|_| MalformedJwks)?;
        let entries = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(MalformedJwks)?;
        let mut keys = HashMap::new();
        for entry in entries {
            let Some(kid) = entry.get("kid").and_then(Value::as_str) else {
                continue;
            };
            if keys.contains_key(kid) {
                continue;
            }
            if let Some(key) = VerifyingKey::from_jwk(entry) {
                keys.insert(kid.to_owned(), key);
            }
        }
        Ok(Self { keys })
    }

    /// The key with this `kid`.
    pub(crate) fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    /// How many usable keys the set holds.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

/// Why a signature check failed; the text is for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VerifyError {
    /// The token's `alg` is not the key's.
    AlgorithmMismatch,
    /// The signature does not verify (or has the wrong length or form).
    BadSignature,
    /// The claims are not a JSON object of the expected types.
    MalformedClaims,
}

impl VerifyError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::AlgorithmMismatch => "token alg does not match the key's algorithm",
            Self::BadSignature => "bad signature",
            Self::MalformedClaims => "malformed claims",
        }
    }
}

/// Checks the token's signature with `key` and returns its claims, which
/// the core's claim rules judge next.
pub(crate) fn verify(token: &UntrustedToken<'_>, key: &VerifyingKey) -> Result<TokenClaims, VerifyError> {
    let verified: Result<Token<IdentityClaims>, ValidationError> = match key {
        VerifyingKey::Hs256(key) => Hs256.validator(key).validate(token),
        VerifyingKey::Rs256(key) => RS256.validator(key).validate(token),
        VerifyingKey::Es256(key) => Es256.validator(key).validate(token),
        VerifyingKey::EdDsa(key) => Ed25519.validator(key).validate(token),
    };
    let (_, claims) = verified
        .map_err(|error| match error {
            ValidationError::AlgorithmMismatch { .. } => VerifyError::AlgorithmMismatch,
            ValidationError::MalformedClaims(_) => VerifyError::MalformedClaims,
            _ => VerifyError::BadSignature,
        })?
        .into_parts();
    Ok(TokenClaims {
        exp: claims.expiration.map(|at| at.timestamp()),
        nbf: claims.not_before.map(|at| at.timestamp()),
        iat: claims.issued_at.map(|at| at.timestamp()),
        identity: claims.custom,
    })
}
