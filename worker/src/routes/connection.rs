//! The connection surface, `/connection`: owner-only credentials, metadata
//! for owners and the tenants a connection is shared with, and share
//! management for the owner tenant's admins.
use coffer_core::{parse_page_limit, Action, ApiVersion, ApiVersionError, CredentialId, TenantId};

use super::{check_if_match, cursor_param, if_match, render, secret};
use crate::{
    access::{self, Target},
    context::{Caller, Ctx, Reply, Step},
    error::{ApiError, Missing, Place},
    store::{AuditAction, Outcome},
};

/// Verifies the token and checks `x-api-version` (malformed 422,
/// unsupported 400), in that order, as FastAPI resolves the security
/// dependency before validating parameters.
async fn caller(ctx: &Ctx) -> Result<Caller, ApiError> {
    let caller = ctx.caller().await?;
    ApiVersion::parse(ctx.header("x-api-version").as_deref()).map_err(|error| match error {
        ApiVersionError::Unsupported => {
            ApiError::UnsupportedVersion(ctx.header("x-api-version").unwrap_or_default())
        }
        other => ApiError::invalid(
            Place::Header,
            "x-api-version",
            other,
            "date_from_datetime_parsing",
        ),
    })?;
    Ok(caller)
}

/// A path UUID (the connection surface takes bare UUIDs only).
fn uuid_param(ctx: &Ctx, name: &str) -> Result<CredentialId, ApiError> {
    let raw = ctx.param(name);
    let bad = |message: &str| ApiError::invalid(Place::Path, name, message, "uuid_parsing");
    if raw.len() != 36 {
        return Err(bad("Input should be a valid UUID"));
    }
    CredentialId::parse(raw).map_err(|_| bad("Input should be a valid UUID"))
}

/// `GET /connection/{connection_id}/credentials`: owner tenant, role user.
pub(crate) async fn credentials(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = caller(ctx).await?;
    let id = uuid_param(ctx, "connection_id")?;
    let store = ctx.store()?;
    let (record, credentials) = secret::read(ctx, &caller, &store, &Target::connection(id)).await?;
    Ok(Reply::ok(render::connection_secret(&record))
        .splice(
            vec![Step::Key("data"), Step::Key("credentials")],
            credentials,
        )
        .etag(record.version))
}

/// `GET /connection/{connection_id}`: metadata, owner or shared, viewer.
pub(crate) async fn get(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = caller(ctx).await?;
    let id = uuid_param(ctx, "connection_id")?;
    let store = ctx.store()?;
    let visible = access::load_visible(
        ctx,
        &store,
        &caller,
        &Target::connection(id),
        Action::ReadMetadata,
    )
    .await?;
    let record = visible.record();
    Ok(Reply::ok(render::data(render::connection(
        record,
        caller.tenant,
        ctx.now,
    )))
    .metadata(vec![Step::Key("data")], record)
    .etag(record.version))
}

/// `GET /connection`: own and shared connections, paginated.
pub(crate) async fn list(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = caller(ctx).await?;
    access::admit(&caller, Action::List)?;
    let query = ctx.query_pairs();
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let limit = parse_page_limit(get("limit").as_deref())
        .map_err(|error| ApiError::invalid(Place::Query, "limit", error, "value_error"))?;
    let integration = match get("integration_id") {
        Some(raw) => Some(
            coffer_core::IntegrationId::parse(&raw)
                .map_err(|error| {
                    ApiError::invalid(Place::Query, "integration_id", error, "value_error")
                })?
                .as_str()
                .to_string(),
        ),
        None => None,
    };
    let scope = format!(
        "connection|{}|{}",
        caller.tenant,
        integration.as_deref().unwrap_or("")
    );
    let cursor = cursor_param(get("cursor"), &scope)?;
    let page = ctx
        .store()?
        .list_connections(
            caller.tenant,
            integration.as_deref(),
            cursor.as_ref(),
            limit,
        )
        .await?;
    let items: Vec<_> = page
        .items
        .iter()
        .map(|(record, _)| render::connection(record, caller.tenant, ctx.now))
        .collect();
    let mut reply = Reply::ok(render::connection_page(
        items,
        page.next.map(|c| c.encode(&scope)),
    ));
    for (index, (record, _)) in page.items.iter().enumerate() {
        reply = reply.metadata(vec![Step::Key("data"), Step::Index(index)], record);
    }
    Ok(reply)
}

/// `GET /connection/{connection_id}/shares`: owner tenant, admin.
pub(crate) async fn shares(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = caller(ctx).await?;
    let id = uuid_param(ctx, "connection_id")?;
    let store = ctx.store()?;
    let visible =
        access::load_visible(ctx, &store, &caller, &Target::connection(id), Action::Share).await?;
    let record = visible.record();
    let shares: Vec<_> = store
        .list_shares(id)
        .await?
        .iter()
        .map(render::share)
        .collect();
    Ok(Reply::ok(render::data(shares.into())).etag(record.version))
}

fn tenant_param(ctx: &Ctx) -> Result<TenantId, ApiError> {
    TenantId::parse(ctx.param("tenant_id"))
        .map_err(|error| ApiError::invalid(Place::Path, "tenant_id", error, "uuid_parsing"))
}

/// `PUT /connection/{connection_id}/shares/{tenant_id}`: idempotent grant.
pub(crate) async fn grant(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = caller(ctx).await?;
    let id = uuid_param(ctx, "connection_id")?;
    let tenant = tenant_param(ctx)?;
    let store = ctx.store()?;
    let visible =
        access::load_visible(ctx, &store, &caller, &Target::connection(id), Action::Share).await?;
    let record = visible.record();
    check_if_match(if_match(ctx).as_ref(), record)?;
    if tenant == record.owner {
        return Err(ApiError::invalid(
            Place::Path,
            "tenant_id",
            "a connection cannot be shared with its owner tenant",
            "value_error",
        ));
    }
    let audit = ctx.audit_event(
        &caller,
        record.owner,
        AuditAction::ShareGrant,
        Outcome::Success,
        Some(id),
    )?;
    let share = store
        .grant_share(id, tenant, ctx.now, caller.principal.sub(), &audit)
        .await?
        .ok_or_else(|| ApiError::NotFound(Missing::Credential(id.to_string())))?;
    Ok(Reply::ok(render::data(render::share(&share))).etag(record.version))
}

/// `DELETE /connection/{connection_id}/shares/{tenant_id}`: 204, also when
/// there was no such share.
pub(crate) async fn revoke(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = caller(ctx).await?;
    let id = uuid_param(ctx, "connection_id")?;
    let tenant = tenant_param(ctx)?;
    let store = ctx.store()?;
    let visible =
        access::load_visible(ctx, &store, &caller, &Target::connection(id), Action::Share).await?;
    let record = visible.record();
    check_if_match(if_match(ctx).as_ref(), record)?;
    let audit = ctx.audit_event(
        &caller,
        record.owner,
        AuditAction::ShareRevoke,
        Outcome::Success,
        Some(id),
    )?;
    store.revoke_share(id, tenant, &audit).await?;
    Ok(Reply::no_content().etag(record.version))
}
