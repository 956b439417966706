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
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotUuid => {
                f.write_str("must be a UUID such as 550e8400-e29b-41d4-a716-446655440001")
            }
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
