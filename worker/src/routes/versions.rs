//! Secret versions of a credential (issue 16): list, versioned read,
//! rollback, destroy. The current version lives on the record; earlier ones
//! in D1's `secret_versions`, up to `COFFER_SECRET_VERSIONS_KEPT` in all.
use coffer_core::{Action, Relation};
use serde_json::json;

use super::{
    actor, admit, allow, body, check_if_match, credential_id_param, credential_json, event,
    if_match, relation,
    secret::{self, binding, json_object_text, new_blob_nonce, seal_for, Secret},
    versions_kept, IfMatch, WRITE_ATTEMPTS,
};
use crate::{
    error::{ApiError, Missing, Place},
    http::{rfc3339, Caller, Ctx, Reply, Step},
    keys,
    store::{AuditAction, KeptVersion, Outcome, Record, Store},
};

/// Loads the `{id}` record for `action` (a stranger's is not found, a
/// shared one is forbidden: versions are the owner's), checking `If-Match`.
async fn load(
    caller: &Caller,
    store: &Store,
    action: Action,
    expected: Option<&IfMatch>,
    raw_id: &str,
) -> Result<Record, ApiError> {
    let id = credential_id_param(raw_id, Place::Path, "credentialId")?;
    let found = store.find(id, caller.tenant).await?;
    let rel: Option<Relation> = found
        .as_ref()
        .map(|(r, shared)| relation(r, *shared, caller.tenant));
    allow(caller, action, rel, || Missing::Credential(id.prefixed()))?;
    let Some((record, _)) = found else {
        return Err(ApiError::internal("policy allowed a missing record"));
    };
    check_if_match(expected, &record)?;
    Ok(record)
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

/// The version items of a record, newest first: the current version, then
/// the kept earlier ones.
fn items(record: &Record, earlier: &[KeptVersion]) -> Vec<serde_json::Value> {
    let current = json!({
        "secretVersion": record.secret_version,
        "createdAt": rfc3339(record.secret_at.unwrap_or(record.updated_at)),
        "createdBy": record.secret_by.clone().unwrap_or_else(|| record.updated_by.clone()),
        "current": true,
        "destroyed": false,
    });
    core::iter::once(current)
        .chain(earlier.iter().map(|version| {
            json!({
                "secretVersion": version.secret_version,
                "createdAt": rfc3339(version.created_at),
                "createdBy": version.created_by,
                "current": false,
                "destroyed": version.destroyed_at.is_some(),
            })
        }))
        .collect()
}

/// `GET /api/v1/credentials/{credentialId}/versions`: metadata of every
/// kept secret version, newest first. Owner tenant, viewer.
pub(crate) async fn list(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    let store = ctx.store()?;
    let record = load(&caller, &store, Action::ListVersions, None, ctx.param("id")).await?;
    let earlier = store.list_versions(&record).await?;
    Ok(Reply::ok(ctx.envelope(
        "Secret versions retrieved successfully",
        json!({"id": record.id.prefixed(), "items": items(&record, &earlier)}),
    ))
    .etag(record.version as u64))
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
    let keyring = super::keyring(&ctx.env)?;
    let mut version_binding = binding(record);
    version_binding.version = u64::try_from(secret_version).unwrap_or(0);
    let secret = keys::open_secret(
        &keyring,
        store,
        ctx.now_ms,
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
/// version is served by the ordinary read.
pub(crate) async fn read(
    ctx: &Ctx,
    caller: &Caller,
    store: &Store,
    found: secret::Found,
    secret_version: i64,
    missing: Missing,
) -> Result<Reply, ApiError> {
    let record = found.record;
    let rendered = record.id.prefixed();
    secret::check(
        ctx,
        caller,
        store,
        &record,
        found.shared,
        &rendered,
        &missing,
    )
    .await?;
    let (kept, secret) = match open_version(ctx, store, &record, secret_version).await {
        Ok(opened) => opened,
        Err(ApiError::VersionNotFound(n)) => return Err(ApiError::VersionNotFound(n)),
        Err(error) => {
            let mut failed = event(
                ctx,
                caller,
                record.owner,
                AuditAction::ReadSecret,
                Outcome::Error,
                Some(record.id),
            );
            failed.secret_version = Some(secret_version);
            store.audit(&failed).await?;
            return Err(error);
        }
    };
    let Some(wrap) = kept.wrap.as_ref() else {
        return Err(ApiError::VersionNotFound(secret_version));
    };
    let mut read_event = event(
        ctx,
        caller,
        record.owner,
        AuditAction::ReadSecret,
        Outcome::Success,
        Some(record.id),
    );
    read_event.secret_version = Some(secret_version);
    let counted = store
        .record_version_read(
            &record,
            secret_version,
            wrap,
            caller.tenant,
            ctx.now_ms,
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
    let mut data = credential_json(&record, ctx.now_ms);
    data["secretVersion"] = json!(secret_version);
    Ok(
        Reply::ok(ctx.envelope("Credential retrieved successfully", data))
            .metadata(vec![Step::Key("data")], &record)
            .splice(vec![Step::Key("data"), Step::Key("credentials")], secret)
            .etag(record.version as u64),
    )
}

/// `POST /api/v1/credentials/{credentialId}/rollback` `{"secretVersion": N}`:
/// seals version N's secret again as a new version (history only grows).
/// Editor; `If-Match` honoured; audited as `credential.rollback`.
pub(crate) async fn rollback(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    admit(&caller, Action::Rollback)?;
    let target = body::parse_rollback(&body::read_body(ctx).await?)?;
    let expected = if_match(ctx);
    let store = ctx.store()?;
    for _ in 0..WRITE_ATTEMPTS {
        let current = load(
            &caller,
            &store,
            Action::Rollback,
            expected.as_ref(),
            ctx.param("id"),
        )
        .await?;
        let secret = if target == current.secret_version {
            // Rolling back to the current version seals it again as well.
            let blob = store
                .blob(&current)
                .await?
                .ok_or_else(|| ApiError::internal("the current secret's blob is missing"))?;
            let keyring = super::keyring(&ctx.env)?;
            keys::open_secret(
                &keyring,
                &store,
                ctx.now_ms,
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
        next.version = current.version + 1;
        next.updated_at = ctx.now_ms;
        next.updated_by = actor(&caller);
        next.secret_version = next.version;
        next.blob_nonce = new_blob_nonce();
        let sealed = seal_for(ctx, &store, &mut next, secret.as_bytes()).await?;
        let mut audit = event(
            ctx,
            &caller,
            current.owner,
            AuditAction::Rollback,
            Outcome::Success,
            Some(current.id),
        );
        audit.secret_version = Some(target);
        if store
            .update(
                &next,
                current.version,
                Some(&sealed.blob),
                &audit,
                versions_kept(&ctx.env),
            )
            .await?
        {
            let mut data = credential_json(&next, ctx.now_ms);
            data["secretVersion"] = json!(next.secret_version);
            data["rolledBackFrom"] = json!(target);
            return Ok(
                Reply::ok(ctx.envelope("Credential rolled back successfully", data))
                    .metadata(vec![Step::Key("data")], &next)
                    .etag(next.version as u64),
            );
        }
        keys::forget_active(current.owner);
        if expected.is_some() {
            return Err(ApiError::PreconditionFailed {
                current: current.version as u64 + 1,
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
    let record = load(
        &caller,
        &store,
        Action::DestroyVersion,
        None,
        ctx.param("id"),
    )
    .await?;
    let target = version_param(ctx.param("n"), Place::Path)?;
    if target == record.secret_version {
        return Err(ApiError::CurrentVersion(target));
    }
    let mut audit = event(
        ctx,
        &caller,
        record.owner,
        AuditAction::DestroyVersion,
        Outcome::Success,
        Some(record.id),
    );
    audit.secret_version = Some(target);
    if !store
        .destroy_version(&record, target, ctx.now_ms, &audit)
        .await?
    {
        return Err(ApiError::VersionNotFound(target));
    }
    Ok(Reply::ok(ctx.envelope(
        "Secret version destroyed successfully",
        json!({"id": record.id.prefixed(), "secretVersion": target, "destroyed": true}),
    )))
}
