//! Prints the envelope golden vectors of `core/tests/vectors/envelope-v1.json`
//! as this build seals them, from made-up keys and a seeded RNG:
//!
//! ```sh
//! cargo run -q -p coffer-core --example golden_vectors > /tmp/vectors.json
//! ```
//!
//! The committed file was written once, by the format-`0x01` code, and is
//! never regenerated: `tests/golden_vectors.rs` checks that every later
//! build still opens it. A new format gets a new format byte and a new
//! vector file beside the old one.
use base64::{engine::general_purpose::STANDARD, Engine as _};
use coffer_core::{rewrap, seal, Binding, CredentialId, Keyring, Rewrapped, Sealed, TenantId};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
use serde_json::{json, Value};

/// `kid:base64` of 32 made-up key bytes: `first`, `first + 1`, ...
fn entry(kid: &str, first: u8) -> String {
    let key: Vec<u8> = (0..32_u8).map(|i| first.wrapping_add(i)).collect();
    format!("{kid}:{}", STANDARD.encode(key))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Case<'a> {
    name: &'a str,
    coffer_keys: String,
    tenant: &'a str,
    credential: &'a str,
    version: u64,
    plaintext: String,
}

fn binding(case: &Case<'_>) -> Binding {
    Binding {
        tenant: TenantId::parse(case.tenant).expect("tenant uuid"),
        credential: CredentialId::parse(case.credential).expect("credential id"),
        version: case.version,
    }
}

fn vector(case: &Case<'_>, wrapped_dek: &[u8], blob: &[u8], kid: &str) -> Value {
    json!({
        "name": case.name,
        "coffer_keys": case.coffer_keys,
        "tenant": case.tenant,
        "credential": case.credential,
        "version": case.version,
        "plaintext": case.plaintext,
        "kid": kid,
        "wrapped_dek": hex(wrapped_dek),
        "blob": hex(blob),
    })
}

fn sealed(case: &Case<'_>, rng: &mut ChaCha20Rng) -> Sealed {
    let keyring = Keyring::parse(&case.coffer_keys).expect("keyring");
    seal(&keyring, rng, &binding(case), case.plaintext.as_bytes()).expect("seals")
}

fn main() {
    let mut rng = ChaCha20Rng::seed_from_u64(0x60_1d_e4);
    let tenant = "550e8400-e29b-41d4-a716-446655440001";
    let mut vectors = Vec::new();

    let cases = [
        Case {
            name: "oauth2 secret, version 1",
            coffer_keys: entry("k2025a", 0x10),
            tenant,
            credential: "6f1c2a3b-4d5e-4f60-8172-839405a6b7c8",
            version: 1,
            plaintext: r#"{"accessToken":"at-123","refreshToken":"rt-456"}"#.into(),
        },
        Case {
            name: "empty plaintext, version 0",
            coffer_keys: entry("k", 0x20),
            tenant,
            credential: "00000000-0000-4000-8000-000000000002",
            version: 0,
            plaintext: String::new(),
        },
        Case {
            name: "cred- id, largest version, 64-character key id, non-ASCII secret",
            coffer_keys: entry(&"K.k_-9".repeat(11)[..64], 0x30),
            tenant: "ffffffff-ffff-4fff-bfff-ffffffffffff",
            credential: "cred-0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9",
            version: u64::MAX,
            plaintext: r#"{"password":"pässwörd-🔑","username":"ada"}"#.into(),
        },
        Case {
            name: "1 KiB secret, first of two keys active",
            coffer_keys: format!("{},{}", entry("main-2026", 0x40), entry("main-2025", 0x50)),
            tenant,
            credential: "11111111-2222-4333-8444-555555555555",
            version: 42,
            plaintext: format!(r#"{{"apiKey":"{}"}}"#, "x".repeat(1024 - 13)),
        },
    ];
    for case in &cases {
        let sealed = sealed(case, &mut rng);
        vectors.push(vector(case, &sealed.wrapped_dek, &sealed.blob, &sealed.kid));
    }

    // Rotation: sealed while the old key was active, then moved to the new
    // one by `rewrap`; both wraps open the same blob under the rotated
    // keyring.
    let rotated_keys = format!("{},{}", entry("k2026", 0x60), entry("k2025", 0x70));
    let old = Case {
        name: "sealed under the old key, keyring rotated",
        coffer_keys: entry("k2025", 0x70),
        tenant,
        credential: "99999999-8888-4777-a666-555555555555",
        version: 7,
        plaintext: r#"{"token":"rotate-me"}"#.into(),
    };
    let before = sealed(&old, &mut rng);
    let old = Case {
        coffer_keys: rotated_keys,
        ..old
    };
    vectors.push(vector(&old, &before.wrapped_dek, &before.blob, &before.kid));
    let rotated = Keyring::parse(&old.coffer_keys).expect("keyring");
    let Rewrapped::Rewrapped { wrapped_dek, kid } =
        rewrap(&rotated, &mut rng, &binding(&old), &before.wrapped_dek).expect("rewraps")
    else {
        panic!("expected a new wrap");
    };
    let after = Case {
        name: "the same, rewrapped under the new key",
        ..old
    };
    vectors.push(vector(&after, &wrapped_dek, &before.blob, &kid));

    let document = json!({
        "description": "Sealed blobs and wrapped DEKs of format 0x01 (see the crate docs), \
            sealed once by coffer-core 0.1.0 with made-up keys (examples/golden_vectors.rs); \
            every later build must open them. Never regenerate this file: a new format \
            gets a new format byte and a file of its own.",
        "blob_format": 1,
        "wrapped_dek_format": 1,
        "vectors": vectors,
    });
    println!("{}", serde_json::to_string_pretty(&document).expect("json"));
}
