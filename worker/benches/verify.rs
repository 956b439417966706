//! Cost of verifying one token per algorithm (the Worker's side without the
//! signature, which WebCrypto checks in the runtime, next to jwt-compact's
//! compiled-in check for comparison), and of the decrypted read's CPU path
//! (verify, policy, keyring, open, with the HS256 signature checked by
//! jwt-compact natively), natively: `cargo bench -p coffer-worker --bench
//! verify`.
//!
//! The verification module is included by path because the worker crate
//! keeps it private; it names no `crate::` item for that reason.
//! On wasm32 (where clippy also checks all targets) it is an empty program.

#[cfg(not(target_arch = "wasm32"))]
#[allow(dead_code, unused_imports)]
#[path = "../src/auth/verify.rs"]
mod verify;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use core::hint::black_box;

    use chrono::Duration;
    use coffer_core::{ClaimRules, TenantScope};
    use criterion::{criterion_group, Criterion};
    use jwt_compact::{
        alg::{Ed25519, Es256, Hs256, Hs256Key, ModulusBits, Rsa, StrongAlg},
        jwk::JsonWebKey,
        Algorithm, AlgorithmExt as _, AlgorithmSignature as _, Claims, Header, TimeOptions,
        UntrustedToken,
    };
    use serde_json::json;

    use super::verify::{self, KeySet};

    const NOW_MS: i64 = 1_711_497_600_000;

    fn claims() -> Claims<serde_json::Value> {
        let now = chrono::DateTime::from_timestamp_millis(NOW_MS).expect("time");
        let options = TimeOptions::new(Duration::seconds(60), move || now);
        Claims::new(json!({
            "sub": "bench-user",
            "tenant_id": "550e8400-e29b-41d4-a716-446655440001",
            "roles": ["integration_user"],
            "iss": "https://idp.example.com",
            "aud": ["coffer"],
        }))
        .set_duration_and_issuance(&options, Duration::minutes(10))
    }

    fn bench(c: &mut Criterion) {
        let mut rng = rand_core::OsRng;
        let header = Header::empty().with_key_id("k");
        let claims = claims();
        let rules = ClaimRules {
            issuer: Some("https://idp.example.com"),
            audience: Some("coffer"),
            tenants: &TenantScope::Any,
        };

        let hs_key = Hs256Key::new(b"bench-secret-bench-secret-bench-secret");
        let hs = Hs256.token(&header, &claims, &hs_key).expect("sign");
        let (rsa_private, rsa_public) =
            Rsa::generate(&mut rng, ModulusBits::TwoKibibytes).expect("rsa key");
        let rs = StrongAlg(Rsa::rs256())
            .token(&header, &claims, &rsa_private)
            .expect("sign");
        let es_private = <Es256 as Algorithm>::SigningKey::from_slice(&[7; 32]).expect("p256 key");
        let es = Es256.token(&header, &claims, &es_private).expect("sign");
        let (ed_private, ed_public) = Ed25519::generate(&mut rng);
        let ed = Ed25519.token(&header, &claims, &ed_private).expect("sign");

        let mut group = c.benchmark_group("verify");
        // Every token: the Worker's own CPU work (parse, the key's
        // algorithm and signature length, claims); the signature itself is
        // WebCrypto's, in the runtime, and measured there (`make bench`).
        group.bench_function("HS256/without-signature", |b| {
            b.iter(|| {
                let parsed = verify::parse(black_box(&hs)).expect("parse");
                verify::precheck_hs256(&parsed).expect("precheck");
                let claims = verify::claims_of_verified(&parsed).expect("claims");
                claims.validate(&rules, NOW_MS).expect("claims")
            });
        });
        group.bench_function("HS256/jwt-compact-native", |b| {
            b.iter(|| {
                let parsed = verify::parse(black_box(&hs)).expect("parse");
                hs256_native(&parsed, &hs_key)
                    .validate(&rules, NOW_MS)
                    .expect("claims")
            });
        });
        let jwks = json!({"keys": [
            with_kid(JsonWebKey::from(rsa_public.as_ref()), "rsa"),
            with_kid(JsonWebKey::from(es_private.verifying_key()), "ec"),
            with_kid(JsonWebKey::from(&ed_public), "ed"),
        ]})
        .to_string();
        let keys = KeySet::from_jwks(&jwks).expect("jwks");
        for (name, token, kid) in [
            ("RS256", &rs, "rsa"),
            ("ES256", &es, "ec"),
            ("EdDSA", &ed, "ed"),
        ] {
            let key = keys.get(kid).expect("key");
            group.bench_function(format!("{name}/without-signature"), |b| {
                b.iter(|| {
                    let parsed = verify::parse(black_box(token)).expect("parse");
                    key.precheck(&parsed).expect("precheck");
                    let claims = verify::claims_of_verified(&parsed).expect("claims");
                    claims.validate(&rules, NOW_MS).expect("claims")
                });
            });
        }
        // For comparison, the signature check as compiled-in arithmetic
        // (jwt-compact, natively) did it before WebCrypto took over.
        group.bench_function("RS256/jwt-compact-native", |b| {
            b.iter(|| {
                let parsed = UntrustedToken::new(black_box(&rs)).expect("parse");
                StrongAlg(Rsa::rs256())
                    .validator::<serde_json::Value>(&rsa_public)
                    .validate(&parsed)
                    .expect("verify")
            });
        });
        let es_public = *es_private.verifying_key();
        group.bench_function("ES256/jwt-compact-native", |b| {
            b.iter(|| {
                let parsed = UntrustedToken::new(black_box(&es)).expect("parse");
                Es256
                    .validator::<serde_json::Value>(&es_public)
                    .validate(&parsed)
                    .expect("verify")
            });
        });
        group.bench_function("EdDSA/jwt-compact-native", |b| {
            b.iter(|| {
                let parsed = UntrustedToken::new(black_box(&ed)).expect("parse");
                Ed25519
                    .validator::<serde_json::Value>(&ed_public)
                    .validate(&parsed)
                    .expect("verify")
            });
        });
        group.finish();

        // Reading a JWKS: what a cache miss costs besides the fetch.
        c.bench_function("jwks/parse-3-keys", |b| {
            b.iter(|| KeySet::from_jwks(black_box(&jwks)).expect("jwks"));
        });

        read_path(c, &hs, &hs_key, &rules);
    }

    /// An HS256 token checked as the Worker checks it, with jwt-compact's
    /// HMAC natively where the Worker asks WebCrypto.
    fn hs256_native(parsed: &verify::ParsedToken<'_>, key: &Hs256Key) -> coffer_core::TokenClaims {
        verify::precheck_hs256(parsed).expect("precheck");
        let signature =
            <Hs256 as Algorithm>::Signature::try_from_slice(parsed.signature()).expect("32 bytes");
        assert!(Hs256.verify_signature(&signature, key, parsed.signing_input()));
        verify::claims_of_verified(parsed).expect("claims")
    }

    /// The CPU side of one decrypted read, as the worker runs it: verify
    /// an HS256 token and its claims, resolve the tenant, ask the policy,
    /// parse `COFFER_KEYS` (the worker does so per request), open a 1 KiB
    /// envelope and parse the secret's JSON.
    fn read_path(c: &mut Criterion, token: &str, key: &Hs256Key, rules: &ClaimRules<'_>) {
        use coffer_core::{
            decide, open, seal, Action, Binding, CredentialId, Keyring, Relation, TenantId,
        };

        const KEYS: &str = "k2:ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A=,\
                            k1:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
        let keyring = Keyring::parse(KEYS).expect("keyring");
        let tenant = TenantId::parse("550e8400-e29b-41d4-a716-446655440001").expect("tenant");
        let binding = Binding {
            tenant,
            credential: CredentialId::parse("cred-6f1c2a52-8f0e-4a39-9d55-0b8f0d4b3c21")
                .expect("id"),
            version: 1,
        };
        let secret = json!({"accessToken": "a".repeat(900), "refreshToken": "r".repeat(80)});
        let sealed = seal(
            &keyring,
            &mut rand_core::OsRng,
            &binding,
            secret.to_string().as_bytes(),
        )
        .expect("seal");

        let mut group = c.benchmark_group("read-path");
        group.bench_function("verify+policy+keyring+open-1KiB", |b| {
            b.iter(|| {
                let parsed = verify::parse(black_box(token)).expect("parse");
                let principal = hs256_native(&parsed, key)
                    .validate(rules, NOW_MS)
                    .expect("claims");
                let acting = principal.acting_tenant(Some(tenant)).expect("tenant");
                decide(
                    &principal,
                    acting,
                    Action::ReadSecret,
                    Some(Relation::Owner),
                )
                .expect("allowed");
                let keyring = Keyring::parse(black_box(KEYS)).expect("keyring");
                let plain =
                    open(&keyring, &binding, &sealed.wrapped_dek, &sealed.blob).expect("open");
                serde_json::from_slice::<serde_json::Value>(&plain).expect("json")
            });
        });
        group.bench_function("verify-only", |b| {
            b.iter(|| {
                let parsed = verify::parse(black_box(token)).expect("parse");
                hs256_native(&parsed, key)
                    .validate(rules, NOW_MS)
                    .expect("claims")
            });
        });
        group.bench_function("keyring-parse", |b| {
            b.iter(|| Keyring::parse(black_box(KEYS)).expect("keyring"));
        });
        group.bench_function("open-1KiB+json", |b| {
            b.iter(|| {
                let plain =
                    open(&keyring, &binding, &sealed.wrapped_dek, &sealed.blob).expect("open");
                serde_json::from_slice::<serde_json::Value>(&plain).expect("json")
            });
        });
        group.finish();
    }

    fn with_kid(jwk: JsonWebKey<'_>, kid: &str) -> serde_json::Value {
        let mut value = serde_json::to_value(&jwk).expect("jwk");
        value["kid"] = json!(kid);
        value
    }

    criterion_group!(benches, bench);
}

#[cfg(not(target_arch = "wasm32"))]
criterion::criterion_main!(native::benches);

#[cfg(target_arch = "wasm32")]
fn main() {}
