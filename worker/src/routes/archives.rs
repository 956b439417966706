//! The tenant's audit archive: `GET /api/v1/audit/archives` (its objects)
//! and `GET /api/v1/audit/archives/{day}` (a day's events as NDJSON),
//! role admin, the tenant's own archive only.
use coffer_core::{parse_page_limit, Action, TenantId};
use serde_json::json;
use worker::{js_sys::Uint8Array, wasm_bindgen_futures, wasm_bindgen_futures::JsFuture};

use super::{cursor_param, render};
use crate::{
    access,
    archive::{count_lines, gzip, hex, sha256},
    context::{Ctx, Reply},
    error::{ApiError, Missing, Place},
    store::{valid_day, ArchiveBucket, ArchiveObject, Cursor},
};

fn query(ctx: &Ctx, name: &str) -> Option<String> {
    ctx.query_pairs()
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

fn day_param(raw: Option<String>, place: Place, field: &str) -> Result<Option<String>, ApiError> {
    match raw {
        Some(day) if valid_day(&day) => Ok(Some(day)),
        Some(_) => Err(ApiError::invalid(
            place,
            field,
            "must be a date, yyyy-mm-dd",
            "value_error",
        )),
        None => Ok(None),
    }
}

/// `GET /api/v1/audit/archives[?from=&to=&cursor=&limit=]`: the tenant's
/// archive objects, oldest day first, `from` and `to` inclusive.
pub(crate) async fn list(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    access::admit(&caller, Action::ReadAudit)?;
    let limit = parse_page_limit(query(ctx, "limit").as_deref())
        .map_err(|error| ApiError::invalid(Place::Query, "limit", error, "value_error"))?;
    let from = day_param(query(ctx, "from"), Place::Query, "from")?;
    let to = day_param(query(ctx, "to"), Place::Query, "to")?;
    let scope = format!(
        "archives|{}|{}|{}",
        caller.tenant,
        from.as_deref().unwrap_or_default(),
        to.as_deref().unwrap_or_default()
    );
    let cursor = cursor_param(query(ctx, "cursor"), &scope)?;
    let store = ctx.store()?;
    // A deleted tenant's archive is being shredded: 410, as for its other
    // tenant-level routes.
    store.check_tenant_live(caller.tenant).await?;
    let bucket = ArchiveBucket::open(&ctx.env, &store)?;
    let after = cursor.as_ref().map(|c| (c.id.as_str(), c.created_at));
    let (mut objects, truncated) = bucket
        .list(caller.tenant, from.as_deref(), after, limit + 1)
        .await?;
    let past_to = |object: &ArchiveObject| to.as_deref().is_some_and(|to| object.day.as_str() > to);
    let ended = objects.iter().any(past_to);
    objects.retain(|object| !past_to(object));
    let more = !ended && (objects.len() > limit as usize || truncated);
    objects.truncate(limit as usize);
    let next = if more {
        objects.last().map(|last| {
            Cursor {
                created_at: last.first_seq,
                id: last.day.clone(),
            }
            .encode(&scope)
        })
    } else {
        None
    };
    let items: Vec<_> = objects.iter().map(render::archive_object).collect();
    Ok(Reply::ok(render::envelope(
        ctx.now,
        "Audit archives retrieved successfully",
        render::credentials_page(items, next),
    )))
}

/// `GET /api/v1/audit/archives/{day}`: the day's archived events, as
/// NDJSON, in order; each object is checked against its count and hash
/// before its events are sent. 404 when the tenant has none that day.
pub(crate) async fn day(ctx: &Ctx) -> Result<Reply, ApiError> {
    let caller = ctx.caller().await?;
    access::admit(&caller, Action::ReadAudit)?;
    let day =
        day_param(Some(ctx.param("day").to_string()), Place::Path, "day")?.unwrap_or_default();
    let store = ctx.store()?;
    store.check_tenant_live(caller.tenant).await?;
    let bucket = ArchiveBucket::open(&ctx.env, &store)?;
    let objects = bucket.day(caller.tenant, &day).await?;
    if objects.is_empty() {
        return Err(ApiError::NotFound(Missing::ArchiveDay(day)));
    }
    Ok(Reply::streamed(
        "application/x-ndjson",
        stream(bucket, caller.tenant, objects)?,
    ))
}

/// Each object's events in turn, written into a `TransformStream` whose
/// readable side is the response body: objects are fetched, decompressed
/// and checked one at a time after the response has started, so a day of
/// any size costs the Worker one object of memory. (The runtime's streams,
/// not a Rust stream adapter: that would cost the `.wasm` more than this
/// whole route.) A missing or altered object aborts the stream (the client
/// sees a cut-off body, never events that do not match their hash), logged
/// with its key.
fn stream(
    bucket: ArchiveBucket,
    tenant: TenantId,
    objects: Vec<ArchiveObject>,
) -> Result<web_sys::ReadableStream, ApiError> {
    let pipe =
        web_sys::TransformStream::new().map_err(|_| ApiError::internal("TransformStream"))?;
    let writer = pipe
        .writable()
        .get_writer()
        .map_err(|_| ApiError::internal("stream writer"))?;
    wasm_bindgen_futures::spawn_local(async move {
        for object in &objects {
            let written = match read_checked(&bucket, object).await {
                Ok(events) => {
                    let chunk = Uint8Array::from(events.as_slice());
                    JsFuture::from(writer.write_with_chunk(&chunk))
                        .await
                        .is_ok()
                }
                Err(error) => {
                    crate::log::json(
                        crate::log::Console::Error,
                        &json!({"level": "error", "event": "archive_read_failed",
                               "tenant": tenant.to_string(), "key": object.key,
                               "error": error.log_reason().unwrap_or("failed")}),
                    );
                    false
                }
            };
            if !written {
                let _ = JsFuture::from(writer.abort()).await;
                return;
            }
        }
        let _ = JsFuture::from(writer.close()).await;
    });
    Ok(pipe.readable())
}

async fn read_checked(bucket: &ArchiveBucket, object: &ArchiveObject) -> Result<Vec<u8>, ApiError> {
    let body = bucket
        .get(&object.key)
        .await?
        .ok_or_else(|| ApiError::internal("object vanished"))?;
    let plain = gzip(&body.gzip, false).await?;
    let digest = hex(&sha256(&plain).await?);
    let count = count_lines(&plain) as i64;
    if body.sha256.as_deref() != Some(digest.as_str()) || body.events != Some(count) {
        return Err(ApiError::internal(
            "object does not match its count and hash",
        ));
    }
    Ok(plain)
}
