//! Prints the key-hierarchy golden vectors of
//! `core/tests/vectors/envelope-v2.json` (wrapped tenant key format `0x01`,
//! KV half format `0x01`, wrapped DEK format `0x02`, blob format `0x01`) as this build seals them,
//! from made-up keys and a seeded RNG:
//!
//! ```sh
//! cargo run -q -p coffer-core --example golden_vectors_v2 > /tmp/vectors.json
//! ```
//!
//! The committed file was written once and is never regenerated:
//! `tests/golden_vectors.rs` checks that every later build opens it.
use base64::{engine::general_purpose::STANDARD, Engine as _};
use coffer_core::{new_tenant_key, seal_with_tenant_key, Binding, CredentialId, Keyring, TenantId};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
use serde_json::json;

fn entry(kid: &str, first: u8) -> String {
    let key: Vec<u8> = (0..32_u8).map(|i| first.wrapping_add(i)).collect();
    format!("{kid}:{}", STANDARD.encode(key))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn main() {
    let mut rng = ChaCha20Rng::seed_from_u64(0x7e_4a_47);
    let cases = [
        (
            "oauth2 secret, tenant key version 1",
            entry("k2026", 0x10),
            "550e8400-e29b-41d4-a716-446655440001",
            1_u32,
            "6f1c2a3b-4d5e-4f60-8172-839405a6b7c8",
            1_u64,
            r#"{"accessToken":"at-123","refreshToken":"rt-456"}"#.to_string(),
        ),
        (
            "empty plaintext, largest versions, 64-character key id",
            entry(&"K.k_-9".repeat(11)[..64], 0x30),
            "ffffffff-ffff-4fff-bfff-ffffffffffff",
            u32::MAX,
            "cred-0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9",
            u64::MAX,
            String::new(),
        ),
        (
            "non-ASCII secret, tenant key version 2, second of two keys",
            format!("{},{}", entry("main-2027", 0x40), entry("main-2026", 0x50)),
            "11111111-2222-4333-8444-555555555555",
            2,
            "99999999-8888-4777-a666-555555555555",
            42,
            r#"{"password":"pässwörd-🔑","username":"ada"}"#.to_string(),
        ),
    ];
    let mut vectors = Vec::new();
    for (name, coffer_keys, tenant, tk_version, credential, version, plaintext) in cases {
        let keyring = Keyring::parse(&coffer_keys).expect("keyring");
        let tenant_id = TenantId::parse(tenant).expect("tenant");
        let (key, wrapped) =
            new_tenant_key(&keyring, &mut rng, tenant_id, tk_version).expect("wraps");
        let binding = Binding {
            tenant: tenant_id,
            credential: CredentialId::parse(credential).expect("credential"),
            version,
        };
        let sealed =
            seal_with_tenant_key(&key, &mut rng, &binding, plaintext.as_bytes()).expect("seals");
        vectors.push(json!({
            "name": name,
            "coffer_keys": coffer_keys,
            "tenant": tenant,
            "tenant_key_version": tk_version,
            "kid": wrapped.kid,
            "wrapped_tenant_key": hex(&wrapped.wrapped),
            "kv_half": hex(&wrapped.kv_half),
            "credential": credential,
            "version": version,
            "plaintext": plaintext,
            "wrapped_dek": hex(&sealed.wrapped_dek),
            "blob": hex(&sealed.blob),
        }));
    }
    let document = json!({
        "description": "The key hierarchy's formats (see the crate docs): wrapped tenant keys of format 0x01, KV halves of format 0x01, data keys wrapped under them (format 0x02) and their blobs (format 0x01), sealed once by coffer-core with made-up keys (examples/golden_vectors_v2.rs); every later build must open them. Never regenerate this file.",
        "wrapped_tenant_key_format": 1,
        "kv_half_format": 1,
        "wrapped_dek_format": 2,
        "blob_format": 1,
        "vectors": vectors,
    });
    println!("{}", serde_json::to_string_pretty(&document).expect("json"));
}
