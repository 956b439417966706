//! The one decrypted-read path both surfaces share, and sealing.
use coffer_core::{
    check_secret_servable, decide, effective_status, seal_with_tenant_key, Action, Binding,
    CredentialId, Denial, Relation, Sealed,
};
use rand_core::{OsRng, RngCore as _};
use serde_json::value::RawValue;
use zeroize::Zeroizing;

use super::{event, keyring, relation, timestamp};
use crate::{
    error::{ApiError, Missing},
    http::{Caller, Ctx},
    keys,
    store::{AuditAction, AuditEvent, Lookup, Outcome, Record, Store},
};

/// A random UUID v4 from the platform's CSPRNG, lowercase hyphenated.
pub(crate) fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// A fresh nonce for a secret write's KV key (64 random bits, hex).
pub(crate) fn new_blob_nonce() -> String {
    let mut bytes = [0u8; 8];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh credential id.
pub(crate) fn new_credential_id() -> CredentialId {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    CredentialId::from_uuid(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// Seals `secret` (compact JSON bytes) for `record`'s current secret
/// version under its owner's active tenant key (created with the tenant's
/// first record), and stores the data key's wrap in `record`.
pub(crate) async fn seal_for(
    ctx: &Ctx,
    store: &Store,
    record: &mut Record,
    secret: &[u8],
) -> Result<Sealed, ApiError> {
    let keyring = keyring(&ctx.env)?;
    let tenant_key = keys::for_write(&keyring, store, record.owner, ctx.now_ms).await?;
    let sealed = seal_with_tenant_key(&tenant_key, &mut OsRng, &binding(record), secret)
        .map_err(|error| ApiError::internal(format!("seal: {error}")))?;
    record.kid.clone_from(&sealed.kid);
    record.wrapped_dek.clone_from(&sealed.wrapped_dek);
    record.tk_version = sealed.tenant_key_version;
    record.secret_at = Some(ctx.now_ms);
    record.secret_by = Some(record.updated_by.clone());
    Ok(sealed)
}

pub(crate) fn binding(record: &Record) -> Binding {
    Binding {
        tenant: record.owner,
        credential: record.id,
        version: u64::try_from(record.secret_version).unwrap_or(0),
    }
}

/// A record loaded for a decrypted read, with what it was looked up by and
/// the blob speculatively fetched alongside the D1 read (see
/// [`Store::prefetch_blob`]).
pub(crate) struct Found {
    pub(crate) record: Record,
    /// Whether the record is shared with (not owned by) the acting tenant.
    pub(crate) shared: bool,
    pub(crate) lookup: Lookup,
    pub(crate) prefetched: Option<(String, Vec<u8>)>,
}

/// How many times a decrypted read starts over when the record's secret
/// changed underneath it (a concurrent `PATCH` of `credentials`).
const READ_ATTEMPTS: usize = 3;

/// A decrypted secret: the compact JSON text that was sealed (numbers as
/// the client sent them), served by splicing it into the response rather
/// than parsing it into a `Value` and writing it out again.
pub(crate) type Secret = Zeroizing<String>;

/// What one attempt at a decrypted read came to.
enum Attempt {
    Served(Box<(Record, Secret)>),
    /// The blob D1 named is not in KV: the secret changed since (its old
    /// blob is deleted after the commit), or the blob is really gone.
    BlobMissing,
    /// The count found another secret version (or no record): it changed
    /// between the D1 read and the count.
    Changed,
}

/// Serves a record's secret to `caller`, or refuses. Refusals of a record
/// the caller can see are audited as `credential.read_secret` / `denied`;
/// an allowed read is counted and audited in one D1 statement before the
/// secret is returned, and fails closed if that statement fails. A read
/// that races a secret change loads the record again, and policy and
/// status are decided anew on it, rather than failing.
///
/// `rendered_id` is the id as the surface renders it (for the 409 message)
/// and `missing` what a 404 names.
pub(crate) async fn read_secret(
    ctx: &Ctx,
    caller: &Caller,
    store: &Store,
    found: Found,
    rendered_id: String,
    missing: Missing,
) -> Result<(Record, Secret), ApiError> {
    let Found {
        mut record,
        mut shared,
        lookup,
        mut prefetched,
    } = found;
    for _ in 0..READ_ATTEMPTS {
        check(ctx, caller, store, &record, shared, &rendered_id, &missing).await?;
        let attempt = read_once(ctx, caller, store, &record, &lookup, prefetched.take()).await?;
        let blob_missing = match attempt {
            Attempt::Served(served) => return Ok(*served),
            Attempt::BlobMissing => true,
            Attempt::Changed => false,
        };
        let Some((fresh, fresh_shared)) = store.find(record.id, caller.tenant).await? else {
            return Err(ApiError::NotFound(missing));
        };
        let same_secret =
            fresh.secret_version == record.secret_version && fresh.blob_nonce == record.blob_nonce;
        if blob_missing && same_secret {
            // D1 still names a blob that is not there: a fault, not a race.
            store
                .audit(&read_event(ctx, caller, &record, Outcome::Error))
                .await?;
            return Err(ApiError::internal(format!(
                "secret of {} (version {}) is missing",
                record.id, record.secret_version
            )));
        }
        (record, shared) = (fresh, fresh_shared);
    }
    Err(ApiError::internal(format!(
        "the secret of {} kept changing during the read",
        record.id
    )))
}

/// The fast path of a decrypted read: one KV read and one D1 statement.
///
/// The isolate remembers the secret write it last served for `lookup` (its
/// blob key and wrapped data key, never the secret). The core first decides
/// what needs no record (may this caller read its own tenant's secrets at
/// all); the remembered blob is opened; then the one statement that counts
/// and audits the read also checks, atomically, that the record is still
/// that secret write, owned by the caller's tenant, servable, and what
/// `lookup` finds (`integration`: the credentials surface's integration).
/// The core then decides on the row D1 returned, as on the slow path.
///
/// `Ok(None)` means nothing was counted or audited and the slow path
/// ([`read_secret`]) must decide: nothing remembered, a refusal to explain
/// (and audit), a blob that is gone or does not open with the remembered
/// wrap (a rewrap and a removed master key), or a record that changed.
pub(crate) async fn read_remembered(
    ctx: &Ctx,
    caller: &Caller,
    store: &Store,
    lookup: &Lookup,
    integration: Option<&str>,
) -> Result<Option<(Record, Secret)>, ApiError> {
    let may_read_own = decide(
        &caller.principal,
        caller.tenant,
        Action::ReadSecret,
        Some(Relation::Owner),
    );
    let Some(remembered) = Store::remembered(lookup) else {
        return Ok(None);
    };
    if may_read_own.is_err() || remembered.owner != caller.tenant {
        return Ok(None);
    }
    let keyring = keyring(&ctx.env)?;
    let binding = Binding {
        tenant: remembered.owner,
        credential: remembered.id,
        version: u64::try_from(remembered.secret_version).unwrap_or(0),
    };
    let blob = store.remembered_blob(&remembered).await?;
    let plain = match blob {
        Some(blob) => {
            keys::open_secret(
                &keyring,
                store,
                ctx.now_ms,
                &binding,
                remembered.tk_version,
                remembered.tenant_key.as_ref(),
                &remembered.wrapped_dek,
                &blob,
            )
            .await?
        }
        None => None,
    };
    let secret = plain.and_then(json_object_text);
    let Some(secret) = secret else {
        Store::forget(lookup);
        return Ok(None);
    };
    let event = event(
        ctx,
        caller,
        remembered.owner,
        AuditAction::ReadSecret,
        Outcome::Success,
        Some(remembered.id),
    );
    let counted = store
        .record_remembered_read(
            &remembered,
            lookup,
            integration,
            caller.tenant,
            ctx.now_ms,
            &event,
        )
        .await?;
    let Some(record) = counted else {
        Store::forget(lookup);
        return Ok(None);
    };
    // The statement's guards are the core's rules for an owner's read, so
    // a refusal here is unreachable; it still fails closed.
    let relation = relation(&record, false, caller.tenant);
    let status = effective_status(
        record.status,
        record.expires_at.map(timestamp),
        timestamp(ctx.now_ms),
    );
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
    Ok(Some((record, secret)))
}

fn read_event(ctx: &Ctx, caller: &Caller, record: &Record, outcome: Outcome) -> AuditEvent {
    event(
        ctx,
        caller,
        record.owner,
        AuditAction::ReadSecret,
        outcome,
        Some(record.id),
    )
}

/// The policy and status checks of a decrypted read, audited when refused.
pub(crate) async fn check(
    ctx: &Ctx,
    caller: &Caller,
    store: &Store,
    record: &Record,
    shared: bool,
    rendered_id: &str,
    missing: &Missing,
) -> Result<(), ApiError> {
    let relation = relation(record, shared, caller.tenant);
    match decide(
        &caller.principal,
        caller.tenant,
        Action::ReadSecret,
        Some(relation),
    ) {
        Ok(()) => {}
        Err(Denial::NotVisible) => return Err(ApiError::NotFound(missing.clone())),
        Err(_) => {
            store
                .audit(&read_event(ctx, caller, record, Outcome::Denied))
                .await?;
            return Err(ApiError::Forbidden);
        }
    }
    let status = effective_status(
        record.status,
        record.expires_at.map(timestamp),
        timestamp(ctx.now_ms),
    );
    if check_secret_servable(status).is_err() {
        store
            .audit(&read_event(ctx, caller, record, Outcome::Denied))
            .await?;
        return Err(ApiError::NotActive(rendered_id.to_string()));
    }
    Ok(())
}

/// Fetches, opens, counts: one attempt at serving `record`'s secret.
async fn read_once(
    ctx: &Ctx,
    caller: &Caller,
    store: &Store,
    record: &Record,
    lookup: &Lookup,
    prefetched: Option<(String, Vec<u8>)>,
) -> Result<Attempt, ApiError> {
    let keyring = keyring(&ctx.env)?;
    let Some(blob) = store.blob_prefetched(record, lookup, prefetched).await? else {
        return Ok(Attempt::BlobMissing);
    };
    let plaintext = keys::open_secret(
        &keyring,
        store,
        ctx.now_ms,
        &binding(record),
        record.tk_version,
        record.tenant_key.as_ref(),
        &record.wrapped_dek,
        &blob,
    )
    .await?;
    // A blob that does not open and one that is not a JSON object look the
    // same to the client: an opaque 500.
    let secret = plaintext.and_then(json_object_text);
    let Some(secret) = secret else {
        store
            .audit(&read_event(ctx, caller, record, Outcome::Error))
            .await?;
        return Err(ApiError::internal(format!(
            "secret of {} (version {}) does not open",
            record.id, record.secret_version
        )));
    };
    let counted = store
        .record_read(
            record,
            caller.tenant,
            ctx.now_ms,
            &read_event(ctx, caller, record, Outcome::Success),
        )
        .await?;
    Ok(match counted {
        Some((count, at)) => {
            let mut record = record.clone();
            record.access_count = count;
            record.last_accessed_at = Some(at);
            Attempt::Served(Box::new((record, secret)))
        }
        None => Attempt::Changed,
    })
}

/// The opened plaintext as text, if it is one JSON object (it is the compact
/// JSON that was sealed; checking costs a scan, not a parse into `Value`).
pub(crate) fn json_object_text(mut plain: Zeroizing<Vec<u8>>) -> Option<Secret> {
    // Moves the buffer into the string without copying it.
    let text = match String::from_utf8(core::mem::take(&mut *plain)) {
        Ok(text) => Zeroizing::new(text),
        Err(error) => {
            drop(Zeroizing::new(error.into_bytes()));
            return None;
        }
    };
    let raw: &RawValue = serde_json::from_str(&text).ok()?;
    raw.get().starts_with('{').then_some(())?;
    Some(text)
}
