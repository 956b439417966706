//! Tenant-level key operations (issue 16): crypto-shredding a tenant and
//! rotating its key.
use coffer_core::{rewrap_data_key, Action, Binding};
use serde_json::json;

use super::render;
use crate::{
    access,
    context::{Ctx, Reply},
    error::{ApiError, Place},
    keyring::keyring,
    keys, random,
    store::{AuditAction, Outcome, TenantWrap},
};

/// Data keys rewrapped per D1 batch, and batches per request, of a
/// tenant-key rotation; a larger tenant takes several calls (each resumes).
const ROTATE_BATCH: u32 = 100;
const ROTATE_BATCHES: usize = 5;

/// The header that must repeat the tenant id for a deletion.
const CONFIRM_HEADER: &str = "x-confirm-tenant-deletion";

/// `DELETE /api/v1/tenant`: deletes the acting tenant. Admin; the header
/// `x-confirm-tenant-deletion` must name the tenant (else 400). The tenant
/// keys are destroyed in the same D1 batch that marks the tenant deleted,
/// so from this answer (202) on none of its secrets can be opened, from D1,
/// KV or any copy of them; the sweep then removes its rows and blobs.
pub(crate) async fn delete(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    access::admit(&caller, Action::DeleteTenant)?;
    let confirmed = ctx.header(CONFIRM_HEADER).is_some_and(|value| {
        value
            .trim()
            .eq_ignore_ascii_case(&caller.tenant.to_string())
    });
    if !confirmed {
        return Err(ApiError::invalid(
            Place::Header,
            CONFIRM_HEADER,
            "must be the id of the tenant being deleted",
            "value_error",
        ));
    }
    let audit = ctx.audit_event(
        &caller,
        caller.tenant,
        AuditAction::TenantDelete,
        Outcome::Success,
        None,
    )?;
    let store = ctx.store()?;
    if !store
        .delete_tenant(
            caller.tenant,
            caller.principal.sub(),
            ctx.now.as_unix_millis(),
            &audit,
        )
        .await?
    {
        return Err(ApiError::TenantDeleted);
    }
    keys::forget_active(caller.tenant);
    Ok(Reply::ok(render::envelope(
        ctx.now,
        "Tenant deleted; its secrets are unrecoverable and its data is being removed",
        render::tenant_deleted(caller.tenant),
    ))
    .status(202))
}

/// `POST /api/v1/tenant/keys/rotate`: rotates the acting tenant's key.
/// Admin. Starts a rotation (a new active tenant key; the old one retires)
/// unless one is in progress, then rewraps up to 500 of the tenant's data
/// keys from the retiring key to the active one, in batches that each
/// compare-and-set on the old wrap; the retiring key is deleted once none
/// is left under it. 202 while data keys remain (call again to resume),
/// 200 when the rotation is complete.
pub(crate) async fn rotate_key(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    access::admit(&caller, Action::RotateTenantKey)?;
    let now_ms = ctx.now.as_unix_millis();
    let tenant = caller.tenant;
    let store = ctx.store()?;
    let keyring = keyring(&ctx.env)?;
    let mut started = false;
    let retiring = match store.retiring_tenant_key(tenant).await? {
        Some(retiring) => retiring,
        None => {
            // Makes sure the tenant has a key (and is not deleted).
            keys::for_write(&keyring, &store, tenant, now_ms).await?;
            let Some(active) = store.active_tenant_key(tenant).await? else {
                return Err(ApiError::TenantDeleted);
            };
            let next_version = active
                .version
                .checked_add(1)
                .ok_or_else(|| ApiError::internal("tenant key versions exhausted"))?;
            let next = keys::new_stored(&keyring, &store, tenant, next_version, now_ms).await?;
            let audit = ctx.audit_event(
                &caller,
                tenant,
                AuditAction::TenantKeyRotate,
                Outcome::Success,
                None,
            )?;
            started = store
                .start_tenant_key_rotation(&active, &next, now_ms, &audit)
                .await?;
            if !started {
                // Another rotation began first: this new key is nobody's.
                store
                    .delete_kv_half(tenant, next.version, &next.kv_nonce)
                    .await;
            }
            keys::forget_active(tenant);
            match store.retiring_tenant_key(tenant).await? {
                Some(retiring) => retiring,
                None => return Err(ApiError::internal("a tenant-key rotation did not start")),
            }
        }
    };
    let Some(active) = store.active_tenant_key(tenant).await? else {
        return Err(ApiError::TenantDeleted);
    };
    let from = keys::unwrap(
        &keyring,
        &store,
        now_ms,
        tenant,
        retiring.version,
        &retiring.reference(),
    )
    .await?
    .ok_or_else(|| ApiError::internal("the retiring tenant key does not unwrap"))?;
    let to = keys::unwrap(
        &keyring,
        &store,
        now_ms,
        tenant,
        active.version,
        &active.reference(),
    )
    .await?
    .ok_or_else(|| ApiError::internal("the active tenant key does not unwrap"))?;
    let (mut rewrapped, mut failed, mut batches) = (0, 0, 0);
    for earlier in [false, true] {
        let mut after = (String::new(), 0_i64);
        while batches < ROTATE_BATCHES {
            batches += 1;
            let wraps: Vec<TenantWrap> = store
                .wraps_under(
                    tenant,
                    retiring.version,
                    earlier,
                    (&after.0, after.1),
                    ROTATE_BATCH,
                )
                .await?;
            let mut moves = Vec::with_capacity(wraps.len());
            for wrap in &wraps {
                let binding = Binding {
                    tenant,
                    credential: wrap.id,
                    version: u64::try_from(wrap.secret_version).unwrap_or(0),
                };
                match rewrap_data_key(&from, &to, &mut random::rng(), &binding, &wrap.wrapped_dek) {
                    Ok(moved) => moves.push((
                        wrap.id,
                        wrap.secret_version,
                        wrap.earlier,
                        wrap.wrapped_dek.clone(),
                        moved,
                        active.version,
                    )),
                    Err(_) => failed += 1,
                }
            }
            rewrapped += store.move_wraps(&moves).await?;
            match wraps.last() {
                Some(last) if wraps.len() == ROTATE_BATCH as usize => {
                    after = (last.id.to_string(), last.secret_version);
                }
                _ => break,
            }
        }
    }
    let remaining = store.count_wraps_under(tenant, retiring.version).await?;
    let complete = remaining == 0 && store.delete_retired_key(tenant, retiring.version).await?;
    if failed > 0 {
        crate::log::json(
            crate::log::Console::Error,
            &json!({"level": "error", "event": "tenant_key_rotation", "tenant": tenant.to_string(),
                   "failed": failed, "error": "data keys that do not unwrap under the retiring key"}),
        );
    }
    Ok(Reply::ok(render::envelope(
        ctx.now,
        if complete {
            "Tenant key rotated"
        } else {
            "Tenant key rotation in progress; call again to resume"
        },
        render::tenant_key_rotation(active.version, started, rewrapped, remaining, complete),
    ))
    .status(if complete { 200 } else { 202 }))
}
