//! The pure halves of a create and an update: a new record from a validated
//! body, and a patch applied to a loaded record. No I/O, no clock, no
//! randomness: the handler passes `now` and fresh values in, then seals the
//! secret (if any) and stores the result.
use coffer_core::{
    check_transition, oauth, CredentialId, Status, TenantId, Timestamp, Version, Zeroizing,
};

use super::body::{CreateInput, PatchInput};
use crate::{
    context::Caller,
    error::{ApiError, Place},
    store::{Actor, Record, RefreshColumns},
};

/// Who creates a record: the acting tenant (its owner), the actor, and the
/// tenant's display name from the token.
#[derive(Debug, Clone)]
pub(crate) struct Author {
    pub(crate) owner: TenantId,
    pub(crate) actor: Actor,
    pub(crate) tenant_name: Option<String>,
}

impl Author {
    /// The caller as the author of a new record.
    pub(crate) fn of(caller: &Caller) -> Self {
        Self {
            owner: caller.tenant,
            actor: actor(caller),
            tenant_name: caller.principal.tenant_name().map(str::to_string),
        }
    }
}

/// The caller, for `createdBy` / `updatedBy`.
pub(crate) fn actor(caller: &Caller) -> Actor {
    let principal = &caller.principal;
    Actor {
        id: principal.sub().to_string(),
        name: principal.name().map(str::to_string),
        email: principal.email().map(str::to_string),
    }
}

impl Record {
    /// A new record from a validated create body, owned by `author`'s
    /// tenant: active, version 1, its first secret version under the fresh
    /// `id` and `blob_nonce`. Its key columns (`kid`, `wrapped_dek`) are
    /// empty until the returned secret is sealed for it.
    pub(crate) fn create(
        input: CreateInput,
        author: &Author,
        now: Timestamp,
        id: CredentialId,
        blob_nonce: String,
    ) -> (Self, Zeroizing<String>) {
        let record = Self {
            id,
            owner: author.owner,
            integration: input.integration,
            name: input.name,
            description: input.description,
            auth_type: input.auth_type,
            scopes: input.scopes,
            token_endpoint: input.token_endpoint,
            authorization_endpoint: input.authorization_endpoint,
            metadata: input.metadata,
            status: Status::Active,
            expires_at: input.expires_at,
            created_at: now,
            created_by: author.actor.clone(),
            updated_at: now,
            updated_by: author.actor.clone(),
            tenant_name: author.tenant_name.clone(),
            last_accessed_at: None,
            access_count: 0,
            version: Version::FIRST,
            secret_version: Version::FIRST,
            kid: String::new(),
            wrapped_dek: Vec::new(),
            blob_nonce,
            tk_version: None,
            tenant_key: None,
            secret_at: None,
            secret_by: None,
            refresh: RefreshColumns {
                grant: oauth::grant_for(input.auth_type, &input.secret),
                ..RefreshColumns::default()
            },
        };
        (record, input.secret)
    }
}

/// `current` with `patch` applied by `actor` at `now`: the next version, and
/// when the patch has a secret, a new secret version at that version under
/// the blob nonce `new_nonce` draws (its key columns stay the old ones
/// until the new secret is sealed for it).
///
/// # Errors
///
/// A status change the core's lifecycle refuses (400 naming `status`); a
/// version past [`Version::MAX`]; `new_nonce`'s error.
pub(crate) fn apply_patch(
    current: &Record,
    patch: &PatchInput,
    actor: &Actor,
    now: Timestamp,
    new_nonce: impl FnOnce() -> Result<String, ApiError>,
) -> Result<Record, ApiError> {
    let mut next = current.clone();
    if let Some(status) = patch.status {
        check_transition(current.status, status)
            .map_err(|error| ApiError::invalid(Place::Body, "status", error, "value_error"))?;
        next.status = status;
    }
    if let Some(name) = &patch.name {
        next.name.clone_from(name);
    }
    if let Some(description) = &patch.description {
        next.description.clone_from(description);
    }
    if let Some(scopes) = &patch.scopes {
        next.scopes.clone_from(scopes);
    }
    if let Some(url) = &patch.token_endpoint {
        next.token_endpoint.clone_from(url);
    }
    if let Some(url) = &patch.authorization_endpoint {
        next.authorization_endpoint.clone_from(url);
    }
    if let Some(metadata) = &patch.metadata {
        next.metadata.clone_from(metadata);
    }
    if let Some(expires_at) = patch.expires_at {
        next.expires_at = expires_at;
    }
    next.version = current
        .version
        .next()
        .map_err(|error| ApiError::internal(format!("version of {}: {error}", current.id)))?;
    next.updated_at = now;
    next.updated_by = actor.clone();
    if let Some(secret) = &patch.secret {
        next.secret_version = next.version;
        next.blob_nonce = new_nonce()?;
        // The grant follows the new secret, and a new secret ends a backoff
        // or halt of token refreshes (as `UPDATE_WITH_SECRET` does in D1).
        next.refresh.grant = oauth::grant_for(current.auth_type, secret);
        next.refresh.failures = 0;
        next.refresh.not_before = None;
        next.refresh.halted = false;
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use coffer_core::{AuthType, IntegrationId};
    use serde_json::value::RawValue;

    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_unix_millis(ms).expect("in range")
    }

    fn id(n: u8) -> CredentialId {
        CredentialId::parse(&format!("550e8400-e29b-41d4-a716-4466554400{n:02}")).expect("uuid")
    }

    fn someone(name: &str) -> Actor {
        Actor {
            email: None,
            id: format!("user-{name}"),
            name: Some(name.to_string()),
        }
    }

    fn author() -> Author {
        Author {
            owner: TenantId::parse("9f0c1d2e-3b4a-4c5d-8e6f-7a8b9c0d1e2f").expect("uuid"),
            actor: someone("ada"),
            tenant_name: Some("Acme".into()),
        }
    }

    fn input() -> CreateInput {
        CreateInput {
            integration: IntegrationId::parse("github").expect("slug"),
            name: "GitHub".into(),
            description: Some("deploys".into()),
            auth_type: AuthType::ApiKey,
            scopes: vec!["repo".into()],
            token_endpoint: None,
            authorization_endpoint: Some("https://example.com/authorize".into()),
            metadata: RawValue::from_string("{\"n\":1.50}".into()).expect("json"),
            expires_at: Some(at(2_000)),
            secret: Zeroizing::new("{\"k\":\"v\"}".into()),
        }
    }

    fn created() -> Record {
        Record::create(input(), &author(), at(1_000), id(1), "aa".into()).0
    }

    fn no_nonce() -> Result<String, ApiError> {
        Err(ApiError::internal("no nonce expected"))
    }

    #[test]
    fn create_makes_an_active_first_version_owned_by_the_author() {
        let (record, secret) = Record::create(input(), &author(), at(1_000), id(1), "00ff".into());
        assert_eq!(*secret, "{\"k\":\"v\"}");
        assert_eq!(record.id, id(1));
        assert_eq!(record.owner, author().owner);
        assert_eq!(record.integration.as_str(), "github");
        assert_eq!(record.name, "GitHub");
        assert_eq!(record.description.as_deref(), Some("deploys"));
        assert_eq!(record.auth_type, AuthType::ApiKey);
        assert_eq!(record.scopes, ["repo"]);
        assert_eq!(record.token_endpoint, None);
        assert_eq!(
            record.authorization_endpoint.as_deref(),
            Some("https://example.com/authorize")
        );
        assert_eq!(record.metadata.get(), "{\"n\":1.50}");
        assert_eq!(record.status, Status::Active);
        assert_eq!(record.expires_at, Some(at(2_000)));
        assert_eq!(
            (record.created_at, record.updated_at),
            (at(1_000), at(1_000))
        );
        assert_eq!(record.created_by, someone("ada"));
        assert_eq!(record.updated_by, someone("ada"));
        assert_eq!(record.tenant_name.as_deref(), Some("Acme"));
        assert_eq!((record.last_accessed_at, record.access_count), (None, 0));
        assert_eq!(record.version, Version::FIRST);
        assert_eq!(record.secret_version, Version::FIRST);
        assert_eq!(record.blob_nonce, "00ff");
        assert!(record.kid.is_empty() && record.wrapped_dek.is_empty());
    }

    #[test]
    fn a_patch_changes_what_it_names_and_bumps_the_version() {
        let current = created();
        let patch = PatchInput {
            name: Some("Renamed".into()),
            description: Some(None),
            scopes: Some(vec![]),
            token_endpoint: Some(Some("https://example.com/token".into())),
            authorization_endpoint: Some(None),
            metadata: Some(RawValue::from_string("{\"m\":2}".into()).expect("json")),
            expires_at: Some(None),
            status: Some(Status::Inactive),
            secret: None,
        };
        let next =
            apply_patch(&current, &patch, &someone("bob"), at(5_000), no_nonce).expect("applies");
        assert_eq!(next.name, "Renamed");
        assert_eq!(next.description, None);
        assert!(next.scopes.is_empty());
        assert_eq!(
            next.token_endpoint.as_deref(),
            Some("https://example.com/token")
        );
        assert_eq!(next.authorization_endpoint, None);
        assert_eq!(next.metadata.get(), "{\"m\":2}");
        assert_eq!(next.expires_at, None);
        assert_eq!(next.status, Status::Inactive);
        assert_eq!(next.version.get(), 2);
        assert_eq!((next.updated_at, next.created_at), (at(5_000), at(1_000)));
        assert_eq!(next.updated_by, someone("bob"));
        assert_eq!(next.created_by, someone("ada"));
        // No secret in the patch: the secret write is untouched.
        assert_eq!(next.secret_version, Version::FIRST);
        assert_eq!(next.blob_nonce, "aa");
    }

    #[test]
    fn an_empty_field_list_changes_only_version_and_update_stamp() {
        let current = created();
        let next = apply_patch(
            &current,
            &PatchInput::default(),
            &someone("bob"),
            at(7_000),
            no_nonce,
        )
        .expect("applies");
        assert_eq!(next.name, current.name);
        assert_eq!(next.description, current.description);
        assert_eq!(next.scopes, current.scopes);
        assert_eq!(next.authorization_endpoint, current.authorization_endpoint);
        assert_eq!(next.metadata.get(), current.metadata.get());
        assert_eq!(next.expires_at, current.expires_at);
        assert_eq!(next.status, current.status);
        assert_eq!(next.version.get(), 2);
        assert_eq!(next.updated_at, at(7_000));
    }

    #[test]
    fn a_new_secret_is_a_new_secret_version_at_the_new_version() {
        let mut current = created();
        current.version = Version::new(4).expect("in range");
        let patch = PatchInput {
            secret: Some(Zeroizing::new("{\"k\":2}".into())),
            ..PatchInput::default()
        };
        let next = apply_patch(&current, &patch, &someone("bob"), at(5_000), || {
            Ok("bb".into())
        })
        .expect("applies");
        assert_eq!(next.version.get(), 5);
        assert_eq!(next.secret_version.get(), 5);
        assert_eq!(next.blob_nonce, "bb");
        let failed = apply_patch(&current, &patch, &someone("bob"), at(5_000), no_nonce);
        assert!(matches!(failed, Err(ApiError::Internal(_))));
    }

    #[test]
    fn refused_transitions_and_the_last_version_are_errors() {
        let mut current = created();
        current.status = Status::Revoked;
        let patch = PatchInput {
            status: Some(Status::Active),
            ..PatchInput::default()
        };
        let refused = apply_patch(&current, &patch, &someone("bob"), at(5_000), no_nonce);
        assert!(
            matches!(&refused, Err(ApiError::Invalid { field, .. }) if field == "status"),
            "{refused:?}"
        );
        let mut last = created();
        last.version = Version::MAX;
        let overflow = apply_patch(
            &last,
            &PatchInput::default(),
            &someone("b"),
            at(1),
            no_nonce,
        );
        assert!(matches!(overflow, Err(ApiError::Internal(_))));
    }
}
