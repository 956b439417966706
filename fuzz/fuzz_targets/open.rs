//! Sealed-blob and wrapped-key decoding on arbitrary bytes, with a fixed
//! keyring and binding: `open`, `rewrap` and `wrapped_kid` must never panic
//! and must fail with the one opaque error.
//!
//! Input: one length byte, the wrapped key, then the blob. The keys are
//! fuzz-only, so the only secret anything can open to is the reference one
//! sealed into the corpus; an input that opens to anything else, or a
//! wrapped key that unwraps without being the reference's, is a forgery.
#![no_main]

use std::sync::LazyLock;

use coffer_core::{open, rewrap, wrapped_kid, Keyring, OpenError, Rewrapped, Sealed};
use coffer_fuzz::{
    fixed_binding, keyring, reference, rng, split_open_input, ACTIVE_KID, REFERENCE_PLAINTEXT,
    RETIRED_KID,
};
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<Keyring> = LazyLock::new(keyring);
/// The reference secret under the active key, then under the retired one.
static KNOWN: LazyLock<[Sealed; 2]> = LazyLock::new(|| [reference(false), reference(true)]);

fuzz_target!(|data: &[u8]| {
    let (wrapped_dek, blob) = split_open_input(data);
    let keys = &*KEYS;
    let binding = fixed_binding();

    let kid = wrapped_kid(wrapped_dek);
    if let Some(kid) = kid {
        // The format: 0x01, the id's length, the id, a nonce, DEK and tag.
        assert_eq!(wrapped_dek.first(), Some(&0x01));
        assert_eq!(wrapped_dek.len(), 62 + kid.len());
        assert_eq!(wrapped_dek.get(2..2 + kid.len()), Some(kid.as_bytes()));
    }
    let genuine = KNOWN
        .iter()
        .find(|sealed| sealed.wrapped_dek == wrapped_dek);

    match open(keys, &binding, wrapped_dek, blob) {
        Ok(plaintext) => {
            let sealed = genuine.expect("only a genuine wrapped key unwraps");
            assert_eq!(sealed.blob, blob, "only the genuine blob opens");
            assert_eq!(plaintext.as_slice(), REFERENCE_PLAINTEXT);
        }
        Err(error) => assert_eq!(error, OpenError::Undecryptable),
    }

    match rewrap(keys, &mut rng(7), &binding, wrapped_dek) {
        Ok(Rewrapped::AlreadyActive) => {
            assert!(genuine.is_some(), "only a genuine wrapped key unwraps");
            assert_eq!(kid, Some(ACTIVE_KID));
        }
        Ok(Rewrapped::Rewrapped {
            wrapped_dek: rewrapped,
            kid: new_kid,
        }) => {
            let sealed = genuine.expect("only a genuine wrapped key unwraps");
            assert_eq!(kid, Some(RETIRED_KID));
            assert_eq!(new_kid, ACTIVE_KID);
            assert_eq!(wrapped_kid(&rewrapped), Some(ACTIVE_KID));
            // The blob is untouched by rotation and opens with the new wrap.
            let opened = open(keys, &binding, &rewrapped, &sealed.blob).expect("rewrap opens");
            assert_eq!(opened.as_slice(), REFERENCE_PLAINTEXT);
        }
        Ok(other) => panic!("unexpected rewrap outcome {other:?}"),
        Err(error) => {
            assert_eq!(error, OpenError::Undecryptable);
            assert!(genuine.is_none(), "a genuine wrapped key failed to rewrap");
        }
    }
});
