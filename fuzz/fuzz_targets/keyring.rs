//! `Keyring::parse` (`COFFER_KEYS`) on arbitrary text: no panic, no key
//! material in `Debug` or error messages, and a parsed keyring works.
#![no_main]

use coffer_core::{open, seal, wrapped_kid, Keyring};
use coffer_fuzz::{fixed_binding, rng};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    match Keyring::parse(input) {
        Ok(keys) => {
            let kids: Vec<&str> = keys.kids().collect();
            assert_eq!(kids.first().copied(), Some(keys.active_kid()));
            for (i, kid) in kids.iter().enumerate() {
                assert!((1..=64).contains(&kid.len()), "{kid:?}");
                assert!(
                    kid.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b)),
                    "{kid:?}"
                );
                assert!(keys.contains(kid));
                assert!(!kids[..i].contains(kid), "duplicate {kid:?}");
            }
            // Key text is padded base64 and always holds '='; key ids never
            // do, so a '=' in the output would be key material leaking.
            assert!(!format!("{keys:?}").contains('='));

            // Whitespace around the value is ignored.
            let padded = Keyring::parse(&format!(" \n{input}\t ")).expect("padded value parses");
            assert!(padded.kids().eq(keys.kids()));

            let binding = fixed_binding();
            let sealed = seal(&keys, &mut rng(0), &binding, b"{}").expect("small secret seals");
            assert_eq!(sealed.kid, keys.active_kid());
            assert_eq!(wrapped_kid(&sealed.wrapped_dek), Some(keys.active_kid()));
            let opened = open(&keys, &binding, &sealed.wrapped_dek, &sealed.blob).expect("opens");
            assert_eq!(opened.as_slice(), b"{}");
        }
        Err(error) => {
            let message = error.to_string();
            assert!(!message.contains('='), "{message}");
            assert!(!format!("{error:?}").contains('='));
        }
    }
});
