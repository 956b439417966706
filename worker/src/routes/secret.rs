//! The one decrypted-read path both surfaces share, and sealing.
use coffer_core::{
    check_secret_servable, decide, effective_status, open, seal, Action, Binding, CredentialId,
    Denial, Sealed,
};
use rand_core::{OsRng, RngCore as _};
use serde_json::Value;

use super::{event, keyring, relation, timestamp};
use crate::{
    error::{ApiError, Missing},
    http::{Caller, Ctx},
    store::{AuditAction, Lookup, Outcome, Record, Store},
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

/// Seals `secret` (compact JSON bytes) for `record`'s current secret version.
pub(crate) fn seal_for(ctx: &Ctx, record: &Record, secret: &[u8]) -> Result<Sealed, ApiError> {
    let keyring = keyring(&ctx.env)?;
    let binding = binding(record);
    seal(&keyring, &mut OsRng, &binding, secret)
        .map_err(|error| ApiError::internal(format!("seal: {error}")))
}

fn binding(record: &Record) -> Binding {
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

/// Serves a record's secret to `caller`, or refuses. Refusals of a record
/// the caller can see are audited as `credential.read_secret` / `denied`;
/// an allowed read is counted and audited in one D1 statement before the
/// secret is returned, and fails closed if that statement fails.
///
/// `rendered_id` is the id as the surface renders it (for the 409 message).
pub(crate) async fn read_secret(
    ctx: &Ctx,
    caller: &Caller,
    store: &Store,
    found: Found,
    rendered_id: String,
    missing: impl FnOnce() -> Missing,
) -> Result<(Record, Value), ApiError> {
    let Found {
        mut record,
        shared,
        lookup,
        prefetched,
    } = found;
    let relation = relation(&record, shared, caller.tenant);
    let audit = |outcome| {
        event(
            ctx,
            caller,
            record.owner,
            AuditAction::ReadSecret,
            outcome,
            Some(record.id),
        )
    };
    match decide(
        &caller.principal,
        caller.tenant,
        Action::ReadSecret,
        Some(relation),
    ) {
        Ok(()) => {}
        Err(Denial::NotVisible) => return Err(ApiError::NotFound(missing())),
        Err(_) => {
            store.audit(&audit(Outcome::Denied)).await?;
            return Err(ApiError::Forbidden);
        }
    }
    let status = effective_status(
        record.status,
        record.expires_at.map(timestamp),
        timestamp(ctx.now_ms),
    );
    if check_secret_servable(status).is_err() {
        store.audit(&audit(Outcome::Denied)).await?;
        return Err(ApiError::NotActive(rendered_id));
    }

    let keyring = keyring(&ctx.env)?;
    let blob = store.blob_prefetched(&record, &lookup, prefetched).await?;
    let plaintext =
        blob.and_then(|blob| open(&keyring, &binding(&record), &record.wrapped_dek, &blob).ok());
    // Missing blob and failed open look the same to the client: opaque 500.
    let secret = plaintext.and_then(|plain| serde_json::from_slice::<Value>(&plain).ok());
    let Some(secret) = secret else {
        store.audit(&audit(Outcome::Error)).await?;
        return Err(ApiError::internal(format!(
            "secret of {} (version {}) is missing or does not open",
            record.id, record.secret_version
        )));
    };
    match store
        .record_read(&record, ctx.now_ms, &audit(Outcome::Success))
        .await?
    {
        Some((count, at)) => {
            record.access_count = count;
            record.last_accessed_at = Some(at);
            Ok((record, secret))
        }
        // Deleted or given a new secret between our read and the count.
        None => Err(ApiError::NotFound(missing())),
    }
}
