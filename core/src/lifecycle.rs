//! A record's status over time: expiry, allowed changes, and whether its
//! secret may be served. `now` is always a parameter.
use alloc::string::String;
use core::fmt;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::validate::ValidationError;

/// An instant, in whole milliseconds since the Unix epoch (UTC).
///
/// Limited to the years 0000–9999 so that every value has an RFC 3339
/// rendering (RFC 3339 §5.6 has four-digit years); the worker builds one
/// from the runtime's `Date.now()` and from stored columns.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Why a timestamp was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimestampError {
    /// Not an RFC 3339 date-time with a time zone offset.
    NotRfc3339,
    /// Before 0000-01-01T00:00:00Z or after 9999-12-31T23:59:59.999Z.
    OutOfRange,
}

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRfc3339 => f.write_str(
                "must be an RFC 3339 date-time with an offset, such as 2025-07-10T13:15:00.000Z",
            ),
            Self::OutOfRange => f.write_str("must be between the years 0000 and 9999"),
        }
    }
}

impl Timestamp {
    /// 0000-01-01T00:00:00.000Z.
    pub const MIN: Timestamp = Timestamp(-62_167_219_200_000);
    /// 9999-12-31T23:59:59.999Z.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999);

    /// Wraps milliseconds since the Unix epoch.
    ///
    /// # Errors
    ///
    /// [`TimestampError::OutOfRange`] outside [`Timestamp::MIN`]..=[`Timestamp::MAX`].
    pub fn from_unix_millis(millis: i64) -> Result<Self, TimestampError> {
        if (Self::MIN.0..=Self::MAX.0).contains(&millis) {
            Ok(Self(millis))
        } else {
            Err(TimestampError::OutOfRange)
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn as_unix_millis(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 date-time (for `expiresAt`). Any offset is
    /// accepted and converted to UTC; digits beyond milliseconds are
    /// truncated, because the store keeps milliseconds.
    ///
    /// # Errors
    ///
    /// [`TimestampError::NotRfc3339`] for anything chrono's RFC 3339 parser
    /// refuses (a missing offset included), [`TimestampError::OutOfRange`]
    /// for a date whose UTC instant falls outside the years 0000–9999.
    pub fn parse_rfc3339(input: &str) -> Result<Self, TimestampError> {
        let parsed = DateTime::parse_from_rfc3339(input).map_err(|_| TimestampError::NotRfc3339)?;
        Self::from_unix_millis(parsed.timestamp_millis())
    }

    /// The RFC 3339 rendering with milliseconds and `Z`, e.g.
    /// `2025-07-10T13:15:00.000Z`: the form every response uses.
    pub fn to_rfc3339(self) -> String {
        match DateTime::<Utc>::from_timestamp_millis(self.0) {
            Some(instant) => instant.to_rfc3339_opts(SecondsFormat::Millis, true),
            // Unreachable: the constructor keeps the value inside chrono's
            // range. Rendering the raw number beats panicking in a response.
            None => alloc::format!("{}", self.0),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

/// A record's status.
///
/// Stored values are `active`, `inactive` and `revoked`; `expired` is
/// derived from `expiresAt` by [`effective_status`] and is what responses
/// show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Usable.
    Active,
    /// Switched off by its owner; may be reactivated.
    Inactive,
    /// Past its `expiresAt`; the secret is still served (a refresh token
    /// must stay readable).
    Expired,
    /// Final: never reactivated, its secret never served again.
    Revoked,
}

impl Status {
    /// Every status, in the contract's order.
    pub const ALL: [Status; 4] = [
        Status::Active,
        Status::Inactive,
        Status::Expired,
        Status::Revoked,
    ];

    /// The contract's names, in the order of [`Status::ALL`] (for list
    /// filters).
    pub const NAMES: &'static [&'static str] = &["active", "inactive", "expired", "revoked"];

    /// The names a `PATCH` may set.
    pub const SETTABLE_NAMES: &'static [&'static str] = &["active", "inactive", "revoked"];

    /// Parses any of the four names (for the `status` list filter).
    ///
    /// # Errors
    ///
    /// [`ValidationError::UnknownValue`] listing [`Status::NAMES`].
    pub fn parse(name: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == name)
            .ok_or(ValidationError::UnknownValue {
                allowed: Self::NAMES,
            })
    }

    /// Parses a status a `PATCH` may set: `active`, `inactive` or `revoked`.
    ///
    /// # Errors
    ///
    /// [`ValidationError::UnknownValue`] listing [`Status::SETTABLE_NAMES`]
    /// (so `expired` is refused with the list of what may be sent instead).
    pub fn parse_settable(name: &str) -> Result<Self, ValidationError> {
        match Self::parse(name) {
            Ok(status) if status != Status::Expired => Ok(status),
            _ => Err(ValidationError::UnknownValue {
                allowed: Self::SETTABLE_NAMES,
            }),
        }
    }

    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `expires_at` has passed at `now` (the contract's `isExpired`).
///
/// Expiry is inclusive, as with JWT `exp` (RFC 7519 §4.1.4: "on or after"):
/// at the instant itself the record is expired.
pub fn is_expired(expires_at: Option<Timestamp>, now: Timestamp) -> bool {
    expires_at.is_some_and(|at| now >= at)
}

/// The status a response shows: `expired` once `expires_at` has passed,
/// unless the stored status is `revoked` or `inactive`, which take
/// precedence (an owner's decision outranks the calendar).
pub fn effective_status(stored: Status, expires_at: Option<Timestamp>, now: Timestamp) -> Status {
    match stored {
        Status::Revoked | Status::Inactive => stored,
        Status::Active | Status::Expired if is_expired(expires_at, now) => Status::Expired,
        // `expired` is never stored by this crate's rules; if a row says so
        // but the expiry was cleared, the record is usable again.
        Status::Active | Status::Expired => Status::Active,
    }
}

/// Why a status change was refused (the worker answers 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransitionError {
    /// The record is revoked, which is final.
    FromRevoked {
        /// The status asked for.
        to: Status,
    },
    /// `expired` was asked for; it follows from `expiresAt` alone.
    ToExpired,
}

impl fmt::Display for TransitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FromRevoked { to } => {
                write!(
                    f,
                    "a revoked credential cannot become {to}: revocation is final"
                )
            }
            Self::ToExpired => {
                f.write_str("status cannot be set to expired; set expiresAt instead")
            }
        }
    }
}

/// Checks a `PATCH` of `status` from the stored status `from` to `to`.
/// Setting the status it already has is allowed (a `PATCH` is idempotent),
/// including `revoked` → `revoked`.
///
/// # Errors
///
/// [`TransitionError::ToExpired`] when `to` is `expired`;
/// [`TransitionError::FromRevoked`] when `from` is `revoked` and `to` is not.
pub fn check_transition(from: Status, to: Status) -> Result<(), TransitionError> {
    match (from, to) {
        (_, Status::Expired) => Err(TransitionError::ToExpired),
        (Status::Revoked, Status::Revoked) => Ok(()),
        (Status::Revoked, to) => Err(TransitionError::FromRevoked { to }),
        _ => Ok(()),
    }
}

/// A decrypted read of a record that is not active (the worker answers 409).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotActive {
    /// The record's effective status: `inactive` or `revoked`.
    pub status: Status,
}

impl fmt::Display for NotActive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the credential is {} and its secret is not served",
            self.status
        )
    }
}

/// Whether a record with this effective status may have its secret served:
/// `active` and `expired` yes ("an expired record's secret is still
/// served"), `inactive` and `revoked` no.
///
/// # Errors
///
/// [`NotActive`] carrying the status, for `inactive` and `revoked`.
pub fn check_secret_servable(effective: Status) -> Result<(), NotActive> {
    match effective {
        Status::Active | Status::Expired => Ok(()),
        Status::Inactive | Status::Revoked => Err(NotActive { status: effective }),
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use alloc::string::ToString;

    use super::*;

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_unix_millis(millis).expect("in range")
    }

    #[test]
    fn timestamps_render_rfc3339_with_milliseconds_and_z() {
        assert_eq!(
            at(1_752_153_300_000).to_string(),
            "2025-07-10T13:15:00.000Z"
        );
        assert_eq!(at(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(-1).to_rfc3339(), "1969-12-31T23:59:59.999Z");
        assert_eq!(Timestamp::MIN.to_rfc3339(), "0000-01-01T00:00:00.000Z");
        assert_eq!(Timestamp::MAX.to_rfc3339(), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            alloc::format!("{:?}", at(5)),
            "Timestamp(1970-01-01T00:00:00.005Z)"
        );
    }

    #[test]
    fn timestamps_outside_four_digit_years_are_refused() {
        for millis in [
            Timestamp::MIN.0 - 1,
            Timestamp::MAX.0 + 1,
            i64::MIN,
            i64::MAX,
        ] {
            assert!(matches!(
                Timestamp::from_unix_millis(millis),
                Err(TimestampError::OutOfRange)
            ));
        }
    }

    /// The worker stores `as_unix_millis` in D1 and rebuilds timestamps
    /// from it with `from_unix_millis`: every value in range must come back
    /// as the same number, and parsing must land on the right one.
    #[test]
    fn milliseconds_round_trip_through_a_timestamp() {
        for millis in [
            Timestamp::MIN.0,
            Timestamp::MIN.0 + 1,
            -1_752_153_300_123,
            -1,
            0,
            1,
            1_752_153_300_123,
            Timestamp::MAX.0 - 1,
            Timestamp::MAX.0,
        ] {
            let stamp = Timestamp::from_unix_millis(millis).expect("in range");
            assert_eq!(stamp.as_unix_millis(), millis);
        }
        let parsed = Timestamp::parse_rfc3339("2025-07-10T13:15:00.123Z").expect("valid");
        assert_eq!(parsed.as_unix_millis(), 1_752_153_300_123);
        assert_eq!(Timestamp::MIN.as_unix_millis(), -62_167_219_200_000);
        assert_eq!(Timestamp::MAX.as_unix_millis(), 253_402_300_799_999);
    }

    /// The credentials surface answers a bad `expiresAt` with 400 and this
    /// text as the field's message.
    #[test]
    fn timestamp_errors_say_what_is_expected() {
        assert_eq!(
            TimestampError::NotRfc3339.to_string(),
            "must be an RFC 3339 date-time with an offset, such as 2025-07-10T13:15:00.000Z"
        );
        assert_eq!(
            TimestampError::OutOfRange.to_string(),
            "must be between the years 0000 and 9999"
        );
    }

    fn check(input: &str, expected: Result<&str, TimestampError>) {
        let got = Timestamp::parse_rfc3339(input).map(Timestamp::to_rfc3339);
        assert_eq!(got.as_deref().map_err(|e| *e), expected, "{input:?}");
    }

    #[test]
    fn rfc3339_input_parses_to_utc_milliseconds() {
        check("2025-07-10T13:15:00Z", Ok("2025-07-10T13:15:00.000Z"));
        check("2025-07-10T13:15:00.000Z", Ok("2025-07-10T13:15:00.000Z"));
        check("2025-07-10t13:15:00.5z", Ok("2025-07-10T13:15:00.500Z"));
        check("2025-07-10T15:15:00+02:00", Ok("2025-07-10T13:15:00.000Z"));
        check(
            "2025-07-10T13:15:00.123456789Z",
            Ok("2025-07-10T13:15:00.123Z"),
        );
        check("0000-01-01T01:00:00+02:00", Err(TimestampError::OutOfRange));
        for bad in [
            "",
            "2025-07-10",
            "2025-07-10T13:15:00",
            "2025-07-10 13:15:00Z extra",
            "2025-02-30T00:00:00Z",
            "1752153300000",
            "tomorrow",
        ] {
            check(bad, Err(TimestampError::NotRfc3339));
        }
    }

    #[test]
    fn expiry_is_inclusive_and_optional() {
        assert!(!is_expired(None, at(i64::from(i32::MAX))));
        assert!(!is_expired(Some(at(1000)), at(999)));
        assert!(is_expired(Some(at(1000)), at(1000)));
        assert!(is_expired(Some(at(1000)), at(1001)));
    }

    #[test]
    fn effective_status_derives_expired_unless_revoked_or_inactive() {
        let past = Some(at(1000));
        let future = Some(at(3000));
        let now = at(2000);
        let cases = [
            (Status::Active, None, Status::Active),
            (Status::Active, future, Status::Active),
            (Status::Active, past, Status::Expired),
            (Status::Inactive, past, Status::Inactive),
            (Status::Inactive, future, Status::Inactive),
            (Status::Revoked, past, Status::Revoked),
            (Status::Revoked, None, Status::Revoked),
            (Status::Expired, past, Status::Expired),
            (Status::Expired, None, Status::Active),
        ];
        for (stored, expires_at, expected) in cases {
            assert_eq!(
                effective_status(stored, expires_at, now),
                expected,
                "{stored} {expires_at:?}"
            );
        }
    }

    #[test]
    fn revoked_is_final_and_expired_cannot_be_set() {
        use Status::*;
        for from in Status::ALL {
            for to in Status::ALL {
                let got = check_transition(from, to);
                match (from, to) {
                    (_, Expired) => assert!(matches!(got, Err(TransitionError::ToExpired))),
                    (Revoked, Revoked) => assert_eq!(got, Ok(())),
                    (Revoked, _) => {
                        assert!(
                            matches!(got, Err(TransitionError::FromRevoked { to: t }) if t == to)
                        )
                    }
                    _ => assert_eq!(got, Ok(()), "{from} -> {to}"),
                }
            }
        }
    }

    #[test]
    fn secrets_are_served_for_active_and_expired_only() {
        assert_eq!(check_secret_servable(Status::Active), Ok(()));
        assert_eq!(check_secret_servable(Status::Expired), Ok(()));
        assert!(matches!(
            check_secret_servable(Status::Inactive),
            Err(NotActive {
                status: Status::Inactive
            })
        ));
        assert!(matches!(
            check_secret_servable(Status::Revoked),
            Err(NotActive {
                status: Status::Revoked
            })
        ));
    }

    #[test]
    fn statuses_parse_and_patch_refuses_expired() {
        for (status, name) in Status::ALL.into_iter().zip(Status::NAMES) {
            assert_eq!(Status::parse(name), Ok(status));
            assert_eq!(status.to_string(), *name);
        }
        assert_eq!(Status::parse_settable("revoked"), Ok(Status::Revoked));
        assert!(matches!(
            Status::parse_settable("expired"),
            Err(ValidationError::UnknownValue { allowed }) if allowed == Status::SETTABLE_NAMES
        ));
        assert!(matches!(
            Status::parse("Active"),
            Err(ValidationError::UnknownValue { .. })
        ));
        assert_eq!(
            TransitionError::FromRevoked { to: Status::Active }.to_string(),
            "a revoked credential cannot become active: revocation is final"
        );
        assert_eq!(
            NotActive {
                status: Status::Revoked
            }
            .to_string(),
            "the credential is revoked and its secret is not served"
        );
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #[test]
            fn rendering_then_parsing_is_the_identity(
                millis in Timestamp::MIN.as_unix_millis()..=Timestamp::MAX.as_unix_millis()
            ) {
                let stamp = Timestamp::from_unix_millis(millis).expect("in range");
                prop_assert_eq!(Timestamp::parse_rfc3339(&stamp.to_rfc3339()), Ok(stamp));
            }

            #[test]
            fn parsing_never_panics(input in "\\PC{0,40}") {
                let _ = Timestamp::parse_rfc3339(&input);
            }
        }
    }
}
