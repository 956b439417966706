//! The one decrypted-read path both surfaces share, and sealing.
//!
//! [`read`] tries the fast path ([`read_remembered`]: the blob this isolate
//! remembers and one D1 statement) and otherwise the slow path, which loads
//! the record through the access gate, then fetches (unless remembered),
//! opens and counts its blob, starting over (through the gate again) when
//! the secret changed underneath.
use coffer_core::{Action, Binding, Timestamp};
use serde_json::value::RawValue;
use zeroize::Zeroizing;

use crate::{
    access::{self, Target, Visible},
    context::{Caller, Ctx},
    error::ApiError,
    error::Surface,
    keyring::keyring,
    keys,
    refresh::{Config, Refresher},
    store::{AuditAction, AuditEvent, Lookup, Outcome, Record, Store},
};

/// Seals `secret` (compact JSON text) for `record`'s current secret
/// version under its owner's active tenant key (created with the tenant's
/// first record), writes the data key's wrap into the record, and returns
/// the sealed blob to store.
pub(crate) async fn seal_into(
    ctx: &Ctx,
    store: &Store,
    record: &mut Record,
    secret: &str,
) -> Result<Vec<u8>, ApiError> {
    keys::seal_record(
        &*keyring(&ctx.env)?,
        store,
        record,
        secret.as_bytes(),
        ctx.now,
    )
    .await
}

pub(crate) use keys::binding;

/// How many times a decrypted read starts over when the record's secret
/// changed underneath it (a concurrent `PATCH` of `credentials`); an
/// OAuth2 token refresh before the read uses one more.
const READ_ATTEMPTS: usize = 4;

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

/// Serves `target`'s secret to `caller`, or refuses: the fast path when
/// this isolate remembers the secret write, else the slow path. Either way
/// the read is counted and audited in one D1 statement before the secret
/// is returned, and fails closed if that statement fails.
pub(crate) async fn read(
    ctx: &Ctx,
    caller: &Caller,
    store: &Store,
    target: &Target,
) -> Result<(Record, Secret), ApiError> {
    if let Some(served) = read_remembered(ctx, caller, store, target).await? {
        return Ok(served);
    }
    // A blob this isolate remembers for the lookup saves the KV read when
    // D1 names the same key; D1 still decides.
    let guessed = Store::guessed_blob(target.lookup());
    let visible = access::load_visible(ctx, store, caller, target, Action::ReadSecret).await?;
    read_secret(ctx, caller, store, target, visible, guessed).await
}

/// The slow path: serves the secret of a record the gate allowed. Refusals
/// are the gate's (and audited there); a read that races a secret change
/// goes through the gate again, so policy and status are decided anew on
/// the fresh record, rather than failing. An OAuth2 token due for a
/// refresh is refreshed (or waited for) first, and the changed record goes
/// through the gate again.
async fn read_secret(
    ctx: &Ctx,
    caller: &Caller,
    store: &Store,
    target: &Target,
    mut visible: Visible,
    mut guessed: Option<(String, Vec<u8>)>,
) -> Result<(Record, Secret), ApiError> {
    let refresher = Refresher {
        env: &ctx.env,
        store,
        config: Config::from_env(&ctx.env),
        request_id: &ctx.request_id,
    };
    let mut first = true;
    for _ in 0..READ_ATTEMPTS {
        let record = visible.record();
        let shown = match ctx.surface {
            Surface::Credentials => record.id.prefixed(),
            Surface::Connection => record.id.to_string(),
        };
        if refresher.before_read(record, &shown, first).await? {
            first = false;
            guessed = None;
            visible = access::load_visible(
                ctx,
                store,
                caller,
                &target.again(record.id),
                Action::ReadSecret,
            )
            .await?;
            continue;
        }
        let attempt =
            read_once(ctx, caller, store, record, target.lookup(), guessed.take()).await?;
        let blob_missing = match attempt {
            Attempt::Served(served) => return Ok(*served),
            Attempt::BlobMissing => true,
            Attempt::Changed => false,
        };
        let fresh = access::load_visible(
            ctx,
            store,
            caller,
            &target.again(record.id),
            Action::ReadSecret,
        )
        .await?;
        let same_secret = fresh.record().secret_version == record.secret_version
            && fresh.record().blob_nonce == record.blob_nonce;
        if blob_missing && same_secret {
            // D1 still names a blob that is not there: a fault, not a race.
            store
                .audit(&read_event(ctx, caller, record, Outcome::Error)?)
                .await?;
            return Err(ApiError::internal(format!(
                "secret of {} (version {}) is missing",
                record.id, record.secret_version
            )));
        }
        visible = fresh;
    }
    Err(ApiError::internal(format!(
        "the secret of {} kept changing during the read",
        visible.record().id
    )))
}

/// The fast path of a decrypted read: one D1 statement, no KV read.
///
/// The isolate remembers the secret write it last served for a lookup (its
/// blob key, the sealed blob, and the wrapped data key; never the secret).
/// The gate's first door ([`access::remembered`]) decides what needs no
/// record (may this caller read its own tenant's secrets at all, and is the
/// remembered record its tenant's); the remembered blob is opened; then the one statement that
/// counts and audits the read also checks, atomically, that the record is
/// still that secret write, owned by the caller's tenant, servable, and
/// what the lookup finds (in the target's integration, or the selection
/// rule's pick). The gate's second door ([`access::counted_read`]) then has
/// the core decide on the row D1 returned, as on the slow path.
///
/// `Ok(None)` means nothing was counted or audited and the slow path must
/// decide: nothing remembered, a refusal to explain (and audit), a blob
/// that does not open with the remembered wrap (a rewrap and a removed
/// master key), or a record that changed.
pub(crate) async fn read_remembered(
    ctx: &Ctx,
    caller: &Caller,
    store: &Store,
    target: &Target,
) -> Result<Option<(Record, Secret)>, ApiError> {
    let lookup = target.lookup();
    let Some(remembered) = access::remembered(caller, lookup) else {
        return Ok(None);
    };
    let keyring = keyring(&ctx.env)?;
    let binding = Binding {
        tenant: remembered.owner,
        credential: remembered.id,
        version: remembered.secret_version.get(),
    };
    let plain = keys::open_secret(
        &keyring,
        store,
        ctx.now.as_unix_millis(),
        &binding,
        remembered.tk_version,
        remembered.tenant_key.as_ref(),
        &remembered.wrapped_dek,
        remembered.blob.bytes(),
    )
    .await?;
    let secret = plain.and_then(json_object_text);
    let Some(secret) = secret else {
        Store::forget(lookup);
        return Ok(None);
    };
    let event = ctx.audit_event(
        caller,
        remembered.owner,
        AuditAction::ReadSecret,
        Outcome::Success,
        Some(remembered.id),
    )?;
    let counted = store
        .record_remembered_read(
            &remembered,
            lookup,
            target.integration(),
            caller.tenant,
            ctx.now,
            // A refreshing record whose token is due is left to the slow
            // path, which refreshes it before serving.
            Timestamp::from_unix_millis(
                ctx.now
                    .as_unix_millis()
                    .saturating_add(Config::from_env(&ctx.env).skew_ms),
            )
            .unwrap_or(Timestamp::MAX),
            &event,
        )
        .await?;
    let Some(record) = counted else {
        Store::forget(lookup);
        return Ok(None);
    };
    let visible = access::counted_read(ctx, caller, record)?;
    Ok(Some((visible.into_record(), secret)))
}

fn read_event(
    ctx: &Ctx,
    caller: &Caller,
    record: &Record,
    outcome: Outcome,
) -> Result<AuditEvent, ApiError> {
    ctx.audit_event(
        caller,
        record.owner,
        AuditAction::ReadSecret,
        outcome,
        Some(record.id),
    )
}

/// Fetches, opens, counts: one attempt at serving `record`'s secret.
async fn read_once(
    ctx: &Ctx,
    caller: &Caller,
    store: &Store,
    record: &Record,
    lookup: &Lookup,
    guessed: Option<(String, Vec<u8>)>,
) -> Result<Attempt, ApiError> {
    let keyring = keyring(&ctx.env)?;
    let Some(blob) = store.current_blob(record, lookup, guessed).await? else {
        return Ok(Attempt::BlobMissing);
    };
    let plaintext = keys::open_secret(
        &keyring,
        store,
        ctx.now.as_unix_millis(),
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
            .audit(&read_event(ctx, caller, record, Outcome::Error)?)
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
            ctx.now,
            &read_event(ctx, caller, record, Outcome::Success)?,
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
