//! The master keys (KEKs) from `COFFER_KEYS`.
use alloc::{string::String, vec::Vec};
use core::fmt;

use base64ct::{Base64, Encoding as _};
use zeroize::Zeroizing;

/// Length of a master key: AES-256.
pub(crate) const KEK_LEN: usize = 32;

/// Longest key id; it is stored in every wrapped key, behind a length byte.
pub(crate) const MAX_KID_LEN: usize = 64;

/// Length of a 32-byte key in standard, padded base64.
const KEK_BASE64_LEN: usize = 44;

/// Whether `kid` is 1–64 characters of `[A-Za-z0-9._-]`: safe in logs, D1
/// columns and the wrapped-key header without escaping.
pub(crate) fn is_valid_kid(kid: &[u8]) -> bool {
    (1..=MAX_KID_LEN).contains(&kid.len())
        && kid
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// One master key. Its bytes are wiped on drop and never printed.
pub(crate) struct Kek {
    pub(crate) kid: String,
    pub(crate) key: Zeroizing<[u8; KEK_LEN]>,
}

/// The master keys: the first encrypts ("active"), all decrypt.
///
/// Built only by [`Keyring::parse`], so it always holds at least one key,
/// with distinct, well-formed ids. `Debug` shows the key ids only.
pub struct Keyring {
    // The active key is a field of its own, so "there is an active key" is
    // a fact of the type rather than a runtime check.
    active: Kek,
    others: Vec<Kek>,
}

/// Why `COFFER_KEYS` was refused. Messages name entries by position
/// (counted from 1) or by key id, and never contain key material.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyringError {
    /// The value is empty or only whitespace.
    Empty,
    /// An entry between commas is empty (for example a trailing comma).
    EmptyEntry {
        /// The entry's position, from 1.
        position: usize,
    },
    /// An entry has no `:` between key id and key.
    MissingSeparator {
        /// The entry's position, from 1.
        position: usize,
    },
    /// A key id is empty, longer than 64 characters or uses characters
    /// outside `[A-Za-z0-9._-]`. The id itself is not repeated: a malformed
    /// id may be a pasted key.
    InvalidKid {
        /// The entry's position, from 1.
        position: usize,
    },
    /// Two entries share a key id.
    DuplicateKid {
        /// The repeated id.
        kid: String,
    },
    /// A key is not 32 bytes in standard padded base64 (44 characters).
    InvalidKey {
        /// The key's id.
        kid: String,
    },
}

impl fmt::Display for KeyringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("COFFER_KEYS is empty; expected kid:base64key entries"),
            Self::EmptyEntry { position } => {
                write!(f, "COFFER_KEYS entry {position} is empty")
            }
            Self::MissingSeparator { position } => {
                write!(f, "COFFER_KEYS entry {position} is not of the form kid:base64key")
            }
            Self::InvalidKid { position } => write!(
                f,
                "COFFER_KEYS entry {position} has a key id that is not 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'"
            ),
            Self::DuplicateKid { kid } => {
                write!(f, "COFFER_KEYS names the key id {kid} more than once")
            }
            Self::InvalidKey { kid } => write!(
                f,
                "COFFER_KEYS key {kid} is not 32 bytes in standard padded base64 (44 characters)"
            ),
        }
    }
}

impl Keyring {
    /// Parses `COFFER_KEYS`: `kid:base64(32 bytes)` entries separated by
    /// commas, the first being the active key. Whitespace around entries,
    /// ids and keys is ignored (secrets pasted with a trailing newline are
    /// common); base64 is the standard alphabet with padding, strictly.
    ///
    /// # Errors
    ///
    /// A [`KeyringError`] naming the first problem; none of them contains
    /// key bytes or key text.
    pub fn parse(value: &str) -> Result<Self, KeyringError> {
        if value.trim().is_empty() {
            return Err(KeyringError::Empty);
        }
        let mut keys: Vec<Kek> = Vec::new();
        for (index, entry) in value.split(',').enumerate() {
            let position = index + 1;
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(KeyringError::EmptyEntry { position });
            }
            let (kid, key_text) = entry
                .split_once(':')
                .ok_or(KeyringError::MissingSeparator { position })?;
            let (kid, key_text) = (kid.trim(), key_text.trim());
            if !is_valid_kid(kid.as_bytes()) {
                return Err(KeyringError::InvalidKid { position });
            }
            if keys.iter().any(|known| known.kid == kid) {
                return Err(KeyringError::DuplicateKid { kid: kid.into() });
            }
            let key = decode_key(key_text).ok_or(KeyringError::InvalidKey { kid: kid.into() })?;
            keys.push(Kek {
                kid: kid.into(),
                key,
            });
        }
        let mut keys = keys.into_iter();
        let active = keys.next().ok_or(KeyringError::Empty)?;
        Ok(Self {
            active,
            others: keys.collect(),
        })
    }

    /// The id of the key that encrypts.
    pub fn active_kid(&self) -> &str {
        &self.active().kid
    }

    /// Whether the keyring holds a key with this id.
    pub fn contains(&self, kid: &str) -> bool {
        self.get(kid).is_some()
    }

    /// Every key id, active first.
    pub fn kids(&self) -> impl Iterator<Item = &str> + '_ {
        self.all().map(|kek| kek.kid.as_str())
    }

    pub(crate) fn active(&self) -> &Kek {
        &self.active
    }

    pub(crate) fn get(&self, kid: &str) -> Option<&Kek> {
        self.all().find(|kek| kek.kid == kid)
    }

    fn all(&self) -> impl Iterator<Item = &Kek> + '_ {
        core::iter::once(&self.active).chain(&self.others)
    }
}

/// Decodes one key into a wiped buffer; `None` unless it is exactly 32
/// bytes of canonical, padded standard base64.
fn decode_key(text: &str) -> Option<Zeroizing<[u8; KEK_LEN]>> {
    if text.len() != KEK_BASE64_LEN {
        return None;
    }
    // Decoded in constant time straight into the wiped key buffer, not a
    // growing Vec, so no unwiped copy is left behind. `decode` fails
    // (`InvalidLength`) when the text holds more than the buffer: 44
    // characters of 33 bytes are refused there, of 31 bytes by the length
    // check.
    let mut key = Zeroizing::new([0_u8; KEK_LEN]);
    let len = Base64::decode(text, key.as_mut_slice()).ok()?.len();
    (len == KEK_LEN).then_some(key)
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("kids", &self.kids().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use alloc::{format, string::ToString, vec};

    use super::*;
    use base64::{engine::general_purpose::STANDARD, Engine as _};

    /// `base64(32 × byte)`.
    pub(crate) fn key_text(byte: u8) -> String {
        STANDARD.encode([byte; KEK_LEN])
    }

    #[test]
    fn the_first_key_is_active_and_all_are_known() {
        let value = format!("k2:{}, k1:{}\n", key_text(2), key_text(1));
        let keyring = Keyring::parse(&value).expect("valid keyring");
        assert_eq!(keyring.active_kid(), "k2");
        assert!(keyring.contains("k1") && keyring.contains("k2"));
        assert!(!keyring.contains("k3"));
        assert_eq!(keyring.kids().collect::<Vec<_>>(), vec!["k2", "k1"]);
        assert_eq!(*keyring.get("k1").expect("present").key, [1; 32]);
    }

    fn check(value: &str, expected: KeyringError) {
        let got = Keyring::parse(value);
        assert_eq!(got.as_ref().err(), Some(&expected), "{value:?}");
    }

    #[test]
    fn malformed_values_say_which_entry_is_wrong() {
        let good = key_text(7);
        let short = STANDARD.encode([7_u8; 16]);
        let long = STANDARD.encode([7_u8; 33]);
        let long_kid = "k".repeat(65);
        check("", KeyringError::Empty);
        check(" \n", KeyringError::Empty);
        check(
            &format!("a:{good},"),
            KeyringError::EmptyEntry { position: 2 },
        );
        check(
            &format!(",a:{good}"),
            KeyringError::EmptyEntry { position: 1 },
        );
        check(&good, KeyringError::MissingSeparator { position: 1 });
        check(
            &format!(":{good}"),
            KeyringError::InvalidKid { position: 1 },
        );
        check(
            &format!("a b:{good}"),
            KeyringError::InvalidKid { position: 1 },
        );
        check(
            &format!("a/b:{good}"),
            KeyringError::InvalidKid { position: 1 },
        );
        check(
            &format!("{long_kid}:{good}"),
            KeyringError::InvalidKid { position: 1 },
        );
        check(
            &format!("a:{good},a:{good}"),
            KeyringError::DuplicateKid { kid: "a".into() },
        );
        check(
            &format!("a:{short}"),
            KeyringError::InvalidKey { kid: "a".into() },
        );
        check(
            &format!("a:{long}"),
            KeyringError::InvalidKey { kid: "a".into() },
        );
        check("a:", KeyringError::InvalidKey { kid: "a".into() });
        // Right length, wrong alphabet (URL-safe) and unpadded forms.
        let url_safe = base64::engine::general_purpose::URL_SAFE.encode([0xfb_u8; 32]);
        check(
            &format!("a:{url_safe}"),
            KeyringError::InvalidKey { kid: "a".into() },
        );
        let unpadded = good.trim_end_matches('=');
        check(
            &format!("a:{unpadded}"),
            KeyringError::InvalidKey { kid: "a".into() },
        );
        // A key is 32 bytes, so 44 characters with one '='; one trailing
        // non-canonical bit pattern is refused too.
        let mut non_canonical = good.clone();
        non_canonical.replace_range(42..43, "B");
        check(
            &format!("a:{non_canonical}"),
            KeyringError::InvalidKey { kid: "a".into() },
        );
        // The longest id is fine.
        let longest_kid = "k".repeat(64);
        assert!(Keyring::parse(&format!("{longest_kid}:{good}")).is_ok());
    }

    /// AES-256 takes a 32-byte key: anything else is refused, even where
    /// its base64 has the 44 characters of a good key (31 bytes with `==`,
    /// 33 bytes without padding).
    #[test]
    fn keys_decode_to_exactly_32_bytes_or_are_refused() {
        for len in 0..=48_u8 {
            let bytes: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
            let text = STANDARD.encode(&bytes);
            let got = Keyring::parse(&format!("k:{text}"));
            if usize::from(len) == KEK_LEN {
                let keyring = got.expect("32 bytes");
                assert_eq!(keyring.get("k").expect("present").key.as_slice(), bytes);
            } else {
                assert_eq!(
                    got.err(),
                    Some(KeyringError::InvalidKey { kid: "k".into() }),
                    "{len} bytes"
                );
            }
            if matches!(len, 31 | 33) {
                assert_eq!(text.len(), KEK_BASE64_LEN, "{len} bytes");
            }
        }
    }

    #[test]
    fn errors_and_debug_never_show_key_material() {
        let secret = key_text(0x5a);
        let attempts = [
            secret.clone(),
            format!("{secret}:{secret}"),
            format!("a:{}", &secret[..40]),
            format!("a:{secret},a:{secret}"),
        ];
        for value in attempts {
            let error = Keyring::parse(&value).expect_err("refused");
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains(&secret[..20]), "{shown}");
            assert!(!shown.ends_with('.'));
        }
        let keyring = Keyring::parse(&format!("main:{secret}")).expect("valid");
        let shown = format!("{keyring:?}");
        assert_eq!(shown, r#"Keyring { kids: ["main"] }"#);
        assert_eq!(
            KeyringError::InvalidKey { kid: "main".into() }.to_string(),
            "COFFER_KEYS key main is not 32 bytes in standard padded base64 (44 characters)"
        );
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod properties {
        use alloc::vec;

        use base64::{engine::general_purpose::STANDARD, Engine as _};
        use proptest::prelude::*;

        use super::super::*;

        /// A `COFFER_KEYS` entry as generated, and whether it is well formed.
        #[derive(Debug, Clone)]
        struct Entry {
            text: String,
            kid: String,
            key: [u8; KEK_LEN],
            /// Base64 texts in the entry that carry key material: the key
            /// part, and a key pasted where the id goes.
            secrets: Vec<String>,
            well_formed: bool,
        }

        /// Key ids: good ones (a few common ones, so that duplicates
        /// happen), and empty, too long, with a forbidden character, or a
        /// key pasted in the id's place.
        fn kid() -> impl Strategy<Value = (String, bool, Option<String>)> {
            prop_oneof![
                3 => "[A-Za-z0-9._-]{1,64}".prop_map(|kid| (kid, true, None)),
                2 => prop::sample::select(vec!["k1", "k2", "main"])
                    .prop_map(|kid| (kid.into(), true, None)),
                1 => Just((String::new(), false, None)),
                1 => "[A-Za-z0-9._-]{65,80}".prop_map(|kid| (kid, false, None)),
                1 => "[A-Za-z0-9._-]{0,8}[/+=@!é][A-Za-z0-9._-]{0,8}"
                    .prop_map(|kid| (kid, false, None)),
                1 => any::<[u8; KEK_LEN]>().prop_map(|bytes| {
                    // Padded standard base64 of 32 bytes ends in '='.
                    let pasted = STANDARD.encode(bytes);
                    (pasted.clone(), false, Some(pasted))
                }),
            ]
        }

        /// A key's text: canonical padded standard base64 of 32 bytes, or
        /// one small step away from it.
        fn key_text(bytes: [u8; KEK_LEN], form: u8, extra: u8) -> (String, bool) {
            use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE};
            let good = STANDARD.encode(bytes);
            match form {
                0..=3 => (good, true),
                // Where no byte group maps to '+' or '/', the URL-safe
                // alphabet gives the same text, which is then a good key.
                4 => {
                    let url_safe = URL_SAFE.encode(bytes);
                    let same = url_safe == good;
                    (url_safe, same)
                }
                5 => (STANDARD_NO_PAD.encode(bytes), false),
                6 => (good[1..].into(), false),
                7 => (alloc::format!("{good}A"), false),
                8 => (STANDARD.encode(&bytes[..KEK_LEN - 1]), false),
                9 => {
                    let mut longer = bytes.to_vec();
                    longer.push(extra);
                    (STANDARD.encode(longer), false)
                }
                10 => {
                    // The last character before '=' carries 4 bits of key
                    // and 2 zero bits; setting one of those is non-canonical.
                    const ALPHABET: &str =
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
                    let index = ALPHABET.find(&good[42..43]).expect("base64");
                    let mut text = good.clone();
                    text.replace_range(42..43, &ALPHABET[index | 1..=index | 1]);
                    (text, false)
                }
                11 => {
                    let mut text = good.clone();
                    text.insert(usize::from(extra % 40) + 2, ' ');
                    (text, false)
                }
                _ => (String::new(), false),
            }
        }

        fn entry() -> impl Strategy<Value = Entry> {
            (
                kid(),
                prop::sample::select(vec![(":", true), (" : ", true), ("", false), ("::", false)]),
                any::<[u8; KEK_LEN]>(),
                0_u8..13,
                any::<u8>(),
                prop::sample::select(vec!["", " ", "\n", " \t"]),
            )
                .prop_map(
                    |(
                        (kid, kid_ok, pasted),
                        (separator, separator_ok),
                        key,
                        form,
                        extra,
                        space,
                    )| {
                        let (text, key_ok) = key_text(key, form, extra);
                        let secrets = pasted.into_iter().chain([text.clone()]).collect();
                        Entry {
                            text: alloc::format!("{space}{kid}{separator}{text}{space}"),
                            kid,
                            key,
                            secrets,
                            well_formed: kid_ok && separator_ok && key_ok,
                        }
                    },
                )
        }

        proptest! {
            /// Entries that are well formed or one step from it, so that
            /// both halves run: every value is accepted exactly when each
            /// entry is well formed with a distinct id (and then holds the
            /// very bytes), and a refusal never shows key material, whole
            /// or in part, except where it is also a good key id that the
            /// message may name.
            #[test]
            fn parsing_never_panics_nor_leaks(
                entries in proptest::collection::vec(entry(), 1..5),
                trailing_comma in proptest::bool::weighted(0.1),
            ) {
                let mut value = entries.iter().map(|e| e.text.as_str()).collect::<Vec<_>>().join(",");
                if trailing_comma {
                    value.push(',');
                }
                let mut kids: Vec<&str> = entries.iter().map(|e| e.kid.as_str()).collect();
                kids.sort_unstable();
                kids.dedup();
                let accept = !trailing_comma
                    && entries.iter().all(|e| e.well_formed)
                    && kids.len() == entries.len();
                match Keyring::parse(&value) {
                    Ok(keyring) => {
                        prop_assert!(accept, "accepted {:?}", value);
                        let kids: Vec<&str> = keyring.kids().collect();
                        let expected: Vec<&str> = entries.iter().map(|e| e.kid.as_str()).collect();
                        prop_assert_eq!(kids, expected);
                        for e in &entries {
                            prop_assert_eq!(*keyring.get(&e.kid).expect("present").key, e.key);
                        }
                    }
                    Err(error) => {
                        prop_assert!(!accept, "refused {:?}: {}", value, error);
                        let shown = alloc::format!("{error} {error:?}");
                        let good_kids: Vec<&str> = entries
                            .iter()
                            .filter(|e| is_valid_kid(e.kid.as_bytes()))
                            .map(|e| e.kid.as_str())
                            .collect();
                        for secret in entries.iter().flat_map(|e| &e.secrets) {
                            for window in secret.as_bytes().windows(12) {
                                let window = core::str::from_utf8(window).expect("ascii");
                                prop_assert!(
                                    !shown.contains(window)
                                        || good_kids.iter().any(|kid| kid.contains(window)),
                                    "{:?} shows {:?} of {:?}", shown, window, value
                                );
                            }
                        }
                    }
                }
            }

            /// Arbitrary text, for the parser's robustness alone.
            #[test]
            fn arbitrary_text_never_panics(value in "\\PC{0,120}") {
                let _ = Keyring::parse(&value);
            }

            #[test]
            fn any_well_formed_value_parses(
                kids in proptest::collection::hash_set("[A-Za-z0-9._-]{1,64}", 1..5),
                bytes in any::<[u8; 32]>(),
            ) {
                let value: Vec<String> = kids
                    .iter()
                    .map(|kid| alloc::format!("{kid}:{}", STANDARD.encode(bytes)))
                    .collect();
                let keyring = Keyring::parse(&value.join(",")).expect("well formed");
                for kid in &kids {
                    prop_assert!(keyring.contains(kid));
                    prop_assert_eq!(*keyring.get(kid).expect("present").key, bytes);
                }
            }
        }
    }
}
