//! Cost of verifying one token per algorithm (signature and claim rules),
//! and of the decrypted read's CPU path (verify, policy, keyring, open),
//! natively: `cargo bench -p coffer-worker --bench verify`.
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
        Algorithm, AlgorithmExt as _, Claims, Header, TimeOptions,
    };
    use serde_json::json;

    use super::verify::{self, KeySet, VerifyingKey};

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

        let cases = [
            ("HS256", hs, VerifyingKey::Hs256(hs_key)),
            ("RS256", rs, VerifyingKey::Rs256(rsa_public)),
            (
                "ES256",
                es,
                VerifyingKey::Es256(es_private.verifying_key().to_owned()),
            ),
            ("EdDSA", ed, VerifyingKey::EdDsa(ed_public)),
        ];
        let mut group = c.benchmark_group("verify");
        for (name, token, key) in &cases {
            group.bench_function(*name, |b| {
                b.iter(|| {
                    let parsed = verify::parse(black_box(token)).expect("parse");
                    let claims = verify::verify(&parsed, key).expect("verify");
                    claims.validate(&rules, NOW_MS).expect("claims")
                });
            });
        }
        group.finish();

        // Reading a JWKS: what a cache miss costs besides the fetch.
        let jwks = json!({"keys": [
            with_kid(JsonWebKey::from(rsa_public_of(&cases[1].2)), "rsa"),
            with_kid(JsonWebKey::from(es_private.verifying_key()), "ec"),
            with_kid(JsonWebKey::from(&ed_public), "ed"),
        ]})
        .to_string();
        c.bench_function("jwks/parse-3-keys", |b| {
            b.iter(|| KeySet::from_jwks(black_box(&jwks)).expect("jwks"));
        });

        read_path(c, &cases[0].1, &cases[0].2, &rules);
    }

    /// The CPU side of one decrypted read, as the worker runs it: verify
    /// an HS256 token and its claims, resolve the tenant, ask the policy,
    /// parse `COFFER_KEYS` (the worker does so per request), open a 1 KiB
    /// envelope and parse the secret's JSON.
    fn read_path(c: &mut Criterion, token: &str, key: &VerifyingKey, rules: &ClaimRules<'_>) {
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
                let principal = verify::verify(&parsed, key)
                    .expect("verify")
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
                verify::verify(&parsed, key)
                    .expect("verify")
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

    fn rsa_public_of(key: &VerifyingKey) -> &jwt_compact::alg::RsaPublicKey {
        match key {
            VerifyingKey::Rs256(key) => key.as_ref(),
            _ => unreachable!("the RSA case"),
        }
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
