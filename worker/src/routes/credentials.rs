//! The credentials surface, `/api/v1/credentials` and `/api/v1/audit`.
use coffer_core::{
    check_transition, parse_page_limit, Action, CredentialId, IntegrationId, Relation, Status,
};
use serde_json::{json, Value};

use super::{
    actor, admit, allow, body, check_if_match, credential_id_param, credential_json, cursor_param,
    event, if_match, relation,
    secret::{self, new_blob_nonce, new_credential_id, seal_for},
    versions, versions_kept, IfMatch,
};
use crate::{
    error::{ApiError, Missing, Place},
    http::{Caller, Ctx, Reply, Step},
    keys,
    store::{AuditAction, Filters, Lookup, Outcome, Record, Store},
};

/// How many times a write without `If-Match` retries a lost compare-and-set.
pub(super) const WRITE_ATTEMPTS: usize = 3;

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

/// Loads the record `GET .../{integrationId}[...]?credentialId=` names, with
/// the acting tenant's relation to it: by id (owned or shared; another
/// integration's record is not found), else by the selection rule.
async fn load_for_integration(
    ctx: &Ctx,
    caller: &Caller,
    store: &Store,
    integration: &IntegrationId,
) -> Result<(Option<(Record, bool)>, Missing), ApiError> {
    match query(ctx, "credentialId") {
        Some(raw) => {
            let id = credential_id_param(&raw, Place::Query, "credentialId")?;
            let found = store
                .find(id, caller.tenant)
                .await?
                .filter(|(record, _)| record.integration == integration.as_str());
            Ok((found, Missing::Credential(id.prefixed())))
        }
        None => {
            let found = store
                .select_for_integration(caller.tenant, integration.as_str(), ctx.now_ms)
                .await?
                .map(|record| (record, false));
            Ok((
                found,
                Missing::Integration(integration.as_str().to_string()),
            ))
        }
    }
}

/// `GET /api/v1/credentials/{integrationId}/details`: metadata, viewer.
pub(crate) async fn details(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    let integration = integration_param(ctx, "integrationId")?;
    let store = ctx.store()?;
    let (found, missing) = load_for_integration(ctx, &caller, &store, &integration).await?;
    let rel = found
        .as_ref()
        .map(|(r, shared)| relation(r, *shared, caller.tenant));
    allow(&caller, Action::ReadMetadata, rel, || missing)?;
    let Some((record, _)) = found else {
        return Err(ApiError::internal("policy allowed a missing record"));
    };
    Ok(Reply::ok(ctx.envelope(
        "Credential details retrieved successfully",
        credential_json(&record, ctx.now_ms),
    ))
    .metadata(vec![Step::Key("data")], &record)
    .etag(record.version as u64))
}

/// `GET /api/v1/credentials/{integrationId}`: metadata and the decrypted
/// secret, owner tenant and role user only.
pub(crate) async fn read(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    let integration = integration_param(ctx, "id")?;
    let store = ctx.store()?;
    let lookup = match query(ctx, "credentialId") {
        Some(raw) => Lookup::Id(credential_id_param(&raw, Place::Query, "credentialId")?),
        None => Lookup::Selection(caller.tenant, integration.as_str().to_string()),
    };
    if let Some(secret_version) = versions::requested_version(ctx)? {
        let (found, missing) = load_for_integration(ctx, &caller, &store, &integration).await?;
        let Some((record, shared)) = found else {
            allow(&caller, Action::ReadSecret, None, || missing)?;
            return Err(ApiError::internal("policy allowed a missing record"));
        };
        let found = secret::Found {
            record,
            shared,
            lookup,
            prefetched: None,
        };
        if found.record.secret_version != secret_version {
            return versions::read(ctx, &caller, &store, found, secret_version, missing).await;
        }
        // The current version: the ordinary read.
        let rendered = found.record.id.prefixed();
        let (record, credentials) =
            secret::read_secret(ctx, &caller, &store, found, rendered, missing).await?;
        let mut data = credential_json(&record, ctx.now_ms);
        data["secretVersion"] = json!(record.secret_version);
        return Ok(
            Reply::ok(ctx.envelope("Credential retrieved successfully", data))
                .metadata(vec![Step::Key("data")], &record)
                .splice(
                    vec![Step::Key("data"), Step::Key("credentials")],
                    credentials,
                )
                .etag(record.version as u64),
        );
    }
    let fast =
        secret::read_remembered(ctx, &caller, &store, &lookup, Some(integration.as_str())).await?;
    let (record, credentials) = match fast {
        Some(served) => served,
        None => {
            // The blob fetch runs alongside the D1 read; D1 still decides.
            let (loaded, prefetched) = futures_util::future::join(
                load_for_integration(ctx, &caller, &store, &integration),
                store.prefetch_blob(&lookup),
            )
            .await;
            let (found, missing) = loaded?;
            let Some((record, shared)) = found else {
                allow(&caller, Action::ReadSecret, None, || missing)?;
                return Err(ApiError::internal("policy allowed a missing record"));
            };
            let rendered = record.id.prefixed();
            let found = secret::Found {
                record,
                shared,
                lookup,
                prefetched,
            };
            secret::read_secret(ctx, &caller, &store, found, rendered, missing).await?
        }
    };
    let data = credential_json(&record, ctx.now_ms);
    Ok(
        Reply::ok(ctx.envelope("Credential retrieved successfully", data))
            .metadata(vec![Step::Key("data")], &record)
            .splice(
                vec![Step::Key("data"), Step::Key("credentials")],
                credentials,
            )
            .etag(record.version as u64),
    )
}

/// `GET /api/v1/credentials`: the tenant's own records, paginated.
pub(crate) async fn list(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    allow(&caller, Action::List, None, || {
        Missing::Integration(String::new())
    })?;
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
        .list(caller.tenant, &filters, cursor.as_ref(), limit, ctx.now_ms)
        .await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|record| credential_json(record, ctx.now_ms))
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
    allow(&caller, Action::Create, None, || {
        Missing::Integration(String::new())
    })?;
    let input = body::parse_create(&body::read_body(ctx).await?)?;
    let who = actor(&caller);
    let mut record = Record {
        id: new_credential_id(),
        owner: caller.tenant,
        integration: input.integration.as_str().to_string(),
        name: input.name,
        description: input.description,
        auth_type: input.auth_type.as_str().to_string(),
        scopes: input.scopes,
        token_endpoint: input.token_endpoint,
        authorization_endpoint: input.authorization_endpoint,
        metadata: input.metadata,
        status: Status::Active,
        expires_at: input.expires_at,
        created_at: ctx.now_ms,
        created_by: who.clone(),
        updated_at: ctx.now_ms,
        updated_by: who,
        tenant_name: caller.principal.tenant_name().map(str::to_string),
        last_accessed_at: None,
        access_count: 0,
        version: 1,
        secret_version: 1,
        kid: String::new(),
        wrapped_dek: Vec::new(),
        blob_nonce: new_blob_nonce(),
        tk_version: None,
        tenant_key: None,
        secret_at: None,
        secret_by: None,
    };
    let store = ctx.store()?;
    let audit = event(
        ctx,
        &caller,
        record.owner,
        AuditAction::Create,
        Outcome::Success,
        Some(record.id),
    );
    let mut stored = false;
    for _ in 0..WRITE_ATTEMPTS {
        let sealed = seal_for(ctx, &store, &mut record, input.secret.as_bytes()).await?;
        if store.insert(&record, &sealed.blob, &audit).await? {
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
    Ok(Reply::ok(ctx.envelope(
        "Credential stored successfully",
        credential_json(&record, ctx.now_ms),
    ))
    .metadata(vec![Step::Key("data")], &record)
    .status(201)
    .etag(1))
}

/// Loads a record by the `{id}` path parameter for a write, checking the
/// policy for `action` (a stranger's record is not found; a shared one is
/// forbidden) and `If-Match`.
async fn load_for_write(
    ctx: &Ctx,
    caller: &Caller,
    store: &Store,
    id: CredentialId,
    action: Action,
    expected: Option<&IfMatch>,
) -> Result<Record, ApiError> {
    let found = store.find(id, caller.tenant).await?;
    let rel: Option<Relation> = found
        .as_ref()
        .map(|(r, shared)| relation(r, *shared, caller.tenant));
    allow(caller, action, rel, || Missing::Credential(id.prefixed()))?;
    let Some((record, _)) = found else {
        return Err(ApiError::internal("policy allowed a missing record"));
    };
    let _ = ctx;
    check_if_match(expected, &record)?;
    Ok(record)
}

/// `PATCH /api/v1/credentials/{credentialId}`.
pub(crate) async fn update(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    let id = credential_id_param(ctx.param("id"), Place::Path, "credentialId")?;
    // Whoever could never update is refused before the body is read; the
    // full decision follows on the loaded record.
    admit(&caller, Action::Update)?;
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
        next.version = current.version + 1;
        next.updated_at = ctx.now_ms;
        next.updated_by = actor(&caller);
        let mut blob = None;
        if let Some(secret) = &patch.secret {
            next.secret_version = next.version;
            next.blob_nonce = new_blob_nonce();
            let sealed = seal_for(ctx, &store, &mut next, secret.as_bytes()).await?;
            blob = Some(sealed.blob);
        }
        let audit = event(
            ctx,
            &caller,
            current.owner,
            AuditAction::Update,
            Outcome::Success,
            Some(id),
        );
        if store
            .update(
                &next,
                current.version,
                blob.as_deref(),
                &audit,
                versions_kept(&ctx.env),
            )
            .await?
        {
            // The replaced secret version is kept as an earlier version.
            return Ok(Reply::ok(ctx.envelope(
                "Credential updated successfully",
                credential_json(&next, ctx.now_ms),
            ))
            .metadata(vec![Step::Key("data")], &next)
            .etag(next.version as u64));
        }
        if blob.is_some() {
            // Lost, or the tenant key it was sealed under is gone.
            keys::forget_active(current.owner);
        }
        if expected.is_some() {
            // Someone else changed it after our read: the precondition that
            // the client stated no longer holds.
            return Err(ApiError::PreconditionFailed {
                current: current.version as u64 + 1,
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
        let audit = event(
            ctx,
            &caller,
            current.owner,
            AuditAction::Delete,
            Outcome::Success,
            Some(id),
        );
        if store.delete(&current, current.version, &audit).await? {
            return Ok(Reply::ok(ctx.envelope(
                "Credential deleted successfully",
                json!({"id": id.prefixed(), "deleted": true}),
            )));
        }
        if expected.is_some() {
            return Err(ApiError::PreconditionFailed {
                current: current.version as u64 + 1,
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
    allow(&caller, Action::ReadAudit, None, || {
        Missing::Integration(String::new())
    })?;
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
