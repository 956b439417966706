//! `open(seal(x)) == x` for arbitrary plaintext up to the 64 KiB limit and
//! an arbitrary binding, with an RNG seeded from the input; plus the format
//! lengths, binding separation and rotation on the same sealed value.
#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use coffer_core::{
    limits::MAX_SECRET_BYTES, open, rewrap, seal, wrapped_kid, Keyring, OpenError, Rewrapped,
    SealError,
};
use coffer_fuzz::{binding, keyring, retired_keyring, rng, ACTIVE_KID, RETIRED_KID};
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<Keyring> = LazyLock::new(keyring);
static RETIRED: LazyLock<Keyring> = LazyLock::new(retired_keyring);

#[derive(Debug, Arbitrary)]
struct Input {
    seed: u64,
    tenant: [u8; 16],
    credential: [u8; 16],
    version: u64,
    /// Seal under the retired key, as before a rotation.
    retired: bool,
    /// Repeat the plaintext to `MAX_SECRET_BYTES - 2 + n % 4` bytes, so the
    /// limit is exercised without 64 KiB inputs.
    stretch: Option<u8>,
    plaintext: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let mut plaintext = input.plaintext;
    if let Some(n) = input.stretch {
        let len = MAX_SECRET_BYTES - 2 + usize::from(n % 4);
        plaintext = if plaintext.is_empty() {
            vec![0; len]
        } else {
            plaintext.iter().copied().cycle().take(len).collect()
        };
    }
    let (sealing_keys, sealing_kid) = if input.retired {
        (&*RETIRED, RETIRED_KID)
    } else {
        (&*KEYS, ACTIVE_KID)
    };
    let bound = binding(input.tenant, input.credential, input.version);
    let mut rng = rng(input.seed);

    let sealed = match seal(sealing_keys, &mut rng, &bound, &plaintext) {
        Ok(sealed) => sealed,
        Err(SealError::TooLarge { len, max }) => {
            assert!(plaintext.len() > MAX_SECRET_BYTES);
            assert_eq!((len, max), (plaintext.len(), MAX_SECRET_BYTES));
            return;
        }
        Err(other) => panic!("unexpected seal error {other:?}"),
    };
    assert!(plaintext.len() <= MAX_SECRET_BYTES);
    assert_eq!(sealed.blob.len(), 29 + plaintext.len());
    assert_eq!(sealed.wrapped_dek.len(), 62 + sealing_kid.len());
    assert_eq!(sealed.kid, sealing_kid);
    assert_eq!(wrapped_kid(&sealed.wrapped_dek), Some(sealing_kid));

    // The round trip, with the keyring that sealed and the rotated one.
    for keys in [sealing_keys, &*KEYS] {
        let opened = open(keys, &bound, &sealed.wrapped_dek, &sealed.blob).expect("opens");
        assert_eq!(opened.as_slice(), plaintext.as_slice());
    }

    // Any other version of the same record is another binding.
    let mut moved = bound;
    moved.version = bound.version.wrapping_add(1);
    assert_eq!(
        open(&KEYS, &moved, &sealed.wrapped_dek, &sealed.blob),
        Err(OpenError::Undecryptable)
    );

    match rewrap(&KEYS, &mut rng, &bound, &sealed.wrapped_dek).expect("rewraps") {
        Rewrapped::AlreadyActive => assert!(!input.retired),
        Rewrapped::Rewrapped { wrapped_dek, kid } => {
            assert!(input.retired);
            assert_eq!(kid, ACTIVE_KID);
            let opened = open(&KEYS, &bound, &wrapped_dek, &sealed.blob).expect("opens");
            assert_eq!(opened.as_slice(), plaintext.as_slice());
        }
        other => panic!("unexpected rewrap outcome {other:?}"),
    }
});
