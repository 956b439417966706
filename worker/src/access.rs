//! The one gate to a record: it loads the record a handler names, asks the
//! core's [`decide`], audits a refusal where the contract says so (a
//! decrypted read refused for a record the caller can see), and hands back
//! a [`Visible`]: the record together with the proof that the caller may
//! take the action on it. Only this module can make a `Visible` (its field
//! is private and it has no public constructor), so a handler holding one
//! has been through the gate, as jwt-compact's `Token` can only come from
//! verifying an `UntrustedToken`. The tidy tests check that no other module
//! outside `store/` loads a record.
//!
//! Decisions are the core's; the gate only maps them: `NotVisible` → 404
//! naming what the handler looked for, any other denial → 403, and for a
//! decrypted read a status whose secret may not be served → 409.
//!
//! The decrypted read's fast path (`routes::secret::read_remembered`) has
//! two explicit doors here: [`remembered`] says whether a remembered secret
//! write may be tried at all (the record-free part of the decision, and the
//! remembered owner), and [`counted_read`] turns the row that the fast
//! path's one D1 statement counted (whose guards are the core's rules for
//! an owner's read) into a `Visible` after asking the core again.
use coffer_core::{
    check_secret_servable, decide, effective_status, Action, CredentialId, Denial, IntegrationId,
    Relation, TenantId,
};

use crate::{
    context::{Caller, Ctx},
    error::{ApiError, Missing, Surface},
    store::{AuditAction, Lookup, Outcome, Record, Remembered, Store},
};

/// The record a handler asks for, and what a 404 names when there is none.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    lookup: Lookup,
    /// With [`Lookup::Id`]: the integration the record must be in (the
    /// credentials surface's `?credentialId=`); another integration's
    /// record is not found.
    in_integration: Option<IntegrationId>,
    missing: Missing,
}

impl Target {
    /// A connection by id (the connection surface: bare UUIDs in messages).
    pub(crate) fn connection(id: CredentialId) -> Self {
        Self {
            lookup: Lookup::Id(id),
            in_integration: None,
            missing: Missing::Credential(id.to_string()),
        }
    }

    /// A credential by id (the credentials surface: `cred-<uuid>`).
    pub(crate) fn credential(id: CredentialId) -> Self {
        Self {
            lookup: Lookup::Id(id),
            in_integration: None,
            missing: Missing::Credential(id.prefixed()),
        }
    }

    /// A credential by id within `integration`.
    pub(crate) fn credential_in(id: CredentialId, integration: IntegrationId) -> Self {
        Self {
            in_integration: Some(integration),
            ..Self::credential(id)
        }
    }

    /// The selection rule: `tenant`'s newest effectively active record of
    /// `integration`, else its newest.
    pub(crate) fn selection(tenant: TenantId, integration: IntegrationId) -> Self {
        Self {
            missing: Missing::Integration(integration.as_str().to_string()),
            lookup: Lookup::Selection(tenant, integration),
            in_integration: None,
        }
    }

    /// What the record is looked up by (and what the isolate remembers a
    /// decrypted read under).
    pub(crate) fn lookup(&self) -> &Lookup {
        &self.lookup
    }

    /// The integration the lookup is confined to, if any.
    pub(crate) fn integration(&self) -> Option<&IntegrationId> {
        match &self.lookup {
            Lookup::Selection(_, integration) => Some(integration),
            Lookup::Id(_) => self.in_integration.as_ref(),
        }
    }

    /// The same record again, by its id, after it changed under a read: a
    /// 404 still names what the request looked for.
    pub(crate) fn again(&self, id: CredentialId) -> Self {
        Self {
            lookup: Lookup::Id(id),
            in_integration: None,
            missing: self.missing.clone(),
        }
    }
}

/// A record the gate loaded and the core allowed the caller an action on.
#[derive(Debug)]
pub(crate) struct Visible {
    record: Record,
}

impl Visible {
    /// The record.
    pub(crate) fn record(&self) -> &Record {
        &self.record
    }

    /// The record, giving up the proof (to render or change it).
    pub(crate) fn into_record(self) -> Record {
        self.record
    }
}

/// The checks that need no record (tenant membership and the action's
/// minimum role): the whole decision for tenant-level actions (create,
/// list, audit log), and, before a request body is read, the part of a
/// record action's decision that needs none; [`load_visible`] decides in
/// full once the record is loaded.
pub(crate) fn admit(caller: &Caller, action: Action) -> Result<(), ApiError> {
    coffer_core::admit(&caller.principal, caller.tenant, action).map_err(|_| ApiError::Forbidden)
}

/// Loads `target` for `caller`, asks the core whether `action` is allowed
/// on it, and returns the proof. A decrypted read (`Action::ReadSecret`)
/// also needs a status whose secret may be served; its refusals of a record
/// the caller can see are audited as `credential.read_secret` / `denied`.
///
/// # Errors
///
/// 404 naming the target when the record is not there or not visible, 403
/// when visible but not allowed, 409 for a decrypted read of an inactive or
/// revoked record; storage failures.
pub(crate) async fn load_visible(
    ctx: &Ctx,
    store: &Store,
    caller: &Caller,
    target: &Target,
    action: Action,
) -> Result<Visible, ApiError> {
    let found = match &target.lookup {
        Lookup::Id(id) => store
            .find_record(*id, caller.tenant)
            .await?
            .filter(|(record, _)| {
                target
                    .in_integration
                    .as_ref()
                    .is_none_or(|integration| record.integration == *integration)
            }),
        Lookup::Selection(tenant, integration) => store
            .select_for_integration(*tenant, integration, ctx.now)
            .await?
            .map(|record| (record, false)),
    };
    let relation = found
        .as_ref()
        .map(|(record, shared)| Relation::from_share_flag(caller.tenant, record.owner, *shared));
    let decision = decide(&caller.principal, caller.tenant, action, relation);
    let record = match (decision, found) {
        (Ok(()), Some((record, _))) => record,
        // The core never allows a record action on no record; were it to,
        // there is still nothing to act on.
        (Ok(()) | Err(Denial::NotVisible), _) => {
            return Err(ApiError::NotFound(target.missing.clone()))
        }
        (Err(_), found) => {
            if let (Action::ReadSecret, Some((record, _))) = (action, found) {
                audit_refused_read(ctx, store, caller, &record).await?;
            }
            return Err(ApiError::Forbidden);
        }
    };
    if action == Action::ReadSecret {
        let status = effective_status(record.status, record.expires_at, ctx.now);
        if check_secret_servable(status).is_err() {
            audit_refused_read(ctx, store, caller, &record).await?;
            let shown = match ctx.surface {
                Surface::Credentials => record.id.prefixed(),
                Surface::Connection => record.id.to_string(),
            };
            return Err(ApiError::NotActive(shown));
        }
    }
    Ok(Visible { record })
}

async fn audit_refused_read(
    ctx: &Ctx,
    store: &Store,
    caller: &Caller,
    record: &Record,
) -> Result<(), ApiError> {
    let event = ctx.audit_event(
        caller,
        record.owner,
        AuditAction::ReadSecret,
        Outcome::Denied,
        Some(record.id),
    )?;
    store.audit(&event).await
}

/// The fast path's first door: the secret write this isolate remembers for
/// `lookup`, if the caller may read its own tenant's secrets at all and the
/// remembered record is its tenant's. Nothing is decided from memory: the
/// fast path's D1 statement re-checks the record, and [`counted_read`]
/// decides on the row it returns.
pub(crate) fn remembered(caller: &Caller, lookup: &Lookup) -> Option<Remembered> {
    let may_read_own = decide(
        &caller.principal,
        caller.tenant,
        Action::ReadSecret,
        Some(Relation::Owner),
    );
    let remembered = Store::remembered(lookup)?;
    (may_read_own.is_ok() && remembered.owner == caller.tenant).then_some(remembered)
}

/// The fast path's second door: the row the fast path's one statement
/// counted and audited (its guards: the same secret write, owned by the
/// caller's tenant, a servable status). The core decides on it as on the
/// slow path; a refusal here is unreachable and still fails closed, with
/// no secret sent.
pub(crate) fn counted_read(
    ctx: &Ctx,
    caller: &Caller,
    record: Record,
) -> Result<Visible, ApiError> {
    let relation = Relation::from_share_flag(caller.tenant, record.owner, false);
    let status = effective_status(record.status, record.expires_at, ctx.now);
    if decide(
        &caller.principal,
        caller.tenant,
        Action::ReadSecret,
        Some(relation),
    )
    .is_err()
        || check_secret_servable(status).is_err()
    {
        return Err(ApiError::internal(format!(
            "fast read of {} served a record the core refuses",
            record.id
        )));
    }
    Ok(Visible { record })
}
