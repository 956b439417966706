//! Golden vectors: sealed blobs and wrapped DEKs of format `0x01`, sealed
//! once by an earlier build (`vectors/envelope-v1.json`, written by
//! `examples/golden_vectors.rs`) with their made-up keys. Every stored
//! secret was sealed by some earlier build, so every later build must open
//! these, through the public API alone; a change of either byte format that
//! forgets the old reader fails here. Compiled in with `include_str!`, so
//! the same test runs in browsers.
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use coffer_core::{
    open, rewrap, seal, wrapped_kid, Binding, CredentialId, Keyring, OpenError, Rewrapped, TenantId,
};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
use serde_json::Value;

const ENVELOPE_V1: &str = include_str!("vectors/envelope-v1.json");

struct Vector {
    name: String,
    keyring: Keyring,
    coffer_keys: String,
    binding: Binding,
    plaintext: Vec<u8>,
    kid: String,
    wrapped_dek: Vec<u8>,
    blob: Vec<u8>,
}

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "hex of odd length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn text<'a>(vector: &'a Value, field: &str) -> &'a str {
    vector[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is a string"))
}

fn vectors() -> Vec<Vector> {
    let document: Value = serde_json::from_str(ENVELOPE_V1).expect("vector file is JSON");
    assert_eq!(document["blob_format"], 1);
    assert_eq!(document["wrapped_dek_format"], 1);
    let vectors: Vec<Vector> = document["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .map(|vector| Vector {
            name: text(vector, "name").into(),
            keyring: Keyring::parse(text(vector, "coffer_keys")).expect("keyring"),
            coffer_keys: text(vector, "coffer_keys").into(),
            binding: Binding {
                tenant: TenantId::parse(text(vector, "tenant")).expect("tenant"),
                credential: CredentialId::parse(text(vector, "credential")).expect("credential"),
                version: vector["version"].as_u64().expect("version"),
            },
            plaintext: text(vector, "plaintext").as_bytes().to_vec(),
            kid: text(vector, "kid").into(),
            wrapped_dek: hex(text(vector, "wrapped_dek")),
            blob: hex(text(vector, "blob")),
        })
        .collect();
    assert_eq!(vectors.len(), 6, "every vector is read");
    vectors
}

#[test]
fn every_golden_vector_opens_to_its_plaintext() {
    for v in vectors() {
        let opened = open(&v.keyring, &v.binding, &v.wrapped_dek, &v.blob)
            .unwrap_or_else(|_| panic!("{}: does not open", v.name));
        assert_eq!(opened.as_slice(), v.plaintext.as_slice(), "{}", v.name);
        assert_eq!(
            wrapped_kid(&v.wrapped_dek),
            Some(v.kid.as_str()),
            "{}",
            v.name
        );
    }
}

/// The layouts the crate docs give, checked on bytes an earlier build wrote.
#[test]
fn golden_vectors_have_the_documented_layout() {
    for v in vectors() {
        let (n, k) = (v.plaintext.len(), v.kid.len());
        assert_eq!(v.blob[0], 0x01, "{}", v.name);
        assert_eq!(v.blob.len(), 1 + 12 + n + 16, "{}", v.name);
        assert_eq!(v.wrapped_dek[0], 0x01, "{}", v.name);
        assert_eq!(usize::from(v.wrapped_dek[1]), k, "{}", v.name);
        assert_eq!(&v.wrapped_dek[2..2 + k], v.kid.as_bytes(), "{}", v.name);
        assert_eq!(v.wrapped_dek.len(), 2 + k + 12 + 32 + 16, "{}", v.name);
    }
}

/// The bindings still hold: a golden blob moved to another version, or
/// opened without its key, is refused like any other damage.
#[test]
fn golden_vectors_stay_bound_to_their_record_and_key() {
    for v in vectors() {
        let moved = Binding {
            version: v.binding.version.wrapping_add(1),
            ..v.binding
        };
        assert_eq!(
            open(&v.keyring, &moved, &v.wrapped_dek, &v.blob),
            Err(OpenError::Undecryptable),
            "{}",
            v.name
        );
        let stranger =
            Keyring::parse("other:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").expect("keyring");
        assert_eq!(
            open(&stranger, &v.binding, &v.wrapped_dek, &v.blob),
            Err(OpenError::Undecryptable),
            "{}",
            v.name
        );
    }
}

/// Rotation works on rows an earlier build wrote: a golden wrapped DEK
/// moves to a new active key and still opens its golden blob, once the old
/// keys are gone too.
#[test]
fn golden_vectors_rewrap_under_a_new_key() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let new_key = "k-next:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    for v in vectors() {
        let rotated = Keyring::parse(&format!("{new_key},{}", v.coffer_keys)).expect("keyring");
        let Ok(Rewrapped::Rewrapped { wrapped_dek, kid }) =
            rewrap(&rotated, &mut rng, &v.binding, &v.wrapped_dek)
        else {
            panic!("{}: does not rewrap", v.name);
        };
        assert_eq!(kid, "k-next");
        let retired = Keyring::parse(new_key).expect("keyring");
        let opened = open(&retired, &v.binding, &wrapped_dek, &v.blob)
            .unwrap_or_else(|_| panic!("{}: rewrapped key does not open", v.name));
        assert_eq!(opened.as_slice(), v.plaintext.as_slice(), "{}", v.name);
    }
}

/// Today's build writes the format the vectors hold: a fresh seal of a
/// vector's plaintext has the same layout and lengths.
#[test]
fn todays_seals_have_the_golden_layout() {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    for v in vectors() {
        let sealed = seal(&v.keyring, &mut rng, &v.binding, &v.plaintext).expect("seals");
        if sealed.kid == v.kid {
            assert_eq!(sealed.wrapped_dek.len(), v.wrapped_dek.len(), "{}", v.name);
            assert_eq!(
                sealed.wrapped_dek[..2 + v.kid.len()],
                v.wrapped_dek[..2 + v.kid.len()]
            );
        }
        assert_eq!(sealed.blob.len(), v.blob.len(), "{}", v.name);
        assert_eq!(sealed.blob[0], v.blob[0], "{}", v.name);
    }
}

const ENVELOPE_V2: &str = include_str!("vectors/envelope-v2.json");

/// The key hierarchy's golden vectors (`vectors/envelope-v2.json`): a
/// wrapped tenant key (format `0x01`), a data key under it (format `0x02`)
/// and its blob, sealed once by an earlier build.
#[test]
fn every_hierarchy_vector_opens_through_its_tenant_key() {
    use coffer_core::{
        data_key_tenant_version, open_tenant_key, open_with_tenant_key, rewrap_tenant_key,
        tenant_key_header,
    };
    let document: Value = serde_json::from_str(ENVELOPE_V2).expect("vector file is JSON");
    assert_eq!(document["wrapped_tenant_key_format"], 1);
    assert_eq!(document["wrapped_dek_format"], 2);
    assert_eq!(document["kv_half_format"], 1);
    let vectors = document["vectors"].as_array().expect("vectors");
    assert_eq!(vectors.len(), 3, "every vector is read");
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    for v in vectors {
        let name = text(v, "name");
        let keyring = Keyring::parse(text(v, "coffer_keys")).expect("keyring");
        let tenant = TenantId::parse(text(v, "tenant")).expect("tenant");
        let tk_version =
            u32::try_from(v["tenant_key_version"].as_u64().expect("u32")).expect("u32");
        let kid = text(v, "kid");
        let wrapped = hex(text(v, "wrapped_tenant_key"));
        let kv_half = hex(text(v, "kv_half"));
        let binding = Binding {
            tenant,
            credential: CredentialId::parse(text(v, "credential")).expect("credential"),
            version: v["version"].as_u64().expect("version"),
        };
        let wrapped_dek = hex(text(v, "wrapped_dek"));
        let blob = hex(text(v, "blob"));
        let plaintext = text(v, "plaintext").as_bytes();
        // The documented layouts.
        assert_eq!(wrapped[0], 0x01, "{name}");
        assert_eq!(usize::from(wrapped[1]), kid.len(), "{name}");
        assert_eq!(wrapped.len(), 66 + kid.len(), "{name}");
        assert_eq!(
            tenant_key_header(&wrapped),
            Some((kid, tk_version)),
            "{name}"
        );
        assert_eq!(wrapped_dek.len(), 65, "{name}");
        assert_eq!(wrapped_dek[0], 0x02, "{name}");
        assert_eq!(
            data_key_tenant_version(&wrapped_dek),
            Some(tk_version),
            "{name}"
        );
        assert_eq!(blob.len(), 29 + plaintext.len(), "{name}");
        // They open, top down.
        assert_eq!(kv_half.len(), 65, "{name}");
        assert_eq!(kv_half[0], 0x01, "{name}");
        assert_eq!(kv_half[1..5], tk_version.to_be_bytes(), "{name}");
        let key = open_tenant_key(&keyring, tenant, tk_version, &wrapped, &kv_half)
            .unwrap_or_else(|_| panic!("{name}: tenant key does not unwrap"));
        let opened = open_with_tenant_key(&key, &binding, &wrapped_dek, &blob)
            .unwrap_or_else(|_| panic!("{name}: does not open"));
        assert_eq!(opened.as_slice(), plaintext, "{name}");
        // Bound to their tenant, version and record.
        let moved = Binding {
            version: binding.version.wrapping_add(1),
            ..binding
        };
        assert_eq!(
            open_with_tenant_key(&key, &moved, &wrapped_dek, &blob),
            Err(OpenError::Undecryptable),
            "{name}"
        );
        assert!(open_tenant_key(
            &keyring,
            tenant,
            tk_version.wrapping_add(1),
            &wrapped,
            &kv_half
        )
        .is_err());
        // A master rotation moves the tenant key, and the data key opens
        // once the old master key is gone.
        let new_key = "k-next:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
        let rotated =
            Keyring::parse(&format!("{new_key},{}", text(v, "coffer_keys"))).expect("keyring");
        let moved = rewrap_tenant_key(&rotated, &mut rng, tenant, tk_version, &wrapped)
            .expect("rewraps")
            .expect("moved to the new key");
        let retired = Keyring::parse(new_key).expect("keyring");
        let key = open_tenant_key(&retired, tenant, tk_version, &moved.wrapped, &kv_half)
            .expect("unwraps");
        let opened = open_with_tenant_key(&key, &binding, &wrapped_dek, &blob).expect("opens");
        assert_eq!(opened.as_slice(), plaintext, "{name}");
    }
}
