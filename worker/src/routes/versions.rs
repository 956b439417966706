//! Secret versions of a credential (issue 16): list, versioned read,
//! rollback, destroy. The current version lives on the record; earlier ones
//! in D1's `secret_versions`, up to `COFFER_SECRET_VERSIONS_KEPT` in all.
use coffer_core::{oauth, Action};
use serde_json::json;

use super::{
    body,
    change::actor,
    check_if_match, credential_id_param,
    credentials::WRITE_ATTEMPTS,
    if_match, render,
    secret::{binding, json_object_text, seal_into, Secret},
    versions_kept, IfMatch,
};
use crate::{
    access::{self, Target},
    context::{Caller, Ctx, Reply, Step},
    error::{ApiError, Place},
    keyring::keyring,
    keys, random,
    store::{AuditAction, KeptVersion, Outcome, Record, Store},
};

/// Loads the `{id}` record for `action` through the access gate (a
/// stranger's is not found, a shared one is forbidden: versions are the
/// owner's), checking `If-Match`.
async fn load(
    ctx: &Ctx,
    caller: &Caller,
    store: &Store,
    action: Action,
    expected: Option<&IfMatch>,
) -> Result<Record, ApiError> {
    let id = credential_id_param(ctx.param("id"), Place::Path, "credentialId")?;
    let visible = access::load_visible(ctx, store, caller, &Target::credential(id), action).await?;
    check_if_match(expected, visible.record())?;
    Ok(visible.into_record())
}

/// A record's current secret version as the version routes number it.
fn current_version(record: &Record) -> i64 {
    i64::try_from(record.secret_version.get()).unwrap_or(i64::MAX)
}

fn version_param(raw: &str, place: Place) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| (1..(1_i64 << 53)).contains(n))
        .ok_or_else(|| {
            ApiError::invalid(
                place,
                "secretVersion",
                "must be a positive integer",
                "value_error",
            )
        })
}

/// `GET /api/v1/credentials/{credentialId}/versions`: metadata of every
/// kept secret version, newest first. Owner tenant, viewer.
pub(crate) async fn list(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    let store = ctx.store()?;
    let record = load(ctx, &caller, &store, Action::ListVersions, None).await?;
    let earlier = store.list_versions(&record).await?;
    Ok(Reply::ok(render::envelope(
        ctx.now,
        "Secret versions retrieved successfully",
        render::versions(&record, &earlier),
    ))
    .etag(record.version))
}

/// The `secretVersion` query parameter of a decrypted read, if any.
pub(crate) fn requested_version(ctx: &Ctx) -> Result<Option<i64>, ApiError> {
    ctx.query_pairs()
        .into_iter()
        .find(|(key, _)| key == "secretVersion")
        .map(|(_, raw)| version_param(&raw, Place::Query))
        .transpose()
}

/// Opens an earlier version's secret; `Err(VersionNotFound)` when it is
/// not kept (never was, dropped, or destroyed).
async fn open_version(
    ctx: &Ctx,
    store: &Store,
    record: &Record,
    secret_version: i64,
) -> Result<(KeptVersion, Secret), ApiError> {
    let kept = store.find_version(record, secret_version).await?;
    let Some((kept, wrap)) = kept.and_then(|kept| kept.wrap.clone().map(|wrap| (kept, wrap)))
    else {
        return Err(ApiError::VersionNotFound(secret_version));
    };
    let Some(blob) = store.version_blob(record, secret_version, &wrap).await? else {
        return Err(ApiError::VersionNotFound(secret_version));
    };
    let keyring = keyring(&ctx.env)?;
    let mut version_binding = binding(record);
    version_binding.version = u64::try_from(secret_version).unwrap_or(0);
    let secret = keys::open_secret(
        &keyring,
        store,
        ctx.now.as_unix_millis(),
        &version_binding,
        wrap.tk_version,
        wrap.tenant_key.as_ref(),
        &wrap.wrapped_dek,
        &blob,
    )
    .await?
    .and_then(json_object_text)
    .ok_or_else(|| {
        ApiError::internal(format!(
            "secret version {secret_version} of {} does not open",
            record.id
        ))
    })?;
    Ok((kept, secret))
}

/// `GET /api/v1/credentials/{integrationId}?credentialId=…&secretVersion=N`:
/// the decrypted read of an earlier version, decided, counted and audited
/// as any decrypted read (the event names the version). The current
/// version is served by the ordinary read. `record` was loaded through the
/// access gate for `Action::ReadSecret` (policy and status decided, refusals
/// audited there).
pub(crate) async fn read(
    ctx: &Ctx,
    caller: &Caller,
    store: &Store,
    record: Record,
    secret_version: i64,
) -> Result<Reply, ApiError> {
    let (kept, secret) = match open_version(ctx, store, &record, secret_version).await {
        Ok(opened) => opened,
        Err(ApiError::VersionNotFound(n)) => return Err(ApiError::VersionNotFound(n)),
        Err(error) => {
            let mut failed = ctx.audit_event(
                caller,
                record.owner,
                AuditAction::ReadSecret,
                Outcome::Error,
                Some(record.id),
            )?;
            failed.secret_version = Some(secret_version);
            store.audit(&failed).await?;
            return Err(error);
        }
    };
    let Some(wrap) = kept.wrap.as_ref() else {
        return Err(ApiError::VersionNotFound(secret_version));
    };
    let mut read_event = ctx.audit_event(
        caller,
        record.owner,
        AuditAction::ReadSecret,
        Outcome::Success,
        Some(record.id),
    )?;
    read_event.secret_version = Some(secret_version);
    let counted = store
        .record_version_read(
            &record,
            secret_version,
            wrap,
            caller.tenant,
            ctx.now.as_unix_millis(),
            &read_event,
        )
        .await?;
    let Some((count, at)) = counted else {
        // Destroyed, or the record changed status or owner, since loaded.
        return Err(ApiError::VersionNotFound(secret_version));
    };
    let mut record = record;
    record.access_count = count;
    record.last_accessed_at = Some(at);
    let mut data = render::credential(&record, ctx.now);
    data["secretVersion"] = json!(secret_version);
    Ok(Reply::ok(render::envelope(
        ctx.now,
        "Credential retrieved successfully",
        data,
    ))
    .metadata(vec![Step::Key("data")], &record)
    .splice(vec![Step::Key("data"), Step::Key("credentials")], secret)
    .etag(record.version))
}

/// `POST /api/v1/credentials/{credentialId}/rollback` `{"secretVersion": N}`:
/// seals version N's secret again as a new version (history only grows).
/// Editor; `If-Match` honoured; audited as `credential.rollback`.
pub(crate) async fn rollback(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    access::admit(&caller, Action::Rollback)?;
    let target = body::parse_rollback(&body::read_body(ctx).await?)?;
    let expected = if_match(ctx);
    let ctx = &*ctx;
    let store = ctx.store()?;
    for _ in 0..WRITE_ATTEMPTS {
        let current = load(ctx, &caller, &store, Action::Rollback, expected.as_ref()).await?;
        let secret = if target == current_version(&current) {
            // Rolling back to the current version seals it again as well.
            let blob = store
                .blob(&current)
                .await?
                .ok_or_else(|| ApiError::internal("the current secret's blob is missing"))?;
            let keyring = keyring(&ctx.env)?;
            keys::open_secret(
                &keyring,
                &store,
                ctx.now.as_unix_millis(),
                &binding(&current),
                current.tk_version,
                current.tenant_key.as_ref(),
                &current.wrapped_dek,
                &blob,
            )
            .await?
            .and_then(json_object_text)
            .ok_or_else(|| ApiError::internal("the current secret does not open"))?
        } else {
            open_version(ctx, &store, &current, target).await?.1
        };
        let mut next = current.clone();
        next.version = current
            .version
            .next()
            .map_err(|error| ApiError::internal(format!("version of {}: {error}", current.id)))?;
        next.updated_at = ctx.now;
        next.updated_by = actor(&caller);
        next.secret_version = next.version;
        next.blob_nonce = random::blob_nonce()?;
        // A rollback is a secret write like a `PATCH`: the refresh grant
        // follows the restored secret, and a backoff or halt of token
        // refreshes ends (`UPDATE_WITH_SECRET` does the same in D1).
        next.refresh.grant = oauth::grant_for(current.auth_type, &secret);
        next.refresh.failures = 0;
        next.refresh.not_before = None;
        next.refresh.halted = false;
        let blob = seal_into(ctx, &store, &mut next, &secret).await?;
        let mut audit = ctx.audit_event(
            &caller,
            current.owner,
            AuditAction::Rollback,
            Outcome::Success,
            Some(current.id),
        )?;
        audit.secret_version = Some(target);
        if store
            .update(
                &next,
                current.version,
                Some(&blob),
                &audit,
                versions_kept(&ctx.env),
            )
            .await?
        {
            let mut data = render::credential(&next, ctx.now);
            data["secretVersion"] = json!(next.secret_version.get());
            data["rolledBackFrom"] = json!(target);
            return Ok(Reply::ok(render::envelope(
                ctx.now,
                "Credential rolled back successfully",
                data,
            ))
            .metadata(vec![Step::Key("data")], &next)
            .etag(next.version));
        }
        keys::forget_active(current.owner);
        if expected.is_some() {
            return Err(ApiError::PreconditionFailed {
                current: current.version.get() + 1,
            });
        }
    }
    Err(ApiError::internal(
        "rollback lost the compare-and-set repeatedly",
    ))
}

/// `DELETE /api/v1/credentials/{credentialId}/versions/{N}`: destroys an
/// earlier version irrecoverably (data key dropped, blob deleted). Admin;
/// the current version is refused (409); audited as
/// `credential.destroy_version`.
pub(crate) async fn destroy(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    let store = ctx.store()?;
    let record = load(ctx, &caller, &store, Action::DestroyVersion, None).await?;
    let target = version_param(ctx.param("n"), Place::Path)?;
    if target == current_version(&record) {
        return Err(ApiError::CurrentVersion(target));
    }
    let mut audit = ctx.audit_event(
        &caller,
        record.owner,
        AuditAction::DestroyVersion,
        Outcome::Success,
        Some(record.id),
    )?;
    audit.secret_version = Some(target);
    if !store
        .destroy_version(&record, target, ctx.now.as_unix_millis(), &audit)
        .await?
    {
        return Err(ApiError::VersionNotFound(target));
    }
    Ok(Reply::ok(render::envelope(
        ctx.now,
        "Secret version destroyed successfully",
        render::version_destroyed(record.id, target),
    )))
}
