//! The wrapped-tenant-key format and the format-`0x02` data key on
//! arbitrary bytes: `open_tenant_key`, `rewrap_tenant_key`,
//! `tenant_key_header` and `open_with_tenant_key` never panic and fail with
//! the one opaque error.
//!
//! Input: one length byte, the wrapped tenant key; one length byte, the KV
//! half; then a wrapped DEK of 65 bytes (format `0x02`) and the blob. The keys are fuzz-only, so only
//! the reference tenant keys sealed into the corpus can unwrap, and only
//! the reference secret can open; anything else doing so is a forgery.
#![no_main]

use std::sync::LazyLock;

use coffer_core::{
    data_key_tenant_version, open_tenant_key, open_with_tenant_key, rewrap_tenant_key,
    tenant_key_header, Keyring, OpenError, Sealed, WrappedTenantKey,
};
use coffer_fuzz::{
    fixed_binding, fixed_tenant, keyring, reference_tenant_key, rng, split_open_input, ACTIVE_KID,
    REFERENCE_PLAINTEXT, REFERENCE_TENANT_KEY_VERSION, RETIRED_KID,
};
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<Keyring> = LazyLock::new(keyring);
static KNOWN: LazyLock<[(WrappedTenantKey, Sealed); 2]> =
    LazyLock::new(|| [reference_tenant_key(false), reference_tenant_key(true)]);

fuzz_target!(|data: &[u8]| {
    let (wrapped, rest) = split_open_input(data);
    let (kv_half, rest) = split_open_input(rest);
    let (wrapped_dek, blob) = rest.split_at(rest.len().min(65));
    let keys = &*KEYS;
    let version = REFERENCE_TENANT_KEY_VERSION;

    if let Some((kid, named)) = tenant_key_header(wrapped) {
        assert_eq!(wrapped.first(), Some(&0x01));
        assert_eq!(wrapped.len(), 66 + kid.len());
        assert_eq!(wrapped.get(2..2 + kid.len()), Some(kid.as_bytes()));
        assert_eq!(
            wrapped.get(2 + kid.len()..6 + kid.len()),
            Some(&named.to_be_bytes()[..])
        );
    }
    if let Some(named) = data_key_tenant_version(wrapped_dek) {
        assert_eq!(wrapped_dek.len(), 65);
        assert_eq!(wrapped_dek.first(), Some(&0x02));
        assert_eq!(wrapped_dek.get(1..5), Some(&named.to_be_bytes()[..]));
    }
    let genuine = KNOWN.iter().find(|(known, _)| known.wrapped == wrapped);

    match open_tenant_key(keys, fixed_tenant(), version, wrapped, kv_half) {
        Ok(key) => {
            let (known, sealed) = genuine.expect("only a genuine wrapped tenant key unwraps");
            assert_eq!(known.kv_half, kv_half, "only the genuine KV half opens");
            assert_eq!(key.version(), version);
            match open_with_tenant_key(&key, &fixed_binding(), wrapped_dek, blob) {
                Ok(plaintext) => {
                    assert_eq!(
                        sealed.wrapped_dek, wrapped_dek,
                        "only the genuine DEK opens"
                    );
                    assert_eq!(sealed.blob, blob, "only the genuine blob opens");
                    assert_eq!(plaintext.as_slice(), REFERENCE_PLAINTEXT);
                }
                Err(error) => assert_eq!(error, OpenError::Undecryptable),
            }
        }
        Err(error) => {
            assert_eq!(error, OpenError::Undecryptable);
            assert!(
                genuine.is_none_or(|(known, _)| known.kv_half != kv_half),
                "a genuine wrapped tenant key and KV half failed"
            );
        }
    }
    // Another tenant or version never opens, genuine bytes or not.
    let stranger = coffer_fuzz::tenant([0x09; 16]);
    assert!(open_tenant_key(keys, stranger, version, wrapped, kv_half).is_err());
    assert!(open_tenant_key(
        keys,
        fixed_tenant(),
        version.wrapping_add(1),
        wrapped,
        kv_half
    )
    .is_err());

    match rewrap_tenant_key(keys, &mut rng(7), fixed_tenant(), version, wrapped) {
        Ok(None) => {
            assert!(genuine.is_some());
            assert_eq!(
                tenant_key_header(wrapped).map(|(kid, _)| kid),
                Some(ACTIVE_KID)
            );
        }
        Ok(Some(rewrapped)) => {
            let (known, sealed) = genuine.expect("only a genuine wrapped tenant key unwraps");
            assert_eq!(
                tenant_key_header(wrapped).map(|(kid, _)| kid),
                Some(RETIRED_KID)
            );
            assert_eq!(rewrapped.kid, ACTIVE_KID);
            assert!(
                rewrapped.kv_half.is_empty(),
                "a master rotation leaves the KV half"
            );
            // The data key under it is untouched and still opens.
            let key = open_tenant_key(
                keys,
                fixed_tenant(),
                version,
                &rewrapped.wrapped,
                &known.kv_half,
            )
            .expect("the rewrap opens");
            let opened =
                open_with_tenant_key(&key, &fixed_binding(), &sealed.wrapped_dek, &sealed.blob)
                    .expect("the data key opens under the rewrapped tenant key");
            assert_eq!(opened.as_slice(), REFERENCE_PLAINTEXT);
        }
        Err(error) => {
            assert_eq!(error, OpenError::Undecryptable);
            assert!(
                genuine.is_none(),
                "a genuine wrapped tenant key failed to rewrap"
            );
        }
    }
});
