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
pub(crate) fn verify(
    token: &UntrustedToken<'_>,
    key: &VerifyingKey,
) -> Result<TokenClaims, VerifyError> {
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

#[cfg(test)]
mod tests {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
    use jwt_compact::{
        alg::{Ed25519, Es256, Hs256, Hs256Key, Rsa, RsaPrivateKey, StrongAlg},
        jwk::JsonWebKey,
        Algorithm, AlgorithmExt as _, Claims, Header,
    };
    use serde_json::{json, Value};

    use super::{parse, verify, KeySet, MalformedJwks, ParseFailure, VerifyError, VerifyingKey};

    /// A 2048-bit RSA key made for these tests only (never use it elsewhere).
    const RSA_TEST_KEY: &str = r#"{"kty": "RSA", "n": "0dSCcUWPTCQ6txN9yX6wq8hu7XqJ4Zucmdv8ks2sTGlh6mJQzUHvtoZ3i4ZuaXUUm9V2r-gRCWwmxCA2rVInKJTanlhwhTuCTCrWMfeaYLukjnbSuhMM0JLKhiE40JdRoW1-cj7e8AqsLEhBSPfg8QGIncn6wl1W3WD2q2yCjwq_ZvNsuc_f5DpzuVkxdHj5ImWH_s5Kod9W8dAQVGJRA5kaAX4S2JgZeIrEfDpidjhXetlgN1jiULFTyNAoufaA8vnGCBKzRTSHAhIQOtbD7hsSsOdBvOWzj3hNZwEOM0yUXBkU7xepxtMkK3HA5xHvRFlv2jOlXF8qcp-8bNoQzQ", "e": "AQAB", "d": "BdloSSXmLKTzkbrEc6YUC4yIPRdV-c5M81liJSnVxFaJYSTcTvB9hnIhVH11nVEjIdn1l58-6as_DxISfB_mvAye5dxIx19ajpWAyD6i_3so8e4Rie2HMAGbjYQmZuLaUXHxh61Ffohe9tK30S5_HIYiq7q07Q9Ni9kiCd156-iqQK8d2AWdUwaBUQz8-RL27DM1w4qGOWHtDyU5KJ_5wrK5BM6Je5jjudKcz9j1pXNZOgtimtdKb6HddH7HBgP2fOpwrTb5Q7PDas_SD5ExqoBRgfsovQ0Vk1yPJ5Mys5nhnS9kAOXzpbUmsQteN7DqJ-pIw_XfJcGZ5J0NHqOhMQ", "p": "-OmVgNNgM7BWK04ro21cdbomHUz_8ihXLxLIM02Y5Rk63Tsd01ohqnPmimc7EhlLycnDZ30dR-HQPFw5BuV7m6xnYcuaK58VWG7uC5BR7b0R0iXNhpmS0DTPX5Kvn6OP1UIXv-Bw1GLqXPhv5fHY3jo6mckoKOZh0fPGClu1bdE", "q": "184KNBe-Sy4oo-PpsfAvoSBGJd5oYLte05YsAi5vf-HwgtWMbdtuaa_aNxkmwq8b8C5L-zHYfqnsguLQKUAuXM8lrNvMG1RglMBwOuM2EH3x0I0_xJ0hZ9QJmkKMaO0YypUqEjAc_TXt4i5o5L8vfUO-izRfZTSM9Go2fDhMBj0"}"#;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn claims() -> Claims<Value> {
        let mut claims = Claims::new(json!({
            "sub": "user-1",
            "tenant_id": "550e8400-e29b-41d4-a716-446655440001",
        }));
        claims.expiration = chrono::DateTime::from_timestamp(2_000_000_000, 0);
        claims
    }

    fn rsa_private() -> RsaPrivateKey {
        let jwk: JsonWebKey<'_> = serde_json::from_str(RSA_TEST_KEY).expect("jwk");
        RsaPrivateKey::try_from(&jwk).expect("rsa key")
    }

    /// One token and its verifying key per algorithm.
    fn signed() -> Vec<(String, VerifyingKey)> {
        let header = Header::empty().with_key_id("k1");
        let claims = claims();
        let hs_key = Hs256Key::new(b"test-secret-test-secret-test-secret!");
        let rsa = rsa_private();
        let es = <Es256 as Algorithm>::SigningKey::from_slice(&[7; 32]).expect("p256 key");
        let (ed, ed_public) = Ed25519::generate(&mut rand_core::OsRng);
        vec![
            (
                Hs256.token(&header, &claims, &hs_key).expect("sign"),
                VerifyingKey::Hs256(hs_key),
            ),
            (
                StrongAlg(Rsa::rs256())
                    .token(&header, &claims, &rsa.clone().try_into().expect("strong"))
                    .expect("sign"),
                VerifyingKey::Rs256(rsa.to_public_key().try_into().expect("strong")),
            ),
            (
                Es256.token(&header, &claims, &es).expect("sign"),
                VerifyingKey::Es256(*es.verifying_key()),
            ),
            (
                Ed25519.token(&header, &claims, &ed).expect("sign"),
                VerifyingKey::EdDsa(ed_public),
            ),
        ]
    }

    #[test]
    fn token_shapes() {
        let header = b64(r#"{"alg":"HS256"}"#);
        let body = b64(r#"{"sub":"x"}"#);
        let cases: Vec<(String, Result<(), ParseFailure>)> = vec![
            (format!("{header}.{body}.c2ln"), Ok(())),
            ("not-a-jwt".into(), Err(ParseFailure::NotAJwt)),
            (format!("{header}.{body}"), Err(ParseFailure::NotAJwt)),
            (format!("{header}.{body}."), Err(ParseFailure::NotAJwt)),
            (format!("{header}..c2ln"), Err(ParseFailure::NotAJwt)),
            (format!(".{body}.c2ln"), Err(ParseFailure::NotAJwt)),
            (
                format!("{header}.{body}.c2ln.c2ln"),
                Err(ParseFailure::NotAJwt),
            ),
            (format!("{header}.{body}.c2l+"), Err(ParseFailure::NotAJwt)),
            (
                format!("{header}.{body}.c2ln=="),
                Err(ParseFailure::NotAJwt),
            ),
            (
                format!("{}.{body}.c2ln", b64("[1,2]")),
                Err(ParseFailure::NotAJwt),
            ),
            (
                format!("{}.{body}.c2ln", b64("\"HS256\"")),
                Err(ParseFailure::NotAJwt),
            ),
            (
                format!("{}.{body}.c2ln", b64("{not json")),
                Err(ParseFailure::NotAJwt),
            ),
            (
                format!("{}.{body}.c2ln", b64(r#"{"typ":"JWT"}"#)),
                Err(ParseFailure::Invalid("unsupported token header")),
            ),
            (
                format!("{}.{body}.c2ln", b64(r#"{"alg":"HS256","cty":"xml"}"#)),
                Err(ParseFailure::Invalid("unsupported token header")),
            ),
            (
                format!("{header}.{}.c2ln", "A".repeat(super::MAX_TOKEN_LEN)),
                Err(ParseFailure::Invalid("token too long")),
            ),
        ];
        for (token, expected) in cases {
            assert_eq!(parse(&token).map(|_| ()), expected, "{token:.60}");
        }
    }

    #[test]
    fn each_algorithm_verifies_with_its_key() {
        for (token, key) in signed() {
            let parsed = parse(&token).expect("parse");
            let claims =
                verify(&parsed, &key).unwrap_or_else(|e| panic!("{}: {e:?}", key.algorithm()));
            assert_eq!(claims.exp, Some(2_000_000_000), "{}", key.algorithm());
        }
    }

    #[test]
    fn a_token_never_verifies_with_another_algorithms_key() {
        let tokens = signed();
        for (i, (token, _)) in tokens.iter().enumerate() {
            for (j, (_, key)) in tokens.iter().enumerate() {
                if i != j {
                    let parsed = parse(token).expect("parse");
                    assert_eq!(
                        verify(&parsed, key).map(|_| ()),
                        Err(VerifyError::AlgorithmMismatch),
                        "{} token, {} key",
                        parsed.algorithm(),
                        key.algorithm()
                    );
                }
            }
        }
    }

    /// The attack of "Critical vulnerabilities in JSON Web Token libraries"
    /// (McLean, 2015): an HS256 token whose HMAC key is the RSA public key.
    #[test]
    fn hs_rs_confusion_and_alg_none_are_refused() {
        let rsa_public = rsa_private().to_public_key();
        let public_jwk = serde_json::to_string(&JsonWebKey::from(&rsa_public)).expect("jwk");
        let key = VerifyingKey::Rs256(rsa_public.try_into().expect("strong"));
        let confused = Hs256
            .token(
                &Header::empty(),
                &claims(),
                &Hs256Key::new(public_jwk.as_bytes()),
            )
            .expect("sign");
        let parsed = parse(&confused).expect("parse");
        assert_eq!(
            verify(&parsed, &key).map(|_| ()),
            Err(VerifyError::AlgorithmMismatch)
        );

        let payload = b64(&serde_json::to_string(&claims()).expect("claims"));
        let none = format!("{}.{payload}.", b64(r#"{"alg":"none"}"#));
        assert_eq!(parse(&none).map(|_| ()), Err(ParseFailure::NotAJwt));
        let none_signed = format!("{}.{payload}.AAAA", b64(r#"{"alg":"none"}"#));
        let parsed = parse(&none_signed).expect("parse");
        assert_eq!(
            verify(&parsed, &key).map(|_| ()),
            Err(VerifyError::AlgorithmMismatch)
        );
    }

    #[test]
    fn altered_payloads_and_foreign_keys_are_refused() {
        let tokens = signed();
        let others = signed();
        for ((token, key), (_, other_key)) in tokens.iter().zip(&others) {
            let mut parts: Vec<&str> = token.split('.').collect();
            let forged = b64(
                r#"{"sub":"admin","tenant_id":"550e8400-e29b-41d4-a716-446655440002","exp":2000000000}"#,
            );
            parts[1] = &forged;
            let altered = parts.join(".");
            let parsed = parse(&altered).expect("parse");
            assert_eq!(
                verify(&parsed, key).map(|_| ()),
                Err(VerifyError::BadSignature),
                "{}",
                key.algorithm()
            );
            // A key of the same algorithm but another party (the fixed
            // RSA and P-256 test keys are the same in both sets).
            if matches!(key, VerifyingKey::EdDsa(_)) {
                let parsed = parse(token).expect("parse");
                assert_eq!(
                    verify(&parsed, other_key).map(|_| ()),
                    Err(VerifyError::BadSignature)
                );
            }
        }
        let hs = &tokens[0].0;
        let wrong = VerifyingKey::Hs256(Hs256Key::new(b"another-secret-another-secret-12"));
        assert_eq!(
            verify(&parse(hs).expect("parse"), &wrong).map(|_| ()),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn jwks_keeps_usable_signing_keys_only() {
        let rsa_public = rsa_private().to_public_key();
        let rsa = serde_json::to_value(JsonWebKey::from(&rsa_public)).expect("jwk");
        let with = |mut jwk: Value, extra: Value| {
            for (name, value) in extra.as_object().expect("object") {
                jwk[name] = value.clone();
            }
            jwk
        };
        let weak = json!({"kty": "RSA", "kid": "weak", "e": "AQAB", "n": URL_SAFE_NO_PAD.encode([0xff_u8; 128])});
        let jwks = json!({"keys": [
            with(rsa.clone(), json!({"kid": "rsa", "use": "sig", "alg": "RS256"})),
            with(rsa.clone(), json!({"kid": "enc", "use": "enc"})),
            with(rsa.clone(), json!({"kid": "ps", "alg": "PS256"})),
            rsa.clone(),
            weak,
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "kid": "x", "crv": "X25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            "junk",
        ]});
        let keys = KeySet::from_jwks(&jwks.to_string()).expect("jwks");
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.get("rsa").map(VerifyingKey::algorithm), Some("RS256"));
        assert_eq!(keys.get("ed").map(VerifyingKey::algorithm), Some("EdDSA"));
        for broken in ["", "[]", "{}", r#"{"keys": {}}"#, "not json"] {
            assert_eq!(
                KeySet::from_jwks(broken).map(|_| ()),
                Err(MalformedJwks),
                "{broken}"
            );
        }
    }
}
