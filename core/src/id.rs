//! Typed identifiers. Parsing is the only way to build them.
use alloc::string::String;
use core::fmt;

use uuid::Uuid;

/// Why an identifier was refused, in words a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// Not a UUID in its hyphenated 8-4-4-4-12 form.
    NotUuid,
    /// An integration id was empty.
    Empty,
    /// An integration id was longer than [`IntegrationId::MAX_LEN`].
    TooLong {
        /// The length found, in bytes (every accepted character is ASCII).
        len: usize,
    },
    /// An integration id started with `.`, `_` or `-`.
    InvalidStart,
    /// An integration id contained a character outside `[a-z0-9._-]`.
    InvalidCharacter {
        /// The offending character.
        found: char,
        /// Its position, counted in characters from 0.
        position: usize,
    },
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotUuid => {
                f.write_str("must be a UUID such as 550e8400-e29b-41d4-a716-446655440001")
            }
            Self::Empty => f.write_str("must not be empty"),
            Self::TooLong { len } => write!(
                f,
                "must be at most {} characters long (got {len})",
                IntegrationId::MAX_LEN
            ),
            Self::InvalidStart => f.write_str("must start with a letter or a digit"),
            Self::InvalidCharacter { found, position } => write!(
                f,
                "may contain only letters, digits, '.', '_' and '-' (found {found:?} at position {position})"
            ),
        }
    }
}

/// Parses the hyphenated form only (any letter case); braced, URN and
/// unhyphenated forms are refused so each id has one spelling.
fn parse_uuid(input: &str) -> Result<Uuid, IdError> {
    if input.len() != 36 {
        return Err(IdError::NotUuid);
    }
    Uuid::try_parse(input).map_err(|_| IdError::NotUuid)
}

/// A tenant: the owner of records and the unit of isolation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantId(Uuid);

impl TenantId {
    /// Parses a hyphenated UUID in any letter case.
    ///
    /// # Errors
    ///
    /// [`IdError::NotUuid`] when `input` is not a hyphenated UUID.
    pub fn parse(input: &str) -> Result<Self, IdError> {
        parse_uuid(input).map(Self)
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({self})")
    }
}

/// A credential (on the connection surface, a connection): one record.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CredentialId(Uuid);

impl CredentialId {
    /// The prefix of the credentials surface's rendering.
    pub const PREFIX: &'static str = "cred-";

    /// Parses `<uuid>` or `cred-<uuid>`, in any letter case.
    ///
    /// # Errors
    ///
    /// [`IdError::NotUuid`] when what follows the optional prefix is not a
    /// hyphenated UUID.
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let bare = match input.get(..Self::PREFIX.len()) {
            Some(head) if head.eq_ignore_ascii_case(Self::PREFIX) => &input[Self::PREFIX.len()..],
            _ => input,
        };
        parse_uuid(bare).map(Self)
    }

    /// Wraps a UUID the caller generated (the worker, from its RNG).
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// The credentials surface's rendering, `cred-<uuid>`.
    pub fn prefixed(&self) -> String {
        alloc::format!("{}{}", Self::PREFIX, self.0.hyphenated())
    }
}

/// Renders the bare lowercase UUID (the connection surface's form).
impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CredentialId({self})")
    }
}

/// An integration's slug, `^[a-z0-9][a-z0-9._-]{0,127}$`.
///
/// Accepted in any letter case and stored lowercase, like every id in the
/// contract ("ids are accepted in any letter case and rendered lowercase"),
/// so `ServiceNow-Prod` and `servicenow-prod` name the same integration.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IntegrationId(String);

impl IntegrationId {
    /// The longest accepted slug, in characters.
    pub const MAX_LEN: usize = 128;

    /// Parses a slug, lowercasing ASCII letters.
    ///
    /// # Errors
    ///
    /// [`IdError::Empty`], [`IdError::TooLong`], [`IdError::InvalidStart`]
    /// or [`IdError::InvalidCharacter`], whichever the input breaks first
    /// (checked in that order).
    pub fn parse(input: &str) -> Result<Self, IdError> {
        if input.is_empty() {
            return Err(IdError::Empty);
        }
        for (position, found) in input.chars().enumerate() {
            let allowed = found.is_ascii_alphanumeric() || matches!(found, '.' | '_' | '-');
            if !allowed {
                return Err(IdError::InvalidCharacter { found, position });
            }
        }
        // Every character is ASCII from here on, so bytes are characters.
        if input.len() > Self::MAX_LEN {
            return Err(IdError::TooLong { len: input.len() });
        }
        if !input.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(IdError::InvalidStart);
        }
        Ok(Self(input.to_ascii_lowercase()))
    }

    /// The slug, lowercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IntegrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IntegrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IntegrationId({})", self.0)
    }
}

/// A principal's role, ordered: a route that needs a role accepts it or
/// any higher one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads metadata.
    Viewer,
    /// Also reads decrypted secrets.
    User,
    /// Also creates and updates records.
    Editor,
    /// Also deletes records, manages shares and reads the audit log.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::User, Role::Editor, Role::Admin];

    /// Parses the contract's role names; any other string is `None` (a
    /// token may carry roles of other applications, which are ignored).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == name)
    }

    /// The contract's name of the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "integration_viewer",
            Self::User => "integration_user",
            Self::Editor => "integration_editor",
            Self::Admin => "integration_admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use alloc::{string::ToString, vec::Vec};

    use super::*;

    const UUID: &str = "550e8400-e29b-41d4-a716-446655440001";

    #[test]
    fn tenant_ids_parse_any_case_and_render_lowercase() {
        let upper = TenantId::parse(&UUID.to_uppercase()).expect("upper case parses");
        assert_eq!(upper.to_string(), UUID);
        assert_eq!(upper, TenantId::parse(UUID).expect("lower case parses"));
        assert_eq!(
            alloc::format!("{upper:?}"),
            alloc::format!("TenantId({UUID})")
        );
    }

    #[test]
    fn uuid_spellings_other_than_hyphenated_are_refused() {
        for input in [
            "",
            "550e8400e29b41d4a716446655440001",
            "{550e8400-e29b-41d4-a716-446655440001}",
            "urn:uuid:550e8400-e29b-41d4-a716-446655440001",
            "550e8400-e29b-41d4-a716-44665544000g",
            " 550e8400-e29b-41d4-a716-446655440001",
        ] {
            assert!(
                matches!(TenantId::parse(input), Err(IdError::NotUuid)),
                "{input:?}"
            );
            assert!(
                matches!(CredentialId::parse(input), Err(IdError::NotUuid)),
                "{input:?}"
            );
        }
    }

    #[test]
    fn credential_ids_accept_both_forms_and_render_both() {
        let bare = CredentialId::parse(UUID).expect("bare parses");
        for input in [
            alloc::format!("cred-{UUID}"),
            alloc::format!("CRED-{}", UUID.to_uppercase()),
            UUID.to_uppercase(),
        ] {
            assert_eq!(CredentialId::parse(&input), Ok(bare), "{input}");
        }
        assert_eq!(bare.to_string(), UUID);
        assert_eq!(bare.prefixed(), alloc::format!("cred-{UUID}"));
        assert_eq!(CredentialId::from_uuid(*bare.as_uuid()), bare);
        assert!(matches!(
            CredentialId::parse("cred-"),
            Err(IdError::NotUuid)
        ));
        assert!(matches!(
            CredentialId::parse("cred-cred-x"),
            Err(IdError::NotUuid)
        ));
    }

    /// Ids reach responses, log lines and failed assertions through
    /// `Display` and `Debug`: always the canonical lowercase form.
    #[test]
    fn ids_render_their_canonical_form_in_display_and_debug() {
        let credential =
            CredentialId::parse(&alloc::format!("CRED-{}", UUID.to_uppercase())).expect("parses");
        assert_eq!(
            alloc::format!("{credential:?}"),
            alloc::format!("CredentialId({UUID})")
        );
        let integration = IntegrationId::parse("ServiceNow-Prod.001").expect("parses");
        assert_eq!(integration.to_string(), "servicenow-prod.001");
        assert_eq!(
            alloc::format!("{integration:?}"),
            "IntegrationId(servicenow-prod.001)"
        );
    }

    fn check(input: &str, expected: Result<&str, IdError>) {
        let got = IntegrationId::parse(input);
        assert_eq!(
            got.as_ref().map(IntegrationId::as_str),
            expected.as_deref(),
            "{input:?}"
        );
    }

    #[test]
    fn integration_ids_follow_the_slug_rule() {
        let longest: alloc::string::String = core::iter::repeat_n('a', 128).collect();
        let too_long: alloc::string::String = core::iter::repeat_n('a', 129).collect();
        check("servicenow-prod-001", Ok("servicenow-prod-001"));
        check("a", Ok("a"));
        check("0.a_b-c", Ok("0.a_b-c"));
        check("ServiceNow", Ok("servicenow"));
        check(&longest, Ok(&longest));
        check("", Err(IdError::Empty));
        check(&too_long, Err(IdError::TooLong { len: 129 }));
        check("-a", Err(IdError::InvalidStart));
        check(".a", Err(IdError::InvalidStart));
        check("_", Err(IdError::InvalidStart));
        check(
            "a b",
            Err(IdError::InvalidCharacter {
                found: ' ',
                position: 1,
            }),
        );
        check(
            "a/b",
            Err(IdError::InvalidCharacter {
                found: '/',
                position: 1,
            }),
        );
        check(
            "caf\u{e9}",
            Err(IdError::InvalidCharacter {
                found: '\u{e9}',
                position: 3,
            }),
        );
    }

    #[test]
    fn errors_read_as_instructions() {
        let messages: Vec<_> = [
            IdError::NotUuid,
            IdError::Empty,
            IdError::TooLong { len: 129 },
            IdError::InvalidStart,
            IdError::InvalidCharacter {
                found: '/',
                position: 1,
            },
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        for message in &messages {
            assert!(!message.ends_with('.'), "{message}");
            assert!(message.starts_with(|c: char| c.is_lowercase()), "{message}");
        }
        assert_eq!(messages[2], "must be at most 128 characters long (got 129)");
        assert_eq!(
            messages[4],
            "may contain only letters, digits, '.', '_' and '-' (found '/' at position 1)"
        );
    }

    #[test]
    fn roles_are_ordered_and_round_trip_their_names() {
        assert!(Role::Viewer < Role::User && Role::User < Role::Editor);
        assert!(Role::Editor < Role::Admin);
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert_eq!(role.to_string(), role.as_str());
        }
        assert_eq!(Role::parse("INTEGRATION_ADMIN"), None);
        assert_eq!(Role::parse("offline_access"), None);
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod properties {
        use alloc::string::ToString;

        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #[test]
            fn any_uuid_round_trips_in_both_forms(bytes in any::<[u8; 16]>()) {
                let uuid = Uuid::from_bytes(bytes);
                let id = CredentialId::from_uuid(uuid);
                prop_assert_eq!(CredentialId::parse(&id.to_string()), Ok(id));
                prop_assert_eq!(CredentialId::parse(&id.prefixed()), Ok(id));
                let text = uuid.hyphenated().to_string().to_uppercase();
                prop_assert_eq!(TenantId::parse(&text).map(|t| *t.as_uuid()), Ok(uuid));
            }

            #[test]
            fn integration_id_matches_the_contract_regex(input in "[A-Za-z0-9._/ -]{0,130}") {
                // The contract's regex, applied to the lowercased input.
                let lower = input.to_ascii_lowercase();
                let expected = !lower.is_empty()
                    && lower.len() <= 128
                    && lower.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && lower.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c));
                let parsed = IntegrationId::parse(&input);
                prop_assert_eq!(parsed.is_ok(), expected);
                if let Ok(id) = parsed {
                    prop_assert_eq!(id.as_str(), lower.as_str());
                }
            }

            #[test]
            fn parsing_never_panics(input in "\\PC{0,80}") {
                let _ = TenantId::parse(&input);
                let _ = CredentialId::parse(&input);
                let _ = IntegrationId::parse(&input);
            }
        }
    }
}
