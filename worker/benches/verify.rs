//! Cost of verifying one token per algorithm (signature and claim rules),
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
    use coffer_core::ClaimRules;
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
