//! Request bodies: arbitrary bytes through serde_json into the validators
//! the worker applies to create and patch bodies (`worker/src/routes/body.rs`).
//! No panic; lengths agree with serialization; the compact secret that
//! `validate_secret` returns (the text that is sealed) parses back to the
//! value that was validated.
#![no_main]

use coffer_core::{
    compact_json_len, limits, validate_body_size, validate_description, validate_metadata,
    validate_name, validate_scopes, validate_secret, AuthType, IntegrationId, Status, Timestamp,
    ValidationError,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn check_json(value: &Value) {
    let text = serde_json::to_string(value).expect("a Value serializes");
    assert_eq!(compact_json_len(value), text.len());

    match validate_secret(value) {
        Ok(compact) => {
            assert!(value.is_object());
            assert_eq!(compact.as_str(), text);
            assert!(compact.len() <= limits::MAX_SECRET_BYTES);
            let reparsed: Value =
                serde_json::from_str(&compact).expect("the compact secret parses");
            assert_eq!(&reparsed, value, "{}", compact.as_str());
        }
        Err(ValidationError::NotAnObject) => assert!(!value.is_object()),
        Err(ValidationError::TooLong { max, actual, .. }) => {
            assert_eq!((max, actual), (limits::MAX_SECRET_BYTES, text.len()));
            assert!(actual > max);
        }
        Err(other) => panic!("unexpected secret error {other:?}"),
    }
    match validate_metadata(value) {
        Ok(()) => assert!(value.is_object() && text.len() <= limits::MAX_METADATA_BYTES),
        Err(error) => {
            assert!(!value.is_object() || text.len() > limits::MAX_METADATA_BYTES);
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

fn check_field(field: &str, value: &Value) {
    check_json(value);
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
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    check_json(&body);
    if let Value::Object(fields) = &body {
        for (field, value) in fields {
            check_field(field, value);
        }
    }
});
