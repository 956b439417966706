//! The credentials surface, `/api/v1/credentials` and `/api/v1/audit`.
use coffer_core::{
    check_secret_servable, effective_status, parse_page_limit, Action, CredentialId, IntegrationId,
    Status, Version,
};
use serde_json::Value;

use super::{
    body,
    change::{actor, apply_patch, Author},
    check_if_match, credential_id_param, cursor_param, if_match, render,
    secret::{self, seal_into},
    versions, versions_kept, IfMatch,
};
use crate::{
    access::{self, Target},
    context::{Caller, Ctx, Reply, Step},
    error::{ApiError, Place},
    keys, random,
    refresh::{self, Attempted, Config, RefreshActor, Refresher},
    store::{AuditAction, Filters, Outcome, Record, Store},
};

/// How many times a write without `If-Match` tries its compare-and-set.
/// Three lost to four concurrent writers of 16 records in
/// `data_safety`'s rewrap race under one seed (a 500 for a plain `PATCH`);
/// six leave that run a margin of two.
pub(super) const WRITE_ATTEMPTS: usize = 6;

fn query(ctx: &Ctx, name: &str) -> Option<String> {
    ctx.query_pairs()
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

fn integration_param(ctx: &Ctx, name: &str) -> Result<IntegrationId, ApiError> {
    IntegrationId::parse(ctx.param(name))
        .map_err(|error| ApiError::invalid(Place::Path, "integrationId", error, "value_error"))
}

fn limit(ctx: &Ctx) -> Result<u32, ApiError> {
    parse_page_limit(query(ctx, "limit").as_deref())
        .map_err(|error| ApiError::invalid(Place::Query, "limit", error, "value_error"))
}

/// What `GET .../{integrationId}[...]?credentialId=` names: the record by
/// id within the integration (owned or shared; another integration's
/// record is not found), else the selection rule's pick.
fn integration_target(
    ctx: &Ctx,
    caller: &Caller,
    integration: IntegrationId,
) -> Result<Target, ApiError> {
    Ok(match query(ctx, "credentialId") {
        Some(raw) => {
            let id = credential_id_param(&raw, Place::Query, "credentialId")?;
            Target::credential_in(id, integration)
        }
        None => Target::selection(caller.tenant, integration),
    })
}

/// `GET /api/v1/credentials/{integrationId}/details`: metadata, viewer.
pub(crate) async fn details(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    let integration = integration_param(ctx, "integrationId")?;
    let store = ctx.store()?;
    let target = integration_target(ctx, &caller, integration)?;
    let visible = access::load_visible(ctx, &store, &caller, &target, Action::ReadMetadata).await?;
    let record = visible.record();
    Ok(Reply::ok(render::envelope(
        ctx.now,
        "Credential details retrieved successfully",
        render::credential(record, ctx.now),
    ))
    .metadata(vec![Step::Key("data")], record)
    .etag(record.version))
}

/// `GET /api/v1/credentials/{integrationId}`: metadata and the decrypted
/// secret, owner tenant and role user only.
pub(crate) async fn read(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    let integration = integration_param(ctx, "id")?;
    let store = ctx.store()?;
    let target = integration_target(ctx, &caller, integration)?;
    let requested = versions::requested_version(ctx)?;
    if let Some(secret_version) = requested {
        // An earlier version: through the gate, then its own counted read.
        let visible =
            access::load_visible(ctx, &store, &caller, &target, Action::ReadSecret).await?;
        let current = i64::try_from(visible.record().secret_version.get()).unwrap_or(i64::MAX);
        if current != secret_version {
            return versions::read(ctx, &caller, &store, visible.into_record(), secret_version)
                .await;
        }
    }
    let (record, credentials) = secret::read(ctx, &caller, &store, &target).await?;
    let mut data = render::credential(&record, ctx.now);
    if requested.is_some() {
        data["secretVersion"] = serde_json::json!(record.secret_version.get());
    }
    Ok(Reply::ok(render::envelope(
        ctx.now,
        "Credential retrieved successfully",
        data,
    ))
    .metadata(vec![Step::Key("data")], &record)
    .splice(
        vec![Step::Key("data"), Step::Key("credentials")],
        credentials,
    )
    .etag(record.version))
}

/// `GET /api/v1/credentials`: the tenant's own records, paginated.
pub(crate) async fn list(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    access::admit(&caller, Action::List)?;
    let limit = limit(ctx)?;
    let mut filters = Filters::default();
    if let Some(raw) = query(ctx, "integrationId") {
        let integration = IntegrationId::parse(&raw).map_err(|error| {
            ApiError::invalid(Place::Query, "integrationId", error, "value_error")
        })?;
        filters.integration = Some(integration.as_str().to_string());
    }
    if let Some(raw) = query(ctx, "status") {
        filters.status =
            Some(Status::parse(&raw).map_err(|error| {
                ApiError::invalid(Place::Query, "status", error, "value_error")
            })?);
    }
    let scope = format!(
        "credentials|{}|{}|{}",
        caller.tenant,
        filters.integration.as_deref().unwrap_or(""),
        filters.status.map_or("", Status::as_str)
    );
    let cursor = cursor_param(query(ctx, "cursor"), &scope)?;
    let page = ctx
        .store()?
        .list(caller.tenant, &filters, cursor.as_ref(), limit, ctx.now)
        .await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|record| render::credential(record, ctx.now))
        .collect();
    let mut reply = Reply::ok(render::envelope(
        ctx.now,
        "Credentials retrieved successfully",
        render::credentials_page(items, page.next.map(|c| c.encode(&scope))),
    ));
    for (index, record) in page.items.iter().enumerate() {
        let at = vec![Step::Key("data"), Step::Key("items"), Step::Index(index)];
        reply = reply.metadata(at, record);
    }
    Ok(reply)
}

/// `POST /api/v1/credentials`: a new record and its first secret version.
pub(crate) async fn create(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    access::admit(&caller, Action::Create)?;
    let input = body::parse_create(&body::read_body(ctx).await?)?;
    let id = CredentialId::from_uuid(random::uuid()?);
    let (mut record, secret) = Record::create(
        input,
        &Author::of(&caller),
        ctx.now,
        id,
        random::blob_nonce()?,
    );
    let store = ctx.store()?;
    let audit = ctx.audit_event(
        &caller,
        record.owner,
        AuditAction::Create,
        Outcome::Success,
        Some(record.id),
    )?;
    let mut stored = false;
    for _ in 0..WRITE_ATTEMPTS {
        let blob = seal_into(ctx, &store, &mut record, &secret).await?;
        if store.insert(&record, &blob, &audit).await? {
            stored = true;
            break;
        }
        // The tenant key it was sealed under is gone (rotated and retired,
        // or the tenant deleted): look again.
        keys::forget_active(record.owner);
    }
    if !stored {
        return Err(ApiError::internal(
            "create found no tenant key to seal under",
        ));
    }
    Ok(Reply::ok(render::envelope(
        ctx.now,
        "Credential stored successfully",
        render::credential(&record, ctx.now),
    ))
    .metadata(vec![Step::Key("data")], &record)
    .status(201)
    .etag(Version::FIRST))
}

/// Loads a record by the `{id}` path parameter for a write through the
/// gate (a stranger's record is not found; a shared one is forbidden) and
/// checks `If-Match`.
async fn load_for_write(
    ctx: &Ctx,
    caller: &Caller,
    store: &Store,
    id: CredentialId,
    action: Action,
    expected: Option<&IfMatch>,
) -> Result<Record, ApiError> {
    let visible = access::load_visible(ctx, store, caller, &Target::credential(id), action).await?;
    check_if_match(expected, visible.record())?;
    Ok(visible.into_record())
}

/// What one compare-and-set write came to.
enum Write<T> {
    /// It committed.
    Won(T),
    /// Another writer changed the record after it was loaded at this version.
    Lost(Version),
}

/// Runs `attempt` (load → decide → compare-and-set) until it wins. A write
/// without `If-Match` loads again and retries a lost compare-and-set, at
/// most [`WRITE_ATTEMPTS`] times; one with `If-Match` answers 412, since
/// the precondition the client stated no longer holds.
async fn until_won<T>(
    expected: Option<&IfMatch>,
    what: &str,
    mut attempt: impl AsyncFnMut() -> Result<Write<T>, ApiError>,
) -> Result<T, ApiError> {
    for _ in 0..WRITE_ATTEMPTS {
        match attempt().await? {
            Write::Won(done) => return Ok(done),
            Write::Lost(loaded) if expected.is_some() => {
                return Err(ApiError::PreconditionFailed {
                    current: loaded.get() + 1,
                })
            }
            Write::Lost(_) => {}
        }
    }
    Err(ApiError::internal(format!(
        "{what} lost the compare-and-set repeatedly"
    )))
}

/// `PATCH /api/v1/credentials/{credentialId}`.
pub(crate) async fn update(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    let id = credential_id_param(ctx.param("id"), Place::Path, "credentialId")?;
    // Whoever could never update is refused before the body is read; the
    // full decision follows on the loaded record.
    access::admit(&caller, Action::Update)?;
    let patch = body::parse_patch(&body::read_body(ctx).await?)?;
    let ctx = &*ctx;
    let expected = if_match(ctx);
    let store = ctx.store()?;
    let next = until_won(expected.as_ref(), "update", async || {
        let current =
            load_for_write(ctx, &caller, &store, id, Action::Update, expected.as_ref()).await?;
        let mut next = apply_patch(
            &current,
            &patch,
            &actor(&caller),
            ctx.now,
            random::blob_nonce,
        )?;
        let blob = match &patch.secret {
            Some(secret) => Some(seal_into(ctx, &store, &mut next, secret).await?),
            None => None,
        };
        let audit = ctx.audit_event(
            &caller,
            current.owner,
            AuditAction::Update,
            Outcome::Success,
            Some(id),
        )?;
        if !store
            .update(
                &next,
                current.version,
                blob.as_deref(),
                &audit,
                versions_kept(&ctx.env),
            )
            .await?
        {
            if blob.is_some() {
                // Lost, or the tenant key it was sealed under is gone.
                keys::forget_active(current.owner);
            }
            return Ok(Write::Lost(current.version));
        }
        // The replaced secret version is kept as an earlier version.
        Ok(Write::Won(next))
    })
    .await?;
    Ok(Reply::ok(render::envelope(
        ctx.now,
        "Credential updated successfully",
        render::credential(&next, ctx.now),
    ))
    .metadata(vec![Step::Key("data")], &next)
    .etag(next.version))
}

/// `DELETE /api/v1/credentials/{credentialId}`: the record, its shares and
/// its secret material are gone.
pub(crate) async fn delete(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    let id = credential_id_param(ctx.param("id"), Place::Path, "credentialId")?;
    let expected = if_match(ctx);
    let store = ctx.store()?;
    until_won(expected.as_ref(), "delete", async || {
        let current =
            load_for_write(ctx, &caller, &store, id, Action::Delete, expected.as_ref()).await?;
        let audit = ctx.audit_event(
            &caller,
            current.owner,
            AuditAction::Delete,
            Outcome::Success,
            Some(id),
        )?;
        Ok(if store.delete(&current, current.version, &audit).await? {
            Write::Won(())
        } else {
            Write::Lost(current.version)
        })
    })
    .await?;
    Ok(Reply::ok(render::envelope(
        ctx.now,
        "Credential deleted successfully",
        render::deleted(id),
    )))
}

/// `GET /api/v1/audit`: the tenant's audit log, newest first, admin.
pub(crate) async fn audit(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    access::admit(&caller, Action::ReadAudit)?;
    let limit = limit(ctx)?;
    let credential = match query(ctx, "credentialId") {
        Some(raw) => Some(credential_id_param(&raw, Place::Query, "credentialId")?),
        None => None,
    };
    let scope = format!(
        "audit|{}|{}",
        caller.tenant,
        credential.map(|id| id.to_string()).unwrap_or_default()
    );
    let cursor = cursor_param(query(ctx, "cursor"), &scope)?;
    let audit = ctx
        .store()?
        .list_audit(caller.tenant, credential, cursor.as_ref(), limit)
        .await?;
    let page = audit.page;
    let items: Vec<Value> = page.items.iter().map(render::audit_event).collect();
    Ok(Reply::ok(render::envelope(
        ctx.now,
        "Audit events retrieved successfully",
        render::audit_page(
            items,
            page.next.map(|c| c.encode(&scope)),
            audit.archived_before,
        ),
    )))
}

/// `POST /api/v1/credentials/{credentialId}/refresh`: refreshes the OAuth2
/// token now, whatever its expiry, backoff or halt (owner tenant, editor;
/// no body). 200 with the details; 502 when the endpoint gave no token;
/// 409 for a record that does not refresh or is inactive or revoked. A
/// refresh already under way elsewhere is waited for, and its result served.
pub(crate) async fn refresh(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    let id = credential_id_param(ctx.param("id"), Place::Path, "credentialId")?;
    let store = ctx.store()?;
    let mut current = load_for_write(ctx, &caller, &store, id, Action::Update, None).await?;
    let refresher = Refresher {
        env: &ctx.env,
        store: &store,
        config: Config::from_env(&ctx.env),
        request_id: &ctx.request_id,
    };
    let who = RefreshActor {
        actor: actor(&caller),
        tenant: caller.tenant,
    };
    let deadline = ctx
        .now
        .as_unix_millis()
        .saturating_add(refresher.config.wait_ms);
    let mut delay_ms: u64 = 25;
    loop {
        let status = effective_status(current.status, current.expires_at, ctx.now);
        if check_secret_servable(status).is_err() {
            return Err(ApiError::NotActive(id.prefixed()));
        }
        if refresh::state(&current).refreshable().is_none() {
            return Err(ApiError::NotRefreshable(id.prefixed()));
        }
        let before = current.version;
        match refresher.attempt(&current, &who, true).await? {
            Attempted::Refreshed(next) => return Ok(refreshed(ctx, &next)),
            Attempted::Failed => return Err(ApiError::RefreshFailed(id.prefixed())),
            Attempted::Superseded | Attempted::Busy => {}
        }
        if refresh::now().as_unix_millis() >= deadline {
            return Err(ApiError::RefreshFailed(id.prefixed()));
        }
        worker::Delay::from(core::time::Duration::from_millis(delay_ms)).await;
        delay_ms = (delay_ms * 2).min(400);
        current = load_for_write(ctx, &caller, &store, id, Action::Update, None).await?;
        let refreshed_since = current.refresh.refreshed_at.is_some_and(|at| at >= ctx.now);
        if current.version != before && refreshed_since {
            // Another refresher finished meanwhile: its token is this one's.
            return Ok(refreshed(ctx, &current));
        }
    }
}

fn refreshed(ctx: &Ctx, record: &Record) -> Reply {
    Reply::ok(render::envelope(
        ctx.now,
        "Credential refreshed successfully",
        render::credential(record, ctx.now),
    ))
    .metadata(vec![Step::Key("data")], record)
    .etag(record.version)
}
