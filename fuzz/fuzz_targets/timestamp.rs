//! `Timestamp`: RFC 3339 parsing of arbitrary text, and milliseconds from
//! arbitrary integers. Whatever is accepted must lie in 0000–9999 and
//! render to RFC 3339 text that parses back to the same instant.
#![no_main]

use coffer_core::{Timestamp, TimestampError};
use libfuzzer_sys::fuzz_target;

fn check_renders(at: Timestamp) {
    assert!(Timestamp::MIN <= at && at <= Timestamp::MAX, "{at:?}");
    let text = at.to_rfc3339();
    // `YYYY-MM-DDTHH:MM:SS.mmmZ`: always 24 characters, always UTC.
    assert_eq!(text.len(), 24, "{text}");
    assert!(text.ends_with('Z'), "{text}");
    assert_eq!(Timestamp::parse_rfc3339(&text), Ok(at), "{text}");
    assert_eq!(Timestamp::from_unix_millis(at.as_unix_millis()), Ok(at));
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = core::str::from_utf8(data) {
        match Timestamp::parse_rfc3339(text) {
            Ok(at) => check_renders(at),
            Err(error) => {
                assert!(matches!(
                    error,
                    TimestampError::NotRfc3339 | TimestampError::OutOfRange
                ));
                let _ = error.to_string();
            }
        }
    }
    if let Some(bytes) = data.first_chunk::<8>() {
        let millis = i64::from_be_bytes(*bytes);
        match Timestamp::from_unix_millis(millis) {
            Ok(at) => check_renders(at),
            Err(error) => assert_eq!(error, TimestampError::OutOfRange),
        }
    }
});
