//! A record's version: the counter behind `ETag`, `If-Match` and every
//! compare-and-set write.
use core::fmt;

/// A record's version: [`Version::FIRST`] on create, [`Version::next`] on
/// every change. A secret's version is the record version it was written at.
///
/// At most [`Version::MAX`], 2^53 − 1: a version travels as a JSON number
/// (the `version` field) and through D1, whose JavaScript API carries every
/// integer as an IEEE 754 double, and only integers up to 2^53 − 1 are
/// exact there (I-JSON, RFC 7493 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(u64);

/// Why a version was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VersionError {
    /// Zero, or above [`Version::MAX`].
    OutOfRange,
}

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange => f.write_str("a version is between 1 and 2^53 - 1"),
        }
    }
}

impl Version {
    /// A new record's version.
    pub const FIRST: Version = Version(1);
    /// The largest version, 2^53 − 1 (`Number.MAX_SAFE_INTEGER`).
    pub const MAX: Version = Version((1 << 53) - 1);

    /// Wraps a stored version.
    ///
    /// # Errors
    ///
    /// [`VersionError::OutOfRange`] for 0 and above [`Version::MAX`].
    pub fn new(value: u64) -> Result<Self, VersionError> {
        if (Self::FIRST.0..=Self::MAX.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(VersionError::OutOfRange)
        }
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The version after this one.
    ///
    /// # Errors
    ///
    /// [`VersionError::OutOfRange`] after [`Version::MAX`].
    pub fn next(self) -> Result<Self, VersionError> {
        Self::new(self.0 + 1)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use alloc::string::ToString as _;

    use super::{Version, VersionError};

    fn check(value: u64, expected: Option<u64>) {
        assert_eq!(
            Version::new(value).ok().map(Version::get),
            expected,
            "{value}"
        );
    }

    #[test]
    fn versions_run_from_one_to_the_largest_exact_double() {
        check(0, None);
        check(1, Some(1));
        check(2, Some(2));
        check(9_007_199_254_740_990, Some(9_007_199_254_740_990));
        check(9_007_199_254_740_991, Some(9_007_199_254_740_991));
        check(9_007_199_254_740_992, None);
        check(u64::MAX, None);
        assert_eq!(Version::MAX.get(), 9_007_199_254_740_991);
        assert_eq!(Version::FIRST.get(), 1);
        assert_eq!(Version::new(0), Err(VersionError::OutOfRange));
    }

    #[test]
    fn next_counts_up_and_stops_at_the_largest() {
        assert_eq!(Version::FIRST.next().map(Version::get), Ok(2));
        let before_max = Version::new(Version::MAX.get() - 1).expect("in range");
        assert_eq!(before_max.next(), Ok(Version::MAX));
        assert_eq!(Version::MAX.next(), Err(VersionError::OutOfRange));
    }

    #[test]
    fn versions_render_as_their_number() {
        assert_eq!(Version::FIRST.to_string(), "1");
        assert_eq!(Version::MAX.to_string(), "9007199254740991");
        assert_eq!(
            VersionError::OutOfRange.to_string(),
            "a version is between 1 and 2^53 - 1"
        );
        assert!(Version::FIRST < Version::MAX);
    }
}
