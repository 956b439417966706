//! Assertions on replies: the two surfaces' error envelopes exactly, the
//! contract's timestamp form, the connection surface's `x-api-version`, and
//! that no secret reached the server's log.
use serde_json::{json, Value};

use crate::{client::Reply, fixtures::CONNECTION_API_VERSION, harness::Server};

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp in the
/// contract's one form, `YYYY-MM-DDTHH:MM:SS.mmmZ`; `None` for any other
/// form (no offset, no other precision, no lowercase `t`/`z`).
pub fn parse_timestamp_ms(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() != 24 {
        return None;
    }
    for (position, &byte) in bytes.iter().enumerate() {
        let expected = match position {
            4 | 7 => b'-',
            10 => b'T',
            13 | 16 => b':',
            19 => b'.',
            23 => b'Z',
            _ => {
                if !byte.is_ascii_digit() {
                    return None;
                }
                continue;
            }
        };
        if byte != expected {
            return None;
        }
    }
    let number = |range: core::ops::Range<usize>| -> i64 {
        text[range].parse().expect("digits checked above")
    };
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let (hour, minute, second, milli) = (
        number(11..13),
        number(14..16),
        number(17..19),
        number(20..23),
    );
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    // Days from civil (H. Hinnant's algorithm), proleptic Gregorian.
    let shifted_year = if month <= 2 { year - 1 } else { year };
    let era = shifted_year.div_euclid(400);
    let year_of_era = shifted_year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some((((days * 24 + hour) * 60 + minute) * 60 + second) * 1000 + milli)
}

/// Asserts `value` is a timestamp in the contract's form and returns it in
/// Unix milliseconds.
pub fn assert_timestamp(value: &Value, what: &str) -> i64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what}: expected a timestamp string, got {value}"));
    parse_timestamp_ms(text)
        .unwrap_or_else(|| panic!("{what}: {text:?} is not RFC 3339 with milliseconds and Z"))
}

/// Asserts the credentials surface's error envelope, exactly:
/// `{"success": false, "error": {"code", "message", "details"}, "timestamp"}`
/// with `status` and `code`, a non-empty message and details, and a JSON
/// content type.
pub fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "status of {}", reply.text);
    let body = &reply.body;
    let object = body
        .as_object()
        .unwrap_or_else(|| panic!("error body is not a JSON object: {}", reply.text));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["error", "success", "timestamp"], "{}", reply.text);
    assert_eq!(body["success"], false, "{}", reply.text);
    let error = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("error is not an object: {}", reply.text));
    let mut keys: Vec<&str> = error.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "details", "message"], "{}", reply.text);
    assert_eq!(body["error"]["code"], code, "{}", reply.text);
    for field in ["message", "details"] {
        let text = body["error"][field]
            .as_str()
            .unwrap_or_else(|| panic!("error.{field} is not a string: {}", reply.text));
        assert!(!text.is_empty(), "error.{field} is empty: {}", reply.text);
    }
    assert_timestamp(&body["timestamp"], "error timestamp");
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "content-type {content_type:?}"
    );
}

/// Asserts a 400 `INVALID_PARAMETERS` whose details name `field`.
pub fn assert_invalid(reply: &Reply, field: &str) {
    assert_error(reply, 400, "INVALID_PARAMETERS");
    let details = reply.body["error"]["details"].as_str().unwrap_or_default();
    assert!(
        details.contains(field),
        "details {details:?} should name {field:?}"
    );
}

/// Asserts that none of `secrets` appears in everything `server` logged,
/// once the log holds the line of the last request made to it (lines
/// arrive asynchronously). Fails when that line never comes: a log without
/// request lines (a level that hides them) would hide leaks too.
pub fn assert_not_logged(server: &Server, secrets: &[&str]) {
    let log = server.log_through_last_request();
    for secret in secrets {
        assert!(!log.contains(secret), "the server log contains {secret:?}");
    }
}

/// Asserts a connection-surface reply carries `x-api-version: 2024-03-27`.
pub fn assert_api_version(reply: &Reply) {
    assert_eq!(
        reply.header("x-api-version"),
        Some(CONNECTION_API_VERSION),
        "x-api-version of a {} reply: {}",
        reply.status,
        reply.text
    );
}

/// Asserts a connection-surface error exactly: `status`, the body
/// `{"error": {"code": status, "message": message}}` and nothing else, a
/// JSON content type and the served `x-api-version`.
pub fn assert_connection_error(reply: &Reply, status: u16, message: &str) {
    assert_eq!(reply.status, status, "status of {}", reply.text);
    assert_eq!(
        reply.body,
        json!({"error": {"code": status, "message": message}}),
        "body of a {status}"
    );
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "content-type {content_type:?}"
    );
    assert_api_version(reply);
}

/// Asserts a connection-surface 422 exactly: `{"error": {"code": 422,
/// "message", "loc", "msg", "type"}}` with `loc` as given and non-empty
/// strings for the rest, plus the served `x-api-version`.
pub fn assert_unprocessable(reply: &Reply, loc: [&str; 2]) {
    assert_eq!(reply.status, 422, "status of {}", reply.text);
    let object = reply.body.as_object().unwrap_or_else(|| {
        panic!("422 body is not a JSON object: {}", reply.text);
    });
    assert_eq!(
        object.keys().collect::<Vec<_>>(),
        ["error"],
        "{}",
        reply.text
    );
    let error = reply.body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("error is not an object: {}", reply.text));
    let mut keys: Vec<&str> = error.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["code", "loc", "message", "msg", "type"],
        "{}",
        reply.text
    );
    assert_eq!(reply.body["error"]["code"], 422, "{}", reply.text);
    assert_eq!(reply.body["error"]["loc"], json!(loc), "{}", reply.text);
    for field in ["message", "msg", "type"] {
        let text = reply.body["error"][field].as_str().unwrap_or_default();
        assert!(!text.is_empty(), "error.{field} is empty: {}", reply.text);
    }
    assert_api_version(reply);
}
