//! The credentials surface, `/api/v1/credentials` and `/api/v1/audit`.
use coffer_core::{
    check_transition, parse_page_limit, Action, CredentialId, IntegrationId, Status, Version,
};
use serde_json::{json, Value};

use super::{
    actor, body, check_if_match, credential_id_param, credential_json, cursor_param, if_match,
    secret::{self, seal_for},
    IfMatch,
};
use crate::{
    access::{self, Target},
    context::{Caller, Ctx, Reply, Step},
    error::{ApiError, Place},
    random,
    store::{AuditAction, Filters, Outcome, Record, Store},
};

/// How many times a write without `If-Match` retries a lost compare-and-set.
const WRITE_ATTEMPTS: usize = 3;

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
    Ok(Reply::ok(ctx.envelope(
        "Credential details retrieved successfully",
        credential_json(record, ctx.now),
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
    let (record, credentials) = secret::read(ctx, &caller, &store, &target).await?;
    let data = credential_json(&record, ctx.now);
    Ok(
        Reply::ok(ctx.envelope("Credential retrieved successfully", data))
            .metadata(vec![Step::Key("data")], &record)
            .splice(
                vec![Step::Key("data"), Step::Key("credentials")],
                credentials,
            )
            .etag(record.version),
    )
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
        .map(|record| credential_json(record, ctx.now))
        .collect();
    let mut reply = Reply::ok(ctx.envelope(
        "Credentials retrieved successfully",
        json!({"items": items, "nextCursor": page.next.map(|c| c.encode(&scope))}),
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
    let who = actor(&caller);
    let mut record = Record {
        id: CredentialId::from_uuid(random::uuid()?),
        owner: caller.tenant,
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
        created_at: ctx.now,
        created_by: who.clone(),
        updated_at: ctx.now,
        updated_by: who,
        tenant_name: caller.principal.tenant_name().map(str::to_string),
        last_accessed_at: None,
        access_count: 0,
        version: Version::FIRST,
        secret_version: Version::FIRST,
        kid: String::new(),
        wrapped_dek: Vec::new(),
        blob_nonce: random::blob_nonce()?,
    };
    let sealed = seal_for(ctx, &record, input.secret.as_bytes())?;
    record.kid = sealed.kid;
    record.wrapped_dek = sealed.wrapped_dek;
    let audit = ctx.audit_event(
        &caller,
        record.owner,
        AuditAction::Create,
        Outcome::Success,
        Some(record.id),
    )?;
    ctx.store()?.insert(&record, &sealed.blob, &audit).await?;
    Ok(Reply::ok(ctx.envelope(
        "Credential stored successfully",
        credential_json(&record, ctx.now),
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

/// `PATCH /api/v1/credentials/{credentialId}`.
pub(crate) async fn update(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    let id = credential_id_param(ctx.param("id"), Place::Path, "credentialId")?;
    // Whoever could never update is refused before the body is read; the
    // full decision follows on the loaded record.
    access::admit(&caller, Action::Update)?;
    let patch = body::parse_patch(&body::read_body(ctx).await?)?;
    let expected = if_match(ctx);
    let store = ctx.store()?;
    for _ in 0..WRITE_ATTEMPTS {
        let current =
            load_for_write(ctx, &caller, &store, id, Action::Update, expected.as_ref()).await?;
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
            .map_err(|error| ApiError::internal(format!("version of {id}: {error}")))?;
        next.updated_at = ctx.now;
        next.updated_by = actor(&caller);
        let mut blob = None;
        if let Some(secret) = &patch.secret {
            next.secret_version = next.version;
            next.blob_nonce = random::blob_nonce()?;
            let sealed = seal_for(ctx, &next, secret.as_bytes())?;
            next.kid = sealed.kid;
            next.wrapped_dek = sealed.wrapped_dek;
            blob = Some(sealed.blob);
        }
        let audit = ctx.audit_event(
            &caller,
            current.owner,
            AuditAction::Update,
            Outcome::Success,
            Some(id),
        )?;
        if store
            .update(&next, current.version, blob.as_deref(), &audit)
            .await?
        {
            if blob.is_some() {
                // The old secret version is destroyed only after the commit.
                store.delete_blob(&current).await;
            }
            return Ok(Reply::ok(ctx.envelope(
                "Credential updated successfully",
                credential_json(&next, ctx.now),
            ))
            .metadata(vec![Step::Key("data")], &next)
            .etag(next.version));
        }
        if expected.is_some() {
            // Someone else changed it after our read: the precondition that
            // the client stated no longer holds.
            return Err(ApiError::PreconditionFailed {
                current: current.version.get() + 1,
            });
        }
    }
    Err(ApiError::internal(
        "update lost the compare-and-set repeatedly",
    ))
}

/// `DELETE /api/v1/credentials/{credentialId}`: the record, its shares and
/// its secret material are gone.
pub(crate) async fn delete(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    let id = credential_id_param(ctx.param("id"), Place::Path, "credentialId")?;
    let expected = if_match(ctx);
    let store = ctx.store()?;
    for _ in 0..WRITE_ATTEMPTS {
        let current =
            load_for_write(ctx, &caller, &store, id, Action::Delete, expected.as_ref()).await?;
        let audit = ctx.audit_event(
            &caller,
            current.owner,
            AuditAction::Delete,
            Outcome::Success,
            Some(id),
        )?;
        if store.delete(&current, current.version, &audit).await? {
            return Ok(Reply::ok(ctx.envelope(
                "Credential deleted successfully",
                json!({"id": id.prefixed(), "deleted": true}),
            )));
        }
        if expected.is_some() {
            return Err(ApiError::PreconditionFailed {
                current: current.version.get() + 1,
            });
        }
    }
    Err(ApiError::internal(
        "delete lost the compare-and-set repeatedly",
    ))
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
    let page = ctx
        .store()?
        .list_audit(caller.tenant, credential, cursor.as_ref(), limit)
        .await?;
    Ok(Reply::ok(ctx.envelope(
        "Audit events retrieved successfully",
        json!({"items": page.items, "nextCursor": page.next.map(|c| c.encode(&scope))}),
    )))
}
