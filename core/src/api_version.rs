//! The connection surface's `x-api-version` header.
use core::fmt;

/// A version of the connection surface, named by the date it was fixed.
///
/// The header is absent → [`ApiVersion::DEFAULT`]; a `YYYY-MM-DD` calendar
/// date we serve → that version; a well-formed date we do not serve →
/// [`ApiVersionError::Unsupported`] (400); anything else →
/// [`ApiVersionError::Malformed`] (422). The contract distinguishes the two
/// so a client can tell a typo from asking for a version that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ApiVersion {
    /// `2024-03-27`, the seed document's version and the default.
    V2024_03_27,
}

/// Why an `x-api-version` value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiVersionError {
    /// Not a `YYYY-MM-DD` calendar date (the worker answers 422).
    Malformed,
    /// A date, but not a version this server serves (the worker answers 400).
    Unsupported,
}

impl fmt::Display for ApiVersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => {
                f.write_str("must be a date in the form YYYY-MM-DD, such as 2024-03-27")
            }
            Self::Unsupported => {
                f.write_str("is not a supported version; supported versions: ")?;
                let mut separator = "";
                for version in ApiVersion::SUPPORTED {
                    f.write_str(separator)?;
                    f.write_str(version.as_str())?;
                    separator = ", ";
                }
                Ok(())
            }
        }
    }
}

impl ApiVersion {
    /// The version served when the request has no `x-api-version`.
    pub const DEFAULT: ApiVersion = ApiVersion::V2024_03_27;

    /// Every version served, oldest first.
    pub const SUPPORTED: &'static [ApiVersion] = &[ApiVersion::V2024_03_27];

    /// Parses the header's value; `None` (no header) is the default.
    ///
    /// # Errors
    ///
    /// [`ApiVersionError::Malformed`] unless the value is exactly ten
    /// characters `YYYY-MM-DD` naming a real calendar date (so `2024-3-27`,
    /// `2024-02-30` and surrounding spaces are malformed);
    /// [`ApiVersionError::Unsupported`] for a real date not in
    /// [`ApiVersion::SUPPORTED`].
    pub fn parse(header: Option<&str>) -> Result<Self, ApiVersionError> {
        let Some(text) = header else {
            return Ok(Self::DEFAULT);
        };
        if !is_calendar_date(text) {
            return Err(ApiVersionError::Malformed);
        }
        Self::SUPPORTED
            .iter()
            .copied()
            .find(|version| version.as_str() == text)
            .ok_or(ApiVersionError::Unsupported)
    }

    /// The version's date, as sent back in responses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2024_03_27 => "2024-03-27",
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `text` is exactly `YYYY-MM-DD` and a real date of the proleptic
/// Gregorian calendar. The shape is checked by hand because chrono's `%Y`
/// and `%m` accept signs and unpadded numbers.
fn is_calendar_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shape_ok {
        return false;
    }
    let number = |range: core::ops::Range<usize>| {
        bytes[range]
            .iter()
            .fold(0_u32, |n, b| n * 10 + u32::from(b - b'0'))
    };
    let (Ok(year), month, day) = (i32::try_from(number(0..4)), number(5..7), number(8..10)) else {
        return false;
    };
    chrono::NaiveDate::from_ymd_opt(year, month, day).is_some()
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use alloc::string::ToString;

    use super::*;

    fn check(header: Option<&str>, expected: Result<ApiVersion, ApiVersionError>) {
        assert_eq!(ApiVersion::parse(header), expected, "{header:?}");
    }

    #[test]
    fn headers_parse_to_a_version_or_say_which_failure() {
        check(None, Ok(ApiVersion::V2024_03_27));
        check(Some("2024-03-27"), Ok(ApiVersion::V2024_03_27));
        for unsupported in [
            "2024-03-28",
            "2023-01-01",
            "2000-02-29",
            "9999-12-31",
            "0000-01-01",
        ] {
            check(Some(unsupported), Err(ApiVersionError::Unsupported));
        }
        for malformed in [
            "",
            "latest",
            "2024-3-27",
            "2024-03-27 ",
            " 2024-03-27",
            "2024/03/27",
            "2024-02-30",
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-03-00",
            "+024-03-27",
            "2024-03-27T00:00:00Z",
            "２０２４-03-27",
        ] {
            check(Some(malformed), Err(ApiVersionError::Malformed));
        }
    }

    #[test]
    fn versions_render_their_date_and_errors_read_as_instructions() {
        assert_eq!(ApiVersion::DEFAULT.to_string(), "2024-03-27");
        assert_eq!(
            ApiVersionError::Malformed.to_string(),
            "must be a date in the form YYYY-MM-DD, such as 2024-03-27"
        );
        assert_eq!(
            ApiVersionError::Unsupported.to_string(),
            "is not a supported version; supported versions: 2024-03-27"
        );
    }
}
