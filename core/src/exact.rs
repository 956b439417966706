//! JSON kept exactly as sent: the secret and `metadata` are stored as the
//! client's own JSON text, with insignificant whitespace removed, instead of
//! being parsed into numbers and maps and written out again.
//!
//! Parsing into `serde_json::Value` changes what was sent in two silent
//! ways: a number becomes a `u64`, `i64` or `f64`, so
//! `123456789012345678901234567890` comes back as `1.2345678901234568e29`;
//! and an object keeps the last of two members with the same name. Here the
//! text of every number is copied verbatim, and a repeated member name at
//! any depth is refused (RFC 8259 §4: names "SHOULD be unique"; a vault that
//! silently picks one would store something other than what was sent).
//!
//! Strings are rewritten in serde_json's escaping (the shortest one), as
//! before, so the compact length a limit counts does not depend on how a
//! client chose to escape its strings; only numbers are kept as sent.
//!
//! Why not serde_json's `arbitrary_precision`: features unify across the
//! workspace, and under it `deserialize_any` hands every number to a visitor
//! as a map with a private key. The numeric-date visitor in `claims.rs`
//! (`exp`, `nbf`, `iat`) and jwt-compact's `#[serde(flatten)]` claims, which
//! buffer through `deserialize_any`, would then refuse every token. Keeping
//! the text also saves the decrypted read a parse into `Value` and back.
use alloc::{collections::BTreeSet, string::String};
use core::{cell::Cell, fmt};

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{value::RawValue, Value};
use zeroize::Zeroize as _;

/// Why JSON text cannot be kept exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inexact {
    /// An object repeats a member name (compared after unescaping).
    DuplicateMember,
    /// A number beyond the range of a double, an unpaired UTF-16 surrogate
    /// escape, or nesting deeper than serde_json's limit of 128 levels.
    Unsupported,
}

/// Checks `raw` (already valid JSON syntax) for repeated member names at any
/// depth and for values serde_json refuses to represent.
pub(crate) fn check(raw: &RawValue) -> Result<(), Inexact> {
    let duplicate = Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    let checked = Unique {
        duplicate: &duplicate,
    }
    .deserialize(&mut deserializer);
    match checked {
        Ok(()) => Ok(()),
        Err(_) if duplicate.get() => Err(Inexact::DuplicateMember),
        Err(_) => Err(Inexact::Unsupported),
    }
}

/// Walks a JSON value, refusing the first object that repeats a member name.
#[derive(Clone, Copy)]
struct Unique<'a> {
    duplicate: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Unique<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Member names may be secret-adjacent (a client could key a secret
        // by itself): keep them in buffers wiped on drop.
        let mut seen: BTreeSet<Name> = BTreeSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if !seen.insert(Name(name)) {
                self.duplicate.set(true);
                return Err(de::Error::custom("duplicate member name"));
            }
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

/// A member name, wiped on drop.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Name(String);

impl Drop for Name {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Writes `raw` (valid JSON that passed [`check`]) as compact JSON: no
/// whitespace between tokens, strings in serde_json's escaping, every other
/// token (numbers, literals, punctuation) copied byte for byte.
pub(crate) fn write_compact(raw: &RawValue, out: &mut impl fmt::Write) -> fmt::Result {
    let text = raw.get();
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' => at += 1,
            b'"' => {
                let (end, escaped) = string_end(bytes, at);
                let token = text.get(at..end).ok_or(fmt::Error)?;
                if escaped {
                    write_string(token, out)?;
                } else {
                    // Without a backslash the token has no escape to
                    // normalize and (being valid JSON) no character serde_json
                    // would escape: it is already in serde_json's form.
                    out.write_str(token)?;
                }
                at = end;
            }
            _ => {
                // Outside strings valid JSON is ASCII, one byte per char.
                out.write_char(char::from(byte))?;
                at += 1;
            }
        }
    }
    Ok(())
}

/// The end (exclusive, after the closing quote) of the string token that
/// starts at `start`, and whether it holds an escape.
fn string_end(bytes: &[u8], start: usize) -> (usize, bool) {
    let mut at = start + 1;
    let mut escaped = false;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'\\' => {
                escaped = true;
                at += 2;
            }
            b'"' => return (at + 1, escaped),
            _ => at += 1,
        }
    }
    (bytes.len(), escaped)
}

/// Rewrites one string token in serde_json's escaping, wiping the decoded
/// copy afterwards.
fn write_string(token: &str, out: &mut impl fmt::Write) -> fmt::Result {
    let decoded: String = serde_json::from_str(token).map_err(|_| fmt::Error)?;
    let mut value = Value::String(decoded);
    let written = write!(out, "{value}");
    if let Value::String(decoded) = &mut value {
        decoded.zeroize();
    }
    written
}

/// Counts the bytes written to it without storing them.
pub(crate) struct ByteCounter(pub(crate) usize);

impl fmt::Write for ByteCounter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 = self.0.saturating_add(s.len());
        Ok(())
    }
}

/// The length of [`write_compact`]'s output, computed without building it.
pub(crate) fn compact_len(raw: &RawValue) -> Result<usize, fmt::Error> {
    let mut counter = ByteCounter(0);
    write_compact(raw, &mut counter)?;
    Ok(counter.0)
}

#[cfg(test)]
mod tests {
    use alloc::{boxed::Box, format, string::ToString};

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        serde_json::from_str(text).expect("valid JSON")
    }

    fn compact(text: &str) -> String {
        let raw = raw(text);
        check(&raw).expect("exact");
        let mut out = String::new();
        write_compact(&raw, &mut out).expect("writes");
        assert_eq!(compact_len(&raw), Ok(out.len()));
        out
    }

    #[test]
    fn numbers_keep_their_digits() {
        for number in [
            "123456789012345678901234567890",
            "0.1000000000000000055511151231257827",
            "-0",
            "1.0",
            "1E5",
            "2.5e33",
            "-12345678901234567890123",
            "18446744073709551616",
        ] {
            assert_eq!(
                compact(&format!("{{ \"n\" : {number} }}")),
                format!("{{\"n\":{number}}}")
            );
        }
    }

    #[test]
    fn whitespace_goes_and_strings_take_serde_json_escaping() {
        assert_eq!(
            compact("{\n \"a\" : [ 1 , true , null ] ,\t\"b\" : \"x y\"\r\n}"),
            r#"{"a":[1,true,null],"b":"x y"}"#
        );
        // Escapes are decoded and written the way serde_json writes them.
        assert_eq!(
            compact(r#"{"\u0061":"\u00e9\/\"\\\n\u0001 \ud83d\ude00"}"#),
            "{\"a\":\"é/\\\"\\\\\\n\\u0001 \u{1f600}\"}"
        );
        // Without an escape a string is copied as is.
        assert_eq!(compact(r#"{"k":"é ok"}"#), r#"{"k":"é ok"}"#);
    }

    #[test]
    fn the_compact_text_is_what_value_would_write_for_ordinary_json() {
        let text = r#"{ "accessToken" : "at-1", "n" : [1, -2, 3.5, "x\ty"], "o": {"p": null} }"#;
        let value: Value = serde_json::from_str(text).expect("valid");
        assert_eq!(compact(text), value.to_string());
    }

    #[test]
    fn repeated_names_are_refused_at_any_depth() {
        for text in [
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,"\u0061":2}"#,
            r#"{"x":{"a":1,"b":{"c":[{"d":1,"d":1}]}}}"#,
            r#"[{"a":1},{"b":1,"b":2}]"#,
        ] {
            assert_eq!(check(&raw(text)), Err(Inexact::DuplicateMember), "{text}");
        }
        // The same name in sibling or nested objects is not a repeat.
        for text in [
            r#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#,
            r#"{"a":1,"A":2}"#,
        ] {
            assert_eq!(check(&raw(text)), Ok(()), "{text}");
        }
    }

    #[test]
    fn values_serde_json_cannot_represent_are_refused() {
        let deep = "[".repeat(200) + &"]".repeat(200);
        for text in [r#"{"n":1e400}"#, r#"{"s":"\ud800"}"#, deep.as_str()] {
            assert_eq!(check(&raw(text)), Err(Inexact::Unsupported), "{text}");
        }
        assert_eq!(check(&raw("1")), Ok(()));
    }

    /// Where a double's range ends, as serde_json's float parser (without
    /// `float_roundtrip`, see `Cargo.toml`) draws it: the largest and the
    /// smallest doubles are kept, digits and all; past the largest is
    /// refused (even by less than half an ulp); below the smallest reads as
    /// zero and is kept as sent.
    #[test]
    fn the_range_of_a_double_is_kept_to_its_ends() {
        for number in [
            "1.7976931348623157e308",
            "-1.7976931348623157e308",
            "5e-324",
            "2.2250738585072014e-308",
            "1e-400",
        ] {
            assert_eq!(
                compact(&format!("{{\"n\":{number}}}")),
                format!("{{\"n\":{number}}}")
            );
        }
        // Just above the largest double: an exact parser rounds it down to
        // it; serde_json's own parser does not, so it is refused.
        for number in ["1e309", "1.8e308", "-1.8e308", "1.7976931348623158e308"] {
            let text = format!("{{\"n\":{number}}}");
            assert_eq!(check(&raw(&text)), Err(Inexact::Unsupported), "{text}");
        }
    }
}
