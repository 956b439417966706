//! Token shape, key sets and the pure half of signature verification: no
//! runtime API, so it compiles natively for unit tests and for the
//! benchmark in `benches/verify.rs` (which includes this file by path, so it
//! names no `crate::` item).
//!
//! The algorithm is fixed by the key, never by the token: a key from a JWKS
//! gets its algorithm from its type (RSA → RS256, EC P-256 → ES256, OKP
//! Ed25519 → EdDSA) and the HS256 key is the configured secret. The token's
//! `alg` must then equal the key's before the signature is looked at.
//!
//! Every signature, HS256's and the realms' (RS256, ES256, EdDSA), is
//! checked by the runtime's WebCrypto (`webcrypto.rs`), which keeps HMAC,
//! SHA-256, RSA and elliptic-curve arithmetic out of the `.wasm`: this
//! module says which key and algorithm parameters to import, which bytes
//! were signed ([`ParsedToken::signing_input`]) and which signature to
//! check, and reads the claims once WebCrypto has said yes.
use base64ct::{Base64UrlUnpadded, Encoding as _};
use coffer_core::{IdentityClaims, TokenClaims};
use jwt_compact::{Claims, UntrustedToken};
use serde_json::Value;

/// Longest bearer token accepted; real IdP tokens are a few KiB.
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Longest JWKS document accepted.
pub(crate) const MAX_JWKS_LEN: usize = 128 * 1024;

/// RSA moduli accepted for RS256, in bytes: 2048, 3072 or 4096 bits only
/// (RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used"; the
/// same sizes jwt-compact's `StrongKey` allowed).
const RSA_MODULUS_BYTES: [usize; 3] = [256, 384, 512];

/// Largest RSA public exponent accepted, 2^33 − 1 (as the `rsa` crate).
const MAX_RSA_EXPONENT: u64 = (1 << 33) - 1;

/// Bytes of a P-256 coordinate and of an Ed25519 public key (RFC 7518
/// §6.2.1.2, RFC 8037 §2).
const COORDINATE_BYTES: usize = 32;

/// Bytes of an ES256 signature, `r || s` (RFC 7518 §3.4), and of an Ed25519
/// signature (RFC 8032 §5.1.6): what WebCrypto's `verify` expects too.
const ES256_SIGNATURE_BYTES: usize = 64;
const ED25519_SIGNATURE_BYTES: usize = 64;

/// Bytes of an HS256 signature, an HMAC-SHA-256 tag (RFC 7518 §3.2).
const HS256_SIGNATURE_BYTES: usize = 32;

/// WebCrypto's parameters for the deployment's HS256 key: imported as raw
/// bytes (the secret's UTF-8, as most JWT libraries take it) with
/// [`HS256_IMPORT`], and checking signatures with [`HS256_VERIFY`].
pub(crate) const HS256_IMPORT: &[(&str, &str)] = &[("name", "HMAC"), ("hash", "SHA-256")];
pub(crate) const HS256_VERIFY: &[(&str, &str)] = &[("name", "HMAC")];

/// Why a bearer value could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParseFailure {
    /// Not three non-empty base64url segments, or a header that is not a
    /// JSON object.
    NotAJwt,
    /// Shaped like a JWT but refused before any key is tried.
    Invalid(&'static str),
}

/// A bearer token whose shape was checked; nothing in it is trusted yet.
#[derive(Debug)]
pub(crate) struct ParsedToken<'a> {
    text: &'a str,
    untrusted: UntrustedToken<'a>,
}

impl ParsedToken<'_> {
    /// The header's `alg`, as the token claims it.
    pub(crate) fn algorithm(&self) -> &str {
        self.untrusted.algorithm()
    }

    /// The header's `kid`.
    pub(crate) fn key_id(&self) -> Option<&str> {
        self.untrusted.header().key_id.as_deref()
    }

    /// The bytes the signature covers: the token text up to its last `.`,
    /// `base64url(header) || '.' || base64url(payload)` (RFC 7515 §5.2).
    pub(crate) fn signing_input(&self) -> &[u8] {
        let end = self.text.rfind('.').unwrap_or(0);
        self.text.as_bytes().get(..end).unwrap_or_default()
    }

    /// The decoded signature.
    pub(crate) fn signature(&self) -> &[u8] {
        self.untrusted.signature_bytes()
    }
}

/// Parses a bearer token. Only the shape is judged here; nothing in the
/// result is trusted.
pub(crate) fn parse(token: &str) -> Result<ParsedToken<'_>, ParseFailure> {
    let mut segments = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(ParseFailure::NotAJwt);
    };
    // Each segment non-empty, URL-safe base64 without padding (RFC 7515
    // §2). The header is decoded here for the check below; the payload and
    // the signature are decoded once, by jwt-compact's parse, whose base64
    // error is "not a JWT" too. Only a token too long for that parse has
    // them decoded here, so that it is still judged by its shape first.
    let decoded = |segment: &str| {
        (!segment.is_empty())
            .then(|| Base64UrlUnpadded::decode_vec(segment).ok())
            .flatten()
    };
    let Some(header_bytes) = decoded(header) else {
        return Err(ParseFailure::NotAJwt);
    };
    if payload.is_empty() || signature.is_empty() {
        return Err(ParseFailure::NotAJwt);
    }
    // Valid JSON whose first token is `{`: an object. Checked without
    // building it (`IgnoredAny` keeps nothing).
    let header_is_object = header_bytes.trim_ascii_start().first() == Some(&b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(&header_bytes).is_ok();
    if !header_is_object {
        return Err(ParseFailure::NotAJwt);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(match (decoded(payload), decoded(signature)) {
            (Some(_), Some(_)) => ParseFailure::Invalid("token too long"),
            _ => ParseFailure::NotAJwt,
        });
    }
    let untrusted = UntrustedToken::new(token).map_err(|error| match error {
        jwt_compact::ParseError::InvalidTokenStructure
        | jwt_compact::ParseError::InvalidBase64Encoding => ParseFailure::NotAJwt,
        // A JSON object without `alg`, or with a `cty` we do not read.
        _ => ParseFailure::Invalid("unsupported token header"),
    })?;
    Ok(ParsedToken {
        text: token,
        untrusted,
    })
}

/// The algorithm a realm key verifies, fixed by the key's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RealmAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl RealmAlgorithm {
    /// The JWS `alg` (RFC 7518 §3.1, RFC 8037 §3.1).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// The WebCrypto algorithm to import the key with (`importKey`'s
    /// `algorithm`), as the members of its dictionary.
    pub(crate) fn import_parameters(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Rs256 => &[("name", "RSASSA-PKCS1-v1_5"), ("hash", "SHA-256")],
            Self::Es256 => &[("name", "ECDSA"), ("namedCurve", "P-256")],
            Self::EdDsa => &[("name", "Ed25519")],
        }
    }

    /// The WebCrypto algorithm to verify with (`verify`'s `algorithm`).
    pub(crate) fn verify_parameters(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Rs256 => &[("name", "RSASSA-PKCS1-v1_5")],
            Self::Es256 => &[("name", "ECDSA"), ("hash", "SHA-256")],
            Self::EdDsa => &[("name", "Ed25519")],
        }
    }
}

/// A realm's public key with the one algorithm it may be used with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RealmKey {
    algorithm: RealmAlgorithm,
    /// The public JWK members to import, base64url as published: only the
    /// public ones, so a JWKS entry that also carries private parts still
    /// imports as a public key.
    jwk: Vec<(&'static str, String)>,
    /// Bytes of a valid signature: the modulus length for RSA (RFC 8017
    /// §8.2.2 step 1), 64 for ES256 and Ed25519.
    signature_len: usize,
}

impl RealmKey {
    /// The algorithm this key verifies.
    pub(crate) fn algorithm(&self) -> RealmAlgorithm {
        self.algorithm
    }

    /// The JWK to hand to `importKey("jwk", ...)`, as members.
    pub(crate) fn import_jwk(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        self.jwk.iter().map(|(name, value)| (*name, value.as_str()))
    }

    /// Reads a public key from one JWKS entry. `None` for keys Coffer does
    /// not use: encryption keys, other types or curves, RSA moduli that are
    /// not 2048, 3072 or 4096 bits, malformed exponents or coordinates, and
    /// keys whose declared `alg` is not the one their type implies. Whether
    /// an EC point lies on the curve is left to WebCrypto's import, which
    /// parses the JWK this returns; only the public members this function
    /// names are read (and decoded, strictly: base64url without padding, RFC
    /// 7515 §2), so private parts are never looked at.
    pub(crate) fn from_jwk(entry: &Value) -> Option<Self> {
        if entry.get("use").is_some_and(|usage| usage != "sig") {
            return None;
        }
        let text = |member: &str| entry.get(member)?.as_str();
        let bytes = |member: &str| Base64UrlUnpadded::decode_vec(text(member)?).ok();
        let encode = |bytes: &[u8]| Base64UrlUnpadded::encode_string(bytes);
        let key = match (text("kty")?, text("crv")) {
            ("RSA", _) => {
                let (modulus, exponent) = (bytes("n")?, bytes("e")?);
                let modulus = strip_leading_zeros(&modulus);
                let exponent = strip_leading_zeros(&exponent);
                if !RSA_MODULUS_BYTES.contains(&modulus.len()) || !rsa_exponent_ok(exponent) {
                    return None;
                }
                Self {
                    algorithm: RealmAlgorithm::Rs256,
                    jwk: vec![
                        ("kty", "RSA".to_owned()),
                        ("n", encode(modulus)),
                        ("e", encode(exponent)),
                    ],
                    signature_len: modulus.len(),
                }
            }
            ("EC", Some("P-256")) => {
                let (x, y) = (bytes("x")?, bytes("y")?);
                if x.len() != COORDINATE_BYTES || y.len() != COORDINATE_BYTES {
                    return None;
                }
                Self {
                    algorithm: RealmAlgorithm::Es256,
                    jwk: vec![
                        ("kty", "EC".to_owned()),
                        ("crv", "P-256".to_owned()),
                        ("x", encode(&x)),
                        ("y", encode(&y)),
                    ],
                    signature_len: ES256_SIGNATURE_BYTES,
                }
            }
            ("OKP", Some("Ed25519")) => {
                let x = bytes("x")?;
                if x.len() != COORDINATE_BYTES {
                    return None;
                }
                Self {
                    algorithm: RealmAlgorithm::EdDsa,
                    jwk: vec![
                        ("kty", "OKP".to_owned()),
                        ("crv", "Ed25519".to_owned()),
                        ("x", encode(&x)),
                    ],
                    signature_len: ED25519_SIGNATURE_BYTES,
                }
            }
            _ => return None,
        };
        match entry.get("alg") {
            Some(alg) if alg != key.algorithm.name() => None,
            _ => Some(key),
        }
    }

    /// What may be checked before WebCrypto is asked: the token's `alg` is
    /// this key's and its signature has this key's length.
    ///
    /// # Errors
    ///
    /// [`VerifyError::AlgorithmMismatch`] or [`VerifyError::BadSignature`].
    pub(crate) fn precheck(&self, token: &ParsedToken<'_>) -> Result<(), VerifyError> {
        if token.algorithm() != self.algorithm.name() {
            return Err(VerifyError::AlgorithmMismatch);
        }
        if token.signature().len() != self.signature_len {
            return Err(VerifyError::BadSignature);
        }
        Ok(())
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes
        .iter()
        .position(|byte| *byte != 0)
        .unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

/// An odd public exponent from 3 to 2^33 − 1, big-endian without leading zeros.
fn rsa_exponent_ok(exponent: &[u8]) -> bool {
    if exponent.len() > 8 {
        return false;
    }
    let value = exponent
        .iter()
        .fold(0_u64, |value, byte| (value << 8) | u64::from(*byte));
    (3..=MAX_RSA_EXPONENT).contains(&value) && value % 2 == 1
}

/// The signing keys of one realm, by `kid`: a list searched in order, as
/// a JWKS holds a few keys (and a hash table's code per value type would
/// cost the `.wasm` more than the search costs a request).
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: Vec<(String, RealmKey)>,
}

/// A JWKS document that could not be read at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MalformedJwks;

impl KeySet {
    /// Reads a JWKS (RFC 7517 §5). Entries without a `kid` or that
    /// [`RealmKey::from_jwk`] refuses are skipped; the first of two entries
    /// with one `kid` wins.
    pub(crate) fn from_jwks(json: &str) -> Result<Self, MalformedJwks> {
        if json.len() > MAX_JWKS_LEN {
            return Err(MalformedJwks);
        }
        let document: Value = serde_json::from_str(json).map_err(|_| MalformedJwks)?;
        let entries = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(MalformedJwks)?;
        let mut set = Self::default();
        for entry in entries {
            let Some(kid) = entry.get("kid").and_then(Value::as_str) else {
                continue;
            };
            if set.get(kid).is_some() {
                continue;
            }
            if let Some(key) = RealmKey::from_jwk(entry) {
                set.keys.push((kid.to_owned(), key));
            }
        }
        Ok(set)
    }

    /// The key with this `kid`.
    pub(crate) fn get(&self, kid: &str) -> Option<&RealmKey> {
        self.keys
            .iter()
            .find_map(|(key_id, key)| (key_id == kid).then_some(key))
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
    /// The realm's key for this `kid` could not be imported into WebCrypto
    /// (a point off the curve, say).
    UnusableKey,
    /// WebCrypto could not import the deployment's HS256 secret (it is
    /// missing from the runtime, or refused the key).
    UnusableHs256Key,
    /// The claims are not a JSON object of the expected types.
    MalformedClaims,
}

impl VerifyError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::AlgorithmMismatch => "token alg does not match the key's algorithm",
            Self::BadSignature => "bad signature",
            Self::UnusableKey => "realm key cannot be used",
            Self::UnusableHs256Key => "HS256 key cannot be used",
            Self::MalformedClaims => "malformed claims",
        }
    }
}

/// What is checked before WebCrypto checks an HS256 token's signature with
/// the deployment's secret (`webcrypto::verify_hs256`): its `alg` is HS256
/// and its signature is the 32 bytes of an HMAC-SHA-256 tag.
pub(crate) fn precheck_hs256(token: &ParsedToken<'_>) -> Result<(), VerifyError> {
    if token.algorithm() != "HS256" {
        return Err(VerifyError::AlgorithmMismatch);
    }
    if token.signature().len() != HS256_SIGNATURE_BYTES {
        return Err(VerifyError::BadSignature);
    }
    Ok(())
}

/// The claims of a token whose signature WebCrypto has verified, with a
/// realm key (after [`RealmKey::precheck`]) or the HS256 secret (after
/// [`precheck_hs256`]); only `webcrypto.rs` calls it.
pub(crate) fn claims_of_verified(token: &ParsedToken<'_>) -> Result<TokenClaims, VerifyError> {
    token
        .untrusted
        .deserialize_claims_unchecked::<IdentityClaims>()
        .map(token_claims)
        .map_err(|_| VerifyError::MalformedClaims)
}

fn token_claims(claims: Claims<IdentityClaims>) -> TokenClaims {
    TokenClaims {
        exp: claims.expiration.map(|at| at.timestamp()),
        nbf: claims.not_before.map(|at| at.timestamp()),
        iat: claims.issued_at.map(|at| at.timestamp()),
        identity: claims.custom,
    }
}

#[cfg(test)]
mod tests {
    //! jwt-compact's RSA, P-256 and Ed25519 code is a dev-dependency only:
    //! it signs the tokens here and stands in for WebCrypto, checking that
    //! the key, signing input and signature this module hands over verify.
    //! The WebCrypto call itself runs in the black-box tests (`tests/tests/auth.rs`).
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
    use jwt_compact::{
        alg::{Ed25519, Es256, Hs256, Hs256Key, Rsa, RsaPrivateKey, RsaPublicKey, StrongAlg},
        jwk::JsonWebKey,
        Algorithm, AlgorithmExt as _, AlgorithmSignature as _, Claims, Header,
    };
    use serde_json::{json, Value};

    use super::{
        claims_of_verified, parse, precheck_hs256, KeySet, MalformedJwks, ParseFailure,
        RealmAlgorithm, RealmKey, VerifyError,
    };
    use coffer_core::TokenClaims;

    /// A 2048-bit RSA key made for these tests only (never use it elsewhere).
    const RSA_TEST_KEY: &str = r#"{"kty": "RSA", "n": "0dSCcUWPTCQ6txN9yX6wq8hu7XqJ4Zucmdv8ks2sTGlh6mJQzUHvtoZ3i4ZuaXUUm9V2r-gRCWwmxCA2rVInKJTanlhwhTuCTCrWMfeaYLukjnbSuhMM0JLKhiE40JdRoW1-cj7e8AqsLEhBSPfg8QGIncn6wl1W3WD2q2yCjwq_ZvNsuc_f5DpzuVkxdHj5ImWH_s5Kod9W8dAQVGJRA5kaAX4S2JgZeIrEfDpidjhXetlgN1jiULFTyNAoufaA8vnGCBKzRTSHAhIQOtbD7hsSsOdBvOWzj3hNZwEOM0yUXBkU7xepxtMkK3HA5xHvRFlv2jOlXF8qcp-8bNoQzQ", "e": "AQAB", "d": "BdloSSXmLKTzkbrEc6YUC4yIPRdV-c5M81liJSnVxFaJYSTcTvB9hnIhVH11nVEjIdn1l58-6as_DxISfB_mvAye5dxIx19ajpWAyD6i_3so8e4Rie2HMAGbjYQmZuLaUXHxh61Ffohe9tK30S5_HIYiq7q07Q9Ni9kiCd156-iqQK8d2AWdUwaBUQz8-RL27DM1w4qGOWHtDyU5KJ_5wrK5BM6Je5jjudKcz9j1pXNZOgtimtdKb6HddH7HBgP2fOpwrTb5Q7PDas_SD5ExqoBRgfsovQ0Vk1yPJ5Mys5nhnS9kAOXzpbUmsQteN7DqJ-pIw_XfJcGZ5J0NHqOhMQ", "p": "-OmVgNNgM7BWK04ro21cdbomHUz_8ihXLxLIM02Y5Rk63Tsd01ohqnPmimc7EhlLycnDZ30dR-HQPFw5BuV7m6xnYcuaK58VWG7uC5BR7b0R0iXNhpmS0DTPX5Kvn6OP1UIXv-Bw1GLqXPhv5fHY3jo6mckoKOZh0fPGClu1bdE", "q": "184KNBe-Sy4oo-PpsfAvoSBGJd5oYLte05YsAi5vf-HwgtWMbdtuaa_aNxkmwq8b8C5L-zHYfqnsguLQKUAuXM8lrNvMG1RglMBwOuM2EH3x0I0_xJ0hZ9QJmkKMaO0YypUqEjAc_TXt4i5o5L8vfUO-izRfZTSM9Go2fDhMBj0"}"#;

    const HS_SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

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

    fn realm_key(jwk: JsonWebKey<'_>) -> RealmKey {
        RealmKey::from_jwk(&serde_json::to_value(&jwk).expect("jwk")).expect("usable key")
    }

    /// One realm token and its key per realm algorithm, signed by
    /// jwt-compact with a fresh Ed25519 key each call.
    fn signed() -> Vec<(String, RealmKey)> {
        let header = Header::empty().with_key_id("k1");
        let claims = claims();
        let rsa = rsa_private();
        let es = <Es256 as Algorithm>::SigningKey::from_slice(&[7; 32]).expect("p256 key");
        let (ed, ed_public) = Ed25519::generate(&mut rand_core::OsRng);
        vec![
            (
                StrongAlg(Rsa::rs256())
                    .token(&header, &claims, &rsa.clone().try_into().expect("strong"))
                    .expect("sign"),
                realm_key(JsonWebKey::from(&rsa.to_public_key())),
            ),
            (
                Es256.token(&header, &claims, &es).expect("sign"),
                realm_key(JsonWebKey::from(es.verifying_key())),
            ),
            (
                Ed25519.token(&header, &claims, &ed).expect("sign"),
                realm_key(JsonWebKey::from(&ed_public)),
            ),
        ]
    }

    /// Stands in for WebCrypto: imports `key`'s JWK members with
    /// jwt-compact and verifies the token's signature over its signing
    /// input, both as this module hands them over.
    fn reference_verify(token: &str, key: &RealmKey) -> bool {
        let parsed = parse(token).expect("parse");
        key.precheck(&parsed).expect("precheck");
        let jwk: Value = key
            .import_jwk()
            .map(|(name, value)| (name.to_owned(), Value::from(value)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        let jwk: JsonWebKey<'_> = serde_json::from_value(jwk).expect("import jwk");
        let (input, signature) = (parsed.signing_input(), parsed.signature());
        match key.algorithm() {
            RealmAlgorithm::Rs256 => {
                let public = RsaPublicKey::try_from(&jwk).expect("rsa");
                let signature = <Rsa as Algorithm>::Signature::try_from_slice(signature);
                Rsa::rs256().verify_signature(&signature.expect("sig"), &public, input)
            }
            RealmAlgorithm::Es256 => {
                let public = <Es256 as Algorithm>::VerifyingKey::try_from(&jwk).expect("p256");
                let signature = <Es256 as Algorithm>::Signature::try_from_slice(signature);
                Es256.verify_signature(&signature.expect("sig"), &public, input)
            }
            RealmAlgorithm::EdDsa => {
                let public = <Ed25519 as Algorithm>::VerifyingKey::try_from(&jwk).expect("ed");
                let signature = <Ed25519 as Algorithm>::Signature::try_from_slice(signature);
                Ed25519.verify_signature(&signature.expect("sig"), &public, input)
            }
        }
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
                format!("{}.{body}.c2ln", b64(" [{}]")),
                Err(ParseFailure::NotAJwt),
            ),
            (
                format!("{}.{body}.c2ln", b64(r#"{"alg":"HS256"} {}"#)),
                Err(ParseFailure::NotAJwt),
            ),
            (
                format!("{}.{body}.c2ln", b64(" \n{\"typ\":\"JWT\"}")),
                Err(ParseFailure::Invalid("unsupported token header")),
            ),
            // Valid JSON, so a JWT's shape; jwt-compact's header refuses it.
            (
                format!("{}.{body}.c2ln", b64(r#"{"alg":"HS256","x":1e400}"#)),
                Err(ParseFailure::Invalid("unsupported token header")),
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
            // The payload and the signature are decoded by jwt-compact's
            // parse, before it reads the header: bad base64 there is not a
            // JWT, whatever the header holds, and however long the token.
            (format!("{header}.{body}=.c2ln"), Err(ParseFailure::NotAJwt)),
            (format!("{header}.e30+.c2ln"), Err(ParseFailure::NotAJwt)),
            (
                format!("{}.{body}=.c2ln", b64(r#"{"typ":"JWT"}"#)),
                Err(ParseFailure::NotAJwt),
            ),
            (
                format!("{header}.{}.c2l+", "A".repeat(super::MAX_TOKEN_LEN)),
                Err(ParseFailure::NotAJwt),
            ),
            (
                format!("{header}.{}=.c2ln", "A".repeat(super::MAX_TOKEN_LEN)),
                Err(ParseFailure::NotAJwt),
            ),
        ];
        for (token, expected) in cases {
            assert_eq!(parse(&token).map(|_| ()), expected, "{token:.60}");
        }
    }

    /// RFC 7515 §5.2: the signature covers `header.payload` as sent, not a
    /// re-encoding of what was decoded.
    #[test]
    fn the_signing_input_is_the_text_before_the_last_dot() {
        let header = b64(r#"{"alg":"ES256","kid":"k"}"#);
        let body = b64(r#"{"sub":"x"}"#);
        let token = format!("{header}.{body}.c2lnbmF0dXJl");
        let parsed = parse(&token).expect("parse");
        assert_eq!(
            parsed.signing_input(),
            format!("{header}.{body}").as_bytes()
        );
        assert_eq!(parsed.signature(), b"signature");
        assert_eq!(parsed.algorithm(), "ES256");
        assert_eq!(parsed.key_id(), Some("k"));
    }

    /// Stands in for WebCrypto's HMAC: checks an HS256 token as
    /// `webcrypto::verify_hs256` does, with jwt-compact verifying the
    /// signature this module hands over against the secret.
    fn reference_hs256(token: &str, secret: &[u8]) -> Result<TokenClaims, VerifyError> {
        let parsed = parse(token).expect("parse");
        precheck_hs256(&parsed)?;
        let signature = <Hs256 as Algorithm>::Signature::try_from_slice(parsed.signature())
            .expect("32 bytes after the precheck");
        if !Hs256.verify_signature(&signature, &Hs256Key::new(secret), parsed.signing_input()) {
            return Err(VerifyError::BadSignature);
        }
        claims_of_verified(&parsed)
    }

    #[test]
    fn hs256_verifies_with_the_secret_only() {
        let key = Hs256Key::new(HS_SECRET);
        let token = Hs256
            .token(&Header::empty(), &claims(), &key)
            .expect("sign");
        let claims = reference_hs256(&token, HS_SECRET).expect("verify");
        assert_eq!(claims.exp, Some(2_000_000_000));
        assert_eq!(
            reference_hs256(&token, b"another-secret-another-secret-12").map(|_| ()),
            Err(VerifyError::BadSignature)
        );
        for (realm_token, _) in signed() {
            let parsed = parse(&realm_token).expect("parse");
            assert_eq!(
                precheck_hs256(&parsed),
                Err(VerifyError::AlgorithmMismatch),
                "{} token",
                parsed.algorithm()
            );
        }
        // A tag one byte short or long never reaches WebCrypto.
        let signature = parse(&token).expect("parse").signature().to_vec();
        let signed_part = &token[..token.rfind('.').expect("three parts")];
        for wrong in [&signature[1..], &[signature.as_slice(), &[0]].concat()] {
            let resigned = format!("{signed_part}.{}", URL_SAFE_NO_PAD.encode(wrong));
            let parsed = parse(&resigned).expect("parse");
            assert_eq!(precheck_hs256(&parsed), Err(VerifyError::BadSignature));
        }
    }

    #[test]
    fn each_key_fixes_its_algorithm_and_webcrypto_parameters() {
        let cases = [
            (
                RealmAlgorithm::Rs256,
                "RS256",
                vec!["kty", "n", "e"],
                vec![("name", "RSASSA-PKCS1-v1_5"), ("hash", "SHA-256")],
                vec![("name", "RSASSA-PKCS1-v1_5")],
            ),
            (
                RealmAlgorithm::Es256,
                "ES256",
                vec!["kty", "crv", "x", "y"],
                vec![("name", "ECDSA"), ("namedCurve", "P-256")],
                vec![("name", "ECDSA"), ("hash", "SHA-256")],
            ),
            (
                RealmAlgorithm::EdDsa,
                "EdDSA",
                vec!["kty", "crv", "x"],
                vec![("name", "Ed25519")],
                vec![("name", "Ed25519")],
            ),
        ];
        for ((token, key), (algorithm, name, members, import, verify)) in signed().iter().zip(cases)
        {
            assert_eq!(key.algorithm(), algorithm);
            assert_eq!(algorithm.name(), name);
            assert_eq!(parse(token).expect("parse").algorithm(), name);
            let imported: Vec<_> = key.import_jwk().map(|(member, _)| member).collect();
            assert_eq!(imported, members, "{name}: public members only");
            assert_eq!(algorithm.import_parameters(), import.as_slice());
            assert_eq!(algorithm.verify_parameters(), verify.as_slice());
        }
        // The private RSA JWK yields the same public key, without `d`.
        let private: Value = serde_json::from_str(RSA_TEST_KEY).expect("jwk");
        let from_private = RealmKey::from_jwk(&private).expect("usable");
        assert_eq!(
            Some(&from_private),
            signed().first().map(|(_, key)| key),
            "private parts are never imported"
        );
    }

    #[test]
    fn the_imported_key_and_signed_bytes_verify() {
        for (token, key) in signed() {
            assert!(reference_verify(&token, &key), "{:?}", key.algorithm());
            let claims = claims_of_verified(&parse(&token).expect("parse")).expect("claims");
            assert_eq!(claims.exp, Some(2_000_000_000));
        }
    }

    #[test]
    fn a_token_never_passes_another_algorithms_key() {
        let tokens = signed();
        let hs = Hs256
            .token(&Header::empty(), &claims(), &Hs256Key::new(HS_SECRET))
            .expect("sign");
        let payload = b64(&serde_json::to_string(&claims()).expect("claims"));
        let none = format!("{}.{payload}.AAAA", b64(r#"{"alg":"none"}"#));
        for (i, (_, key)) in tokens.iter().enumerate() {
            let others = tokens
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (token, _))| token);
            for token in others.chain([&hs, &none]) {
                let parsed = parse(token).expect("parse");
                assert_eq!(
                    key.precheck(&parsed),
                    Err(VerifyError::AlgorithmMismatch),
                    "{} token, {:?} key",
                    parsed.algorithm(),
                    key.algorithm()
                );
            }
        }
    }

    /// The attack of "Critical vulnerabilities in JSON Web Token libraries"
    /// (McLean, 2015): an HS256 token whose HMAC key is the RSA public key.
    #[test]
    fn hs_rs_confusion_and_alg_none_are_refused() {
        let rsa_public = rsa_private().to_public_key();
        let public_jwk = serde_json::to_string(&JsonWebKey::from(&rsa_public)).expect("jwk");
        let key = realm_key(JsonWebKey::from(&rsa_public));
        let confused = Hs256
            .token(
                &Header::empty(),
                &claims(),
                &Hs256Key::new(public_jwk.as_bytes()),
            )
            .expect("sign");
        let parsed = parse(&confused).expect("parse");
        assert_eq!(key.precheck(&parsed), Err(VerifyError::AlgorithmMismatch));

        let payload = b64(&serde_json::to_string(&claims()).expect("claims"));
        let none = format!("{}.{payload}.", b64(r#"{"alg":"none"}"#));
        assert_eq!(parse(&none).map(|_| ()), Err(ParseFailure::NotAJwt));
        let none_signed = format!("{}.{payload}.AAAA", b64(r#"{"alg":"none"}"#));
        let parsed = parse(&none_signed).expect("parse");
        assert_eq!(key.precheck(&parsed), Err(VerifyError::AlgorithmMismatch));
        assert_eq!(precheck_hs256(&parsed), Err(VerifyError::AlgorithmMismatch));
    }

    #[test]
    fn altered_payloads_short_signatures_and_foreign_keys_are_refused() {
        let tokens = signed();
        let others = signed();
        for ((token, key), (other_token, other_key)) in tokens.iter().zip(&others) {
            let mut parts: Vec<&str> = token.split('.').collect();
            let forged = b64(
                r#"{"sub":"admin","tenant_id":"550e8400-e29b-41d4-a716-446655440002","exp":2000000000}"#,
            );
            parts[1] = &forged;
            assert!(
                !reference_verify(&parts.join("."), key),
                "{:?}",
                key.algorithm()
            );

            // A signature one byte short or long never reaches WebCrypto.
            let signature = parse(token).expect("parse").signature().to_vec();
            for wrong in [&signature[1..], &[signature.as_slice(), &[0]].concat()] {
                let resigned =
                    format!("{}.{}", parts[..2].join("."), URL_SAFE_NO_PAD.encode(wrong));
                let parsed = parse(&resigned).expect("parse");
                assert_eq!(key.precheck(&parsed), Err(VerifyError::BadSignature));
            }

            // A key of the same algorithm but another party (the fixed
            // RSA and P-256 test keys are the same in both sets).
            if key.algorithm() == RealmAlgorithm::EdDsa {
                assert_ne!(key, other_key);
                assert!(!reference_verify(other_token, key));
            }
        }
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
        let even_exponent = with(rsa.clone(), json!({"kid": "even-e", "e": "AQAA"}));
        let exponent_one = with(rsa.clone(), json!({"kid": "e-1", "e": "AQ"}));
        let short_ec = json!({"kty": "EC", "kid": "short", "crv": "P-256", "x": "AA", "y": "AA"});
        let jwks = json!({"keys": [
            with(rsa.clone(), json!({"kid": "rsa", "use": "sig", "alg": "RS256"})),
            with(rsa.clone(), json!({"kid": "enc", "use": "enc"})),
            with(rsa.clone(), json!({"kid": "ps", "alg": "PS256"})),
            rsa.clone(),
            weak,
            even_exponent,
            exponent_one,
            short_ec,
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "kid": "ed-short", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHUR"},
            {"kty": "OKP", "kid": "x", "crv": "X25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            // Members are base64url without padding, in canonical form.
            {"kty": "OKP", "kid": "ed-padded", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo="},
            {"kty": "OKP", "kid": "ed-stray-bits", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURp"},
            {"kty": "OKP", "kid": "ed-std-alphabet", "crv": "Ed25519", "x": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            with(rsa.clone(), json!({"kid": "n-number", "n": 65537})),
            {"kty": "OKP", "kid": "ed-no-crv", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kid": "no-kty", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            "junk",
        ]});
        let keys = KeySet::from_jwks(&jwks.to_string()).expect("jwks");
        assert_eq!(keys.len(), 2);
        // Of two usable entries with one `kid`, the first is the key.
        let ed = json!({"kty": "OKP", "kid": "twice", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let twice = json!({"keys": [with(rsa.clone(), json!({"kid": "twice"})), ed]});
        let first = KeySet::from_jwks(&twice.to_string()).expect("jwks");
        assert_eq!(first.len(), 1);
        assert_eq!(
            first.get("twice").map(RealmKey::algorithm),
            Some(RealmAlgorithm::Rs256)
        );
        assert_eq!(
            keys.get("rsa").map(RealmKey::algorithm),
            Some(RealmAlgorithm::Rs256)
        );
        assert_eq!(
            keys.get("ed").map(RealmKey::algorithm),
            Some(RealmAlgorithm::EdDsa)
        );
        for broken in ["", "[]", "{}", r#"{"keys": {}}"#, "not json"] {
            assert_eq!(
                KeySet::from_jwks(broken).map(|_| ()),
                Err(MalformedJwks),
                "{broken}"
            );
        }
    }
}
