//! Request bodies: arbitrary bytes through serde_json into the validators
//! the worker applies to create and patch bodies (`worker/src/routes/body.rs`).
//! No panic; lengths agree with serialization; the compact secret that
//! `validate_secret` returns (the text that is sealed) is the input without
//! insignificant whitespace: it parses back to the same value, keeps every
//! number's text, and has no repeated member name.
#![no_main]

use coffer_core::{
    compact_json_len, limits, validate_body_size, validate_description, validate_metadata,
    validate_name, validate_scopes, validate_secret, AuthType, IntegrationId, Status, Timestamp,
    ValidationError,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{value::RawValue, Value};

/// The number tokens of JSON text, in order (outside strings, a number is
/// a maximal run of `-+.0-9eE`).
fn numbers(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let (mut at, mut in_string, mut escaped) = (0, false, false);
    while at < bytes.len() {
        let byte = bytes[at];
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            at += 1;
        } else if byte == b'"' {
            in_string = true;
            at += 1;
        } else if byte == b'-' || byte.is_ascii_digit() {
            let start = at;
            while at < bytes.len()
                && matches!(bytes[at], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
            {
                at += 1;
            }
            found.push(&text[start..at]);
        } else {
            at += 1;
        }
    }
    found
}

fn check_json(raw: &RawValue, value: &Value) {
    let text = serde_json::to_string(value).expect("a Value serializes");
    assert_eq!(compact_json_len(value), text.len());

    match validate_secret(raw) {
        Ok(compact) => {
            assert!(value.is_object());
            assert!(compact.len() <= limits::MAX_SECRET_BYTES);
            let reparsed: Value =
                serde_json::from_str(&compact).expect("the compact secret parses");
            assert_eq!(&reparsed, value, "{}", compact.as_str());
            assert_eq!(
                numbers(&compact),
                numbers(raw.get()),
                "{}",
                compact.as_str()
            );
            // Sealing the compact text again changes nothing.
            let again: &RawValue = serde_json::from_str(&compact).expect("parses");
            assert_eq!(
                validate_secret(again).expect("still valid").as_str(),
                compact.as_str()
            );
        }
        Err(ValidationError::NotAnObject) => assert!(!value.is_object()),
        Err(ValidationError::TooLong { max, actual, .. }) => {
            assert_eq!(max, limits::MAX_SECRET_BYTES);
            assert!(actual > max);
        }
        // serde_json's `Value` keeps the last of repeated names, so the value
        // is smaller than the text; a Value never has repeats.
        Err(ValidationError::DuplicateMember) => assert!(value.is_object() || value.is_array()),
        Err(other) => panic!("unexpected secret error {other:?}"),
    }
    match validate_metadata(raw) {
        Ok(compact) => {
            assert!(value.is_object() && compact.len() <= limits::MAX_METADATA_BYTES);
            let reparsed: Value = serde_json::from_str(&compact).expect("parses");
            assert_eq!(&reparsed, value);
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
}

fn check_text(text: &str) {
    let chars = text.chars().count();
    let name_ok = (1..=limits::MAX_NAME_CHARS).contains(&chars) && !text.trim().is_empty();
    assert_eq!(validate_name(text).is_ok(), name_ok, "{text:?}");
    assert_eq!(
        validate_description(text).is_ok(),
        chars <= limits::MAX_DESCRIPTION_CHARS
    );
    for error in [validate_name(text).err(), validate_description(text).err()]
        .into_iter()
        .flatten()
    {
        let _ = error.to_string();
    }
}

fn check_field(field: &str, raw: &RawValue, value: &Value) {
    check_json(raw, value);
    match value {
        Value::String(text) => {
            check_text(text);
            match field {
                "integrationId" => drop(IntegrationId::parse(text)),
                "authType" => drop(AuthType::parse(text)),
                "status" => drop(Status::parse_settable(text)),
                "expiresAt" => drop(Timestamp::parse_rfc3339(text)),
                _ => {}
            }
        }
        Value::Array(items) => {
            let scopes: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            if scopes.len() == items.len() {
                let fits = scopes.len() <= limits::MAX_SCOPES
                    && scopes
                        .iter()
                        .all(|scope| scope.chars().count() <= limits::MAX_SCOPE_CHARS);
                assert_eq!(validate_scopes(&scopes).is_ok(), fits);
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    assert_eq!(
        validate_body_size(data.len()).is_ok(),
        data.len() <= limits::MAX_BODY_BYTES
    );
    // Values out of a double's range, unpaired surrogates and deep nesting
    // are refused by both parses; skip what `Value` refuses.
    let (Ok(raw), Ok(body)) = (
        serde_json::from_slice::<&RawValue>(data),
        serde_json::from_slice::<Value>(data),
    ) else {
        return;
    };
    check_json(raw, &body);
    if let (Value::Object(values), Ok(raws)) = (
        &body,
        serde_json::from_str::<std::collections::BTreeMap<String, &RawValue>>(raw.get()),
    ) {
        for (field, value) in values {
            if let Some(raw) = raws.get(field) {
                check_field(field, raw, value);
            }
        }
    }
});
