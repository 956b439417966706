//! The contract's limits, stated once, and the validators that apply them.
//!
//! Errors name the rule, not the field: the worker knows which field it
//! validated and prefixes the name in the spelling of its surface
//! (`credentialName` or `name`, `loc` on the connection surface).
use alloc::string::String;
use core::fmt::{self, Write as _};

use serde_json::{value::RawValue, Value};
use zeroize::Zeroizing;

use crate::exact::{self, ByteCounter, Inexact};

/// The contract's limits ("Precise rules › Limits" and "Pages").
///
/// Byte limits count the UTF-8 bytes of compact JSON; character limits count
/// Unicode scalar values (`char`s), which is what a client's "characters"
/// most often means and what cannot be split by the count.
pub mod limits {
    /// Largest secret payload (`credentials`): 64 KiB of compact JSON.
    pub const MAX_SECRET_BYTES: usize = 64 * 1024;
    /// Largest request body, refused before parsing: 80 KiB.
    pub const MAX_BODY_BYTES: usize = 80 * 1024;
    /// Shortest `credentialName`, in characters.
    pub const MIN_NAME_CHARS: usize = 1;
    /// Longest `credentialName`, in characters.
    pub const MAX_NAME_CHARS: usize = 200;
    /// Longest `description`, in characters.
    pub const MAX_DESCRIPTION_CHARS: usize = 2000;
    /// Most `scopes`.
    pub const MAX_SCOPES: usize = 100;
    /// Longest single scope, in characters.
    pub const MAX_SCOPE_CHARS: usize = 200;
    /// Largest `metadata` object: 16 KiB of compact JSON.
    pub const MAX_METADATA_BYTES: usize = 16 * 1024;
    /// Smallest page `limit`.
    pub const MIN_PAGE_LIMIT: u32 = 1;
    /// Largest page `limit`.
    pub const MAX_PAGE_LIMIT: u32 = 100;
    /// Page `limit` when the query has none.
    pub const DEFAULT_PAGE_LIMIT: u32 = 20;
}

/// What a length limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unit {
    /// Unicode scalar values.
    Characters,
    /// UTF-8 bytes of the value serialized as compact JSON.
    JsonBytes,
    /// Bytes of the raw request body.
    Bytes,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Characters => "characters",
            Self::JsonBytes => "bytes as compact JSON",
            Self::Bytes => "bytes",
        }
    }
}

/// Why a field or a body was refused, in words a client can act on.
///
/// [`ValidationError::TooLong`] with [`Unit::Bytes`] or [`Unit::JsonBytes`]
/// from [`validate_body_size`] and [`validate_secret`] is what the
/// credentials surface answers with 413; the rest are 400 (422 on the
/// connection surface).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValidationError {
    /// Shorter than the minimum.
    TooShort {
        /// The minimum.
        min: usize,
        /// What was found.
        actual: usize,
        /// What the numbers count.
        unit: Unit,
    },
    /// Only whitespace.
    Blank,
    /// Longer than the maximum.
    TooLong {
        /// The maximum.
        max: usize,
        /// What was found.
        actual: usize,
        /// What the numbers count.
        unit: Unit,
    },
    /// More items than allowed.
    TooManyItems {
        /// The maximum.
        max: usize,
        /// What was found.
        actual: usize,
    },
    /// One item of a list is too long.
    ItemTooLong {
        /// The item's position, from 0.
        index: usize,
        /// The maximum, in characters.
        max: usize,
        /// What was found, in characters.
        actual: usize,
    },
    /// A JSON value that must be an object was something else.
    NotAnObject,
    /// An object, at any depth, repeats a member name.
    DuplicateMember,
    /// JSON that cannot be kept exactly: a number beyond the range of a
    /// double, an unpaired UTF-16 surrogate escape, or nesting deeper than
    /// 128 levels.
    UnsupportedJson,
    /// Not one of a closed set of words.
    UnknownValue {
        /// The accepted words.
        allowed: &'static [&'static str],
    },
    /// Not an integer in the accepted range.
    OutOfRange {
        /// The smallest accepted value.
        min: u64,
        /// The largest accepted value.
        max: u64,
    },
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { min, actual, unit } => {
                write!(f, "must be at least {min} {} (got {actual})", unit.as_str())
            }
            Self::Blank => f.write_str("must not be blank"),
            Self::TooLong { max, actual, unit } => {
                write!(f, "must be at most {max} {} (got {actual})", unit.as_str())
            }
            Self::TooManyItems { max, actual } => {
                write!(f, "must have at most {max} items (got {actual})")
            }
            Self::ItemTooLong { index, max, actual } => {
                write!(
                    f,
                    "item {index} must be at most {max} characters (got {actual})"
                )
            }
            Self::NotAnObject => f.write_str("must be a JSON object"),
            Self::DuplicateMember => {
                f.write_str("must not repeat a member name in any of its objects")
            }
            Self::UnsupportedJson => f.write_str(
                "must not hold a number out of range, an unpaired surrogate or nesting deeper than 128 levels",
            ),
            Self::UnknownValue { allowed } => {
                f.write_str("must be one of ")?;
                for (i, word) in allowed.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(word)?;
                }
                Ok(())
            }
            Self::OutOfRange { min, max } => {
                write!(f, "must be an integer from {min} to {max}")
            }
        }
    }
}

/// A record's `authType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    /// `oauth2_bearer`.
    OAuth2Bearer,
    /// `oauth2_client_credentials`.
    OAuth2ClientCredentials,
    /// `api_key`.
    ApiKey,
    /// `basic`.
    Basic,
    /// `bearer`.
    Bearer,
    /// `custom`, the default on create.
    Custom,
}

impl AuthType {
    /// Every auth type, in the contract's order.
    pub const ALL: [AuthType; 6] = [
        AuthType::OAuth2Bearer,
        AuthType::OAuth2ClientCredentials,
        AuthType::ApiKey,
        AuthType::Basic,
        AuthType::Bearer,
        AuthType::Custom,
    ];

    /// The contract's names, in the order of [`AuthType::ALL`].
    pub const NAMES: &'static [&'static str] = &[
        "oauth2_bearer",
        "oauth2_client_credentials",
        "api_key",
        "basic",
        "bearer",
        "custom",
    ];

    /// The default when a create request has none.
    pub const DEFAULT: AuthType = AuthType::Custom;

    /// Parses the contract's name (exact, lowercase).
    ///
    /// # Errors
    ///
    /// [`ValidationError::UnknownValue`] listing the accepted names.
    pub fn parse(name: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or(ValidationError::UnknownValue {
                allowed: Self::NAMES,
            })
    }

    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OAuth2Bearer => "oauth2_bearer",
            Self::OAuth2ClientCredentials => "oauth2_client_credentials",
            Self::ApiKey => "api_key",
            Self::Basic => "basic",
            Self::Bearer => "bearer",
            Self::Custom => "custom",
        }
    }
}

impl fmt::Display for AuthType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn check_chars(value: &str, max: usize) -> Result<usize, ValidationError> {
    let actual = value.chars().count();
    if actual > max {
        return Err(ValidationError::TooLong {
            max,
            actual,
            unit: Unit::Characters,
        });
    }
    Ok(actual)
}

/// Checks a `credentialName`: 1–200 characters, not only whitespace.
///
/// # Errors
///
/// [`ValidationError::TooShort`], [`ValidationError::TooLong`] or
/// [`ValidationError::Blank`].
pub fn validate_name(name: &str) -> Result<(), ValidationError> {
    let actual = check_chars(name, limits::MAX_NAME_CHARS)?;
    if actual < limits::MIN_NAME_CHARS {
        return Err(ValidationError::TooShort {
            min: limits::MIN_NAME_CHARS,
            actual,
            unit: Unit::Characters,
        });
    }
    if name.trim().is_empty() {
        return Err(ValidationError::Blank);
    }
    Ok(())
}

/// Checks a `description`: at most 2000 characters (empty is fine).
///
/// # Errors
///
/// [`ValidationError::TooLong`].
pub fn validate_description(description: &str) -> Result<(), ValidationError> {
    check_chars(description, limits::MAX_DESCRIPTION_CHARS).map(drop)
}

/// Checks `scopes`: at most 100 strings of at most 200 characters each.
///
/// # Errors
///
/// [`ValidationError::TooManyItems`] or [`ValidationError::ItemTooLong`]
/// naming the first offending item.
pub fn validate_scopes<S: AsRef<str>>(scopes: &[S]) -> Result<(), ValidationError> {
    if scopes.len() > limits::MAX_SCOPES {
        return Err(ValidationError::TooManyItems {
            max: limits::MAX_SCOPES,
            actual: scopes.len(),
        });
    }
    for (index, scope) in scopes.iter().enumerate() {
        let actual = scope.as_ref().chars().count();
        if actual > limits::MAX_SCOPE_CHARS {
            return Err(ValidationError::ItemTooLong {
                index,
                max: limits::MAX_SCOPE_CHARS,
                actual,
            });
        }
    }
    Ok(())
}

/// The length of `value` serialized as compact JSON, computed without
/// building the string (`Value`'s `Display` is serde_json's compact form).
pub fn compact_json_len(value: &Value) -> usize {
    let mut counter = ByteCounter(0);
    // Writing to a counter cannot fail, and `Value`'s Display only fails when
    // the writer does.
    let _ = write!(counter, "{value}");
    counter.0
}

/// Checks that `raw` is an object that can be kept exactly and returns the
/// length of its compact form.
fn check_exact_object(raw: &RawValue, max: usize) -> Result<usize, ValidationError> {
    if !raw.get().trim_start().starts_with('{') {
        return Err(ValidationError::NotAnObject);
    }
    exact::check(raw).map_err(|inexact| match inexact {
        Inexact::DuplicateMember => ValidationError::DuplicateMember,
        Inexact::Unsupported => ValidationError::UnsupportedJson,
    })?;
    let actual = exact::compact_len(raw).map_err(|_| ValidationError::UnsupportedJson)?;
    if actual > max {
        return Err(ValidationError::TooLong {
            max,
            actual,
            unit: Unit::JsonBytes,
        });
    }
    Ok(actual)
}

/// Checks `metadata` and returns it as compact JSON: a JSON object of at
/// most 16 KiB as compact JSON, with no repeated member name at any depth;
/// numbers keep the digits they were sent with.
///
/// # Errors
///
/// [`ValidationError::NotAnObject`], [`ValidationError::DuplicateMember`],
/// [`ValidationError::UnsupportedJson`] or [`ValidationError::TooLong`].
pub fn validate_metadata(metadata: &RawValue) -> Result<String, ValidationError> {
    let len = check_exact_object(metadata, limits::MAX_METADATA_BYTES)?;
    let mut compact = String::with_capacity(len);
    exact::write_compact(metadata, &mut compact).map_err(|_| ValidationError::UnsupportedJson)?;
    Ok(compact)
}

/// Checks a secret payload (`credentials`) and returns the compact JSON text
/// to seal: a JSON object of at most 64 KiB as compact JSON, with no
/// repeated member name at any depth. The text is the client's own:
/// insignificant whitespace removed, strings in serde_json's (shortest)
/// escaping, and every number with exactly the digits it was sent with, so
/// the secret reads back as sent.
///
/// The size is measured before anything is allocated, and the string is
/// then written into a buffer of exactly that capacity, so no reallocation
/// leaves a copy of the secret behind; the buffer is wiped on drop.
///
/// # Errors
///
/// [`ValidationError::NotAnObject`], [`ValidationError::DuplicateMember`],
/// [`ValidationError::UnsupportedJson`] or [`ValidationError::TooLong`].
pub fn validate_secret(credentials: &RawValue) -> Result<Zeroizing<String>, ValidationError> {
    let len = check_exact_object(credentials, limits::MAX_SECRET_BYTES)?;
    let mut compact = Zeroizing::new(String::with_capacity(len));
    exact::write_compact(credentials, &mut *compact)
        .map_err(|_| ValidationError::UnsupportedJson)?;
    Ok(compact)
}

/// Checks a request body's length before it is parsed: at most 80 KiB.
///
/// # Errors
///
/// [`ValidationError::TooLong`] in [`Unit::Bytes`].
pub fn validate_body_size(len: usize) -> Result<(), ValidationError> {
    if len > limits::MAX_BODY_BYTES {
        return Err(ValidationError::TooLong {
            max: limits::MAX_BODY_BYTES,
            actual: len,
            unit: Unit::Bytes,
        });
    }
    Ok(())
}

/// Parses a page `limit` query value: absent means 20, otherwise a decimal
/// integer from 1 to 100.
///
/// # Errors
///
/// [`ValidationError::OutOfRange`] for anything else (including `""`, `+5`,
/// and numbers too large for any integer type).
pub fn parse_page_limit(query: Option<&str>) -> Result<u32, ValidationError> {
    let Some(text) = query else {
        return Ok(limits::DEFAULT_PAGE_LIMIT);
    };
    let out_of_range = ValidationError::OutOfRange {
        min: limits::MIN_PAGE_LIMIT.into(),
        max: limits::MAX_PAGE_LIMIT.into(),
    };
    // `u32::from_str` would accept a leading `+`; the contract's clients send
    // plain digits, and one spelling per value keeps cursors comparable.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(out_of_range);
    }
    match text.parse::<u32>() {
        Ok(limit) if (limits::MIN_PAGE_LIMIT..=limits::MAX_PAGE_LIMIT).contains(&limit) => {
            Ok(limit)
        }
        _ => Err(out_of_range),
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use alloc::{string::ToString, vec, vec::Vec};

    use serde_json::json;

    use super::*;

    fn repeat(c: char, n: usize) -> String {
        core::iter::repeat_n(c, n).collect()
    }

    #[test]
    fn names_are_one_to_two_hundred_characters() {
        assert_eq!(validate_name("x"), Ok(()));
        assert_eq!(validate_name(&repeat('é', 200)), Ok(()));
        assert!(matches!(
            validate_name(""),
            Err(ValidationError::TooShort {
                min: 1,
                actual: 0,
                unit: Unit::Characters
            })
        ));
        assert!(matches!(validate_name(" \t"), Err(ValidationError::Blank)));
        assert!(matches!(
            validate_name(&repeat('é', 201)),
            Err(ValidationError::TooLong {
                max: 200,
                actual: 201,
                unit: Unit::Characters
            })
        ));
    }

    #[test]
    fn descriptions_are_at_most_two_thousand_characters() {
        assert_eq!(validate_description(""), Ok(()));
        assert_eq!(validate_description(&repeat('a', 2000)), Ok(()));
        assert!(matches!(
            validate_description(&repeat('a', 2001)),
            Err(ValidationError::TooLong {
                max: 2000,
                actual: 2001,
                ..
            })
        ));
    }

    #[test]
    fn scopes_are_limited_in_count_and_length() {
        let ok: Vec<String> = vec![repeat('s', 200); 100];
        assert_eq!(validate_scopes(&ok), Ok(()));
        assert_eq!(validate_scopes::<&str>(&[]), Ok(()));
        let too_many: Vec<&str> = vec!["read"; 101];
        assert!(matches!(
            validate_scopes(&too_many),
            Err(ValidationError::TooManyItems {
                max: 100,
                actual: 101
            })
        ));
        let long_item = ["read".to_string(), repeat('s', 201)];
        assert!(matches!(
            validate_scopes(&long_item),
            Err(ValidationError::ItemTooLong {
                index: 1,
                max: 200,
                actual: 201
            })
        ));
    }

    /// A JSON object whose compact form is exactly `len` bytes.
    fn object_of_len(len: usize) -> Value {
        // `{"k":""}` is 8 bytes; the rest is the string's ASCII content.
        json!({ "k": repeat('a', len - 8) })
    }

    /// `value` as raw JSON text, with whitespace a client might send.
    fn raw(value: &Value) -> alloc::boxed::Box<RawValue> {
        let text = alloc::format!(" {value:#} ");
        serde_json::from_str(&text).expect("valid JSON")
    }

    fn raw_text(text: &str) -> alloc::boxed::Box<RawValue> {
        serde_json::from_str(text).expect("valid JSON")
    }

    #[test]
    fn secrets_are_objects_of_at_most_64_kib_compact_json() {
        let at_limit = object_of_len(limits::MAX_SECRET_BYTES);
        assert_eq!(compact_json_len(&at_limit), 65536);
        let bytes = validate_secret(&raw(&at_limit)).expect("64 KiB is allowed");
        assert_eq!(bytes.len(), 65536);
        assert!(matches!(
            validate_secret(&raw(&object_of_len(65537))),
            Err(ValidationError::TooLong {
                max: 65536,
                actual: 65537,
                unit: Unit::JsonBytes
            })
        ));
        for not_object in [json!("token"), json!(["a"]), json!(null), json!(1)] {
            assert!(matches!(
                validate_secret(&raw(&not_object)),
                Err(ValidationError::NotAnObject)
            ));
        }
    }

    #[test]
    fn secrets_are_serialized_compactly_and_counted_in_utf8_bytes() {
        let secret = json!({ "accessToken": "é", "n": [1, 2] });
        let compact = validate_secret(&raw(&secret)).expect("valid");
        assert_eq!(compact.as_str(), r#"{"accessToken":"é","n":[1,2]}"#);
        assert_eq!(compact_json_len(&secret), compact.len());
    }

    /// Issue 11 item 6: a secret is sealed with every number's digits as
    /// sent (parsing into `Value` turned these into other digits), and the
    /// limit counts that compact text.
    #[test]
    fn secret_numbers_keep_the_digits_they_were_sent_with() {
        for sent in [
            "123456789012345678901234567890",
            "0.1000000000000000055511151231257827",
            "2.5e33",
            "-2.5E33",
            "8.533e+68",
            "9.9538452227e-280",
            "1e23",
            "1.0",
            "-0",
        ] {
            let body = alloc::format!("{{ \"n\" : {sent} }}");
            let compact = validate_secret(&raw_text(&body)).expect("valid secret");
            assert_eq!(
                compact.as_str(),
                alloc::format!(r#"{{"n":{sent}}}"#),
                "{sent}"
            );
        }
        // The digits are kept, so they are what the limit counts; a number
        // beyond a double's range is refused, not stored as something else.
        let too_large = alloc::format!("{{\"n\": {}}}", repeat('7', 400));
        assert!(matches!(
            validate_secret(&raw_text(&too_large)),
            Err(ValidationError::UnsupportedJson)
        ));
        let long = repeat('7', 300);
        let compact =
            validate_secret(&raw_text(&alloc::format!("{{ \"n\": {long} }}"))).expect("fits");
        assert_eq!(compact.len(), 300 + 6);
    }

    #[test]
    fn repeated_member_names_are_refused_at_any_depth() {
        for text in [r#"{"a":1,"a":1}"#, r#"{"a":{"b":[{"c":1,"\u0063":2}]}}"#] {
            assert_eq!(
                validate_secret(&raw_text(text)).map(drop),
                Err(ValidationError::DuplicateMember),
                "{text}"
            );
            assert_eq!(
                validate_metadata(&raw_text(text)).map(drop),
                Err(ValidationError::DuplicateMember),
                "{text}"
            );
        }
        assert_eq!(
            validate_secret(&raw_text(r#"{"n":1e999}"#)).map(drop),
            Err(ValidationError::UnsupportedJson)
        );
    }

    #[test]
    fn metadata_is_an_object_of_at_most_16_kib() {
        let at_limit = object_of_len(16 * 1024);
        assert_eq!(validate_metadata(&raw(&at_limit)), Ok(at_limit.to_string()));
        assert!(matches!(
            validate_metadata(&raw(&object_of_len(16 * 1024 + 1))),
            Err(ValidationError::TooLong { max: 16384, .. })
        ));
        assert!(matches!(
            validate_metadata(&raw(&json!([]))),
            Err(ValidationError::NotAnObject)
        ));
        assert_eq!(
            validate_metadata(&raw_text(r#"{ "big" : 123456789012345678901234567890 }"#)),
            Ok(r#"{"big":123456789012345678901234567890}"#.to_string())
        );
    }

    #[test]
    fn bodies_are_at_most_80_kib() {
        assert_eq!(validate_body_size(80 * 1024), Ok(()));
        assert!(matches!(
            validate_body_size(80 * 1024 + 1),
            Err(ValidationError::TooLong {
                max: 81920,
                actual: 81921,
                unit: Unit::Bytes
            })
        ));
    }

    fn check(query: Option<&str>, expected: Result<u32, ()>) {
        let got = parse_page_limit(query);
        match expected {
            Ok(limit) => assert_eq!(got, Ok(limit), "{query:?}"),
            Err(()) => assert!(
                matches!(got, Err(ValidationError::OutOfRange { min: 1, max: 100 })),
                "{query:?}"
            ),
        }
    }

    #[test]
    fn page_limits_are_one_to_a_hundred_defaulting_to_twenty() {
        check(None, Ok(20));
        check(Some("1"), Ok(1));
        check(Some("100"), Ok(100));
        check(Some("007"), Ok(7));
        for bad in [
            "0",
            "101",
            "",
            "-1",
            "+5",
            "1.5",
            "ten",
            " 5",
            "99999999999999999999",
        ] {
            check(Some(bad), Err(()));
        }
    }

    #[test]
    fn auth_types_round_trip_and_refuse_others() {
        for (kind, name) in AuthType::ALL.into_iter().zip(AuthType::NAMES) {
            assert_eq!(kind.as_str(), *name);
            assert_eq!(kind.to_string(), *name);
            assert_eq!(AuthType::parse(name), Ok(kind));
        }
        assert_eq!(AuthType::DEFAULT, AuthType::Custom);
        assert!(matches!(
            AuthType::parse("OAuth2_Bearer"),
            Err(ValidationError::UnknownValue { .. })
        ));
    }

    #[test]
    fn messages_are_lowercase_instructions_without_a_period() {
        let cases = [
            (
                ValidationError::TooLong { max: 200, actual: 201, unit: Unit::Characters },
                "must be at most 200 characters (got 201)",
            ),
            (
                ValidationError::TooLong { max: 65536, actual: 70000, unit: Unit::JsonBytes },
                "must be at most 65536 bytes as compact JSON (got 70000)",
            ),
            (
                ValidationError::UnknownValue { allowed: AuthType::NAMES },
                "must be one of oauth2_bearer, oauth2_client_credentials, api_key, basic, bearer, custom",
            ),
            (ValidationError::OutOfRange { min: 1, max: 100 }, "must be an integer from 1 to 100"),
            (
                ValidationError::ItemTooLong { index: 3, max: 200, actual: 201 },
                "item 3 must be at most 200 characters (got 201)",
            ),
            (ValidationError::NotAnObject, "must be a JSON object"),
            (
                ValidationError::DuplicateMember,
                "must not repeat a member name in any of its objects",
            ),
            (ValidationError::Blank, "must not be blank"),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }
}
