//! The audit archive: events older than `COFFER_AUDIT_RETENTION_DAYS` move
//! from D1 to the R2 bucket `AUDIT`, per tenant and UTC day, as gzip NDJSON
//! in the audit route's event shape.
//!
//! One object at a time: the oldest event in D1 names a tenant; that
//! tenant's events from it on, of the same UTC day and past retention, up
//! to [`OBJECT_EVENTS`], become one object whose custom metadata holds the
//! event count and the SHA-256 of the uncompressed NDJSON. The object is
//! read back, decompressed and hashed; only when count and hash match does
//! one D1 batch delete exactly those events (and only if D1 still holds
//! exactly that many). A run that stops between the write and the delete
//! leaves the object and the events; the next run finds the object by its
//! first sequence number, checks it against the same events and deletes
//! them, so nothing is lost and nothing is archived twice.
//!
//! Compression and hashing are the runtime's (`CompressionStream`,
//! `DecompressionStream`, `crypto.subtle.digest`): no code for either is
//! compiled into the `.wasm`.
use coffer_core::TenantId;
use serde_json::{json, Value};
use wasm_bindgen::{JsCast as _, JsValue};
use worker::{
    js_sys::{Array, ArrayBuffer, Function, Promise, Reflect, Uint8Array},
    wasm_bindgen_futures::JsFuture,
    Env,
};

use crate::{
    env,
    error::ApiError,
    store::{object_key, ArchiveBucket, AuditEntry, DueEvent, Store},
};

/// Events per archive object at most.
pub(crate) const OBJECT_EVENTS: u32 = 1_000;
/// Objects written per sweep run when `COFFER_AUDIT_ARCHIVE_OBJECTS_PER_RUN`
/// is unset: 100,000 events every 15 minutes keep up with about 111
/// decrypted reads per second. Each object costs three D1 queries and three
/// R2 operations.
const DEFAULT_OBJECTS_PER_RUN: usize = 100;
/// The most objects a run may be told to write: 150 objects are 450 D1
/// queries and 900 subrequests, under the platform's 1,000 D1 queries per
/// invocation with room for the other sweeps.
const MAX_OBJECTS_PER_RUN: usize = 150;
/// Days an event stays in D1 when `COFFER_AUDIT_RETENTION_DAYS` is unset.
const DEFAULT_RETENTION_DAYS: i64 = 30;
const DAY_MS: i64 = 86_400_000;

/// The retention window in days (`COFFER_AUDIT_RETENTION_DAYS`; unset or
/// not a whole number of days: the default).
pub(crate) fn retention_days(env: &Env) -> i64 {
    env.var(env::AUDIT_RETENTION_DAYS)
        .ok()
        .and_then(|value| value.to_string().trim().parse::<i64>().ok())
        .filter(|days| *days >= 0)
        .unwrap_or(DEFAULT_RETENTION_DAYS)
}

/// Objects per run (`COFFER_AUDIT_ARCHIVE_OBJECTS_PER_RUN`, 1 to 150;
/// unset or unreadable: 100).
pub(crate) fn objects_per_run(env: &Env) -> usize {
    env.var(env::AUDIT_ARCHIVE_OBJECTS_PER_RUN)
        .ok()
        .and_then(|value| value.to_string().trim().parse::<usize>().ok())
        .map_or(DEFAULT_OBJECTS_PER_RUN, |n| n.clamp(1, MAX_OBJECTS_PER_RUN))
}

/// The UTC day (`yyyy-mm-dd`) of a Unix ms time. Arithmetic rather than
/// chrono's `format`, whose format-string machinery costs the `.wasm` more
/// than this whole module.
pub(crate) fn utc_day(ms: i64) -> String {
    let (year, month, day) = crate::store::civil_from_days(ms.div_euclid(DAY_MS));
    format!("{year:04}-{month:02}-{day:02}")
}

/// The events that go into one object: the leading run of `events` (one
/// tenant's, oldest first) that are past `cutoff` and of the first one's
/// UTC day.
pub(crate) fn object_run(events: &[DueEvent], cutoff: i64) -> &[DueEvent] {
    let Some(first) = events.first() else {
        return events;
    };
    let day = utc_day(first.at);
    let end = events
        .iter()
        .position(|event| event.at >= cutoff || utc_day(event.at) != day)
        .unwrap_or(events.len());
    &events[..end]
}

/// One audit event as the contract shows it: the audit route's item
/// (`routes::render::audit_event` is this) and an archive line, one shape.
/// It lives here, below both the routes and the sweep, because the sweep
/// may not import `routes` (they share a layer).
pub(crate) fn event_json(entry: &AuditEntry) -> Value {
    let mut item = json!({
        "id": entry.id,
        "at": entry.at.to_rfc3339(),
        "action": entry.action,
        "outcome": entry.outcome,
        "credentialId": entry.credential_id.as_ref().map(|id| format!("cred-{id}")),
        "actor": {"id": entry.actor_id, "name": entry.actor_name, "email": entry.actor_email},
        "actorTenantId": entry.actor_tenant_id,
        "requestId": entry.request_id,
    });
    // The secret version a decrypted read of an earlier version, a rollback
    // or a version's destruction names (issue 16); absent otherwise.
    if let Some(version) = entry.secret_version {
        item["secretVersion"] = json!(version);
    }
    item
}

/// NDJSON: one compact JSON object per line ([`event_json`]), each line
/// ending in `\n`.
pub(crate) fn ndjson(events: &[DueEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        // Serializing a `Value` cannot fail.
        let _ = serde_json::to_writer(&mut out, &event_json(&event.entry));
        out.push(b'\n');
    }
    out
}

/// Lines of an NDJSON text.
pub(crate) fn count_lines(text: &[u8]) -> usize {
    text.iter().filter(|byte| **byte == b'\n').count()
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Moves due events to the archive, at most [`objects_per_run`] objects.
pub(crate) async fn run(store: &Store, env: &Env, now_ms: i64) -> Result<Value, ApiError> {
    let days = retention_days(env);
    let cutoff = now_ms.saturating_sub(days.saturating_mul(DAY_MS));
    let bucket = ArchiveBucket::open(env, store)?;
    let (mut objects, mut archived, mut resumed, mut complete) = (0, 0, 0, false);
    for _ in 0..objects_per_run(env) {
        let Some(oldest) = store.oldest_audit_event().await? else {
            complete = true;
            break;
        };
        if oldest.at >= cutoff {
            complete = true;
            break;
        }
        let outcome = archive_one(store, env, &bucket, oldest.tenant, oldest.seq, cutoff).await?;
        objects += 1;
        archived += outcome.events;
        resumed += usize::from(outcome.resumed);
    }
    Ok(json!({
        "retention_days": days,
        "objects": objects,
        "archived": archived,
        "resumed": resumed,
        "complete": complete,
    }))
}

struct Archived {
    events: usize,
    resumed: bool,
}

/// Archives `tenant`'s events from `first` on (one object), or finishes an
/// object an earlier run wrote but did not delete from D1.
async fn archive_one(
    store: &Store,
    env: &Env,
    bucket: &ArchiveBucket,
    tenant: TenantId,
    first: i64,
    cutoff: i64,
) -> Result<Archived, ApiError> {
    let candidates = store.audit_from(tenant, first, None, OBJECT_EVENTS).await?;
    let run = object_run(&candidates, cutoff);
    let Some(head) = run.first() else {
        return Err(ApiError::internal("archive: the oldest event vanished"));
    };
    let day = utc_day(head.at);
    let started = bucket.find_started(tenant, &day, first).await?;
    let resumed = started.is_some();
    // An object for this first event exists: it holds exactly the events of
    // its range, which D1 still has (a delete removes a whole range at once).
    let (events, key) = match started {
        Some(object) => {
            let events = store
                .audit_from(tenant, first, Some(object.last_seq), OBJECT_EVENTS)
                .await?;
            (events, object.key)
        }
        None => {
            let last = run.last().map_or(first, |event| event.seq);
            (run.to_vec(), object_key(tenant, &day, first, last))
        }
    };
    let (Some(head), Some(tail)) = (events.first(), events.last()) else {
        return Err(ApiError::internal(format!(
            "archive: {key} has no events in D1"
        )));
    };
    let (first, last) = (head.seq, tail.seq);
    let archived_before = events.iter().map(|e| e.at).max().unwrap_or(head.at) + 1;
    let text = ndjson(&events);
    let sha256 = hex(&sha256(&text).await?);
    if !resumed {
        bucket
            .put(&key, gzip(&text, true).await?, events.len(), &sha256)
            .await?;
    }
    crash_point(env, "put")?;
    // Read it back: the same count and hash in its metadata and its content.
    let back = bucket
        .get(&key)
        .await?
        .ok_or_else(|| ApiError::internal(format!("archive: {key} was not read back")))?;
    let plain = gzip(&back.gzip, false).await?;
    let matches = back.events == Some(events.len() as i64)
        && back.sha256.as_deref() == Some(sha256.as_str())
        && count_lines(&plain) == events.len()
        && hex(&self::sha256(&plain).await?) == sha256;
    if !matches {
        return Err(ApiError::internal(format!(
            "archive: {key} does not match the {} events of D1; nothing deleted",
            events.len()
        )));
    }
    crash_point(env, "readback")?;
    let removed = store
        .remove_archived(tenant, first, last, events.len(), archived_before)
        .await?;
    if removed != events.len() {
        return Err(ApiError::internal(format!(
            "archive: D1 no longer holds the {} events of {key}; nothing deleted",
            events.len()
        )));
    }
    crash_point(env, "delete")?;
    Ok(Archived {
        events: removed,
        resumed,
    })
}

/// Test builds only: stops the run right after `step` when told to (see
/// `faults.rs`); a no-op in the release build.
fn crash_point(env: &Env, step: &str) -> Result<(), ApiError> {
    #[cfg(feature = "fault-injection")]
    if crate::faults::archive_crashes_after(env, step) {
        return Err(ApiError::internal(format!("fault: stopped after {step}")));
    }
    let _ = (env, step);
    Ok(())
}

fn js_error(what: &str) -> impl Fn(JsValue) -> ApiError + '_ {
    move |error| ApiError::internal(format!("{what}: {error:?}"))
}

/// SHA-256 by the runtime's `crypto.subtle.digest`.
pub(crate) async fn sha256(data: &[u8]) -> Result<Vec<u8>, ApiError> {
    let crypto = Reflect::get(&worker::js_sys::global(), &JsValue::from_str("crypto"))
        .map_err(js_error("crypto"))?;
    let subtle = crypto.unchecked_into::<web_sys::Crypto>().subtle();
    let promise: Promise = subtle
        .digest_with_str_and_u8_array("SHA-256", data)
        .map_err(js_error("digest"))?;
    let digest = JsFuture::from(promise).await.map_err(js_error("digest"))?;
    Ok(Uint8Array::new(&digest.unchecked_into::<ArrayBuffer>()).to_vec())
}

/// Gzip (`compress`) or gunzip by the runtime's `CompressionStream` /
/// `DecompressionStream`: the bytes go through a `Response` body, piped
/// through the transform, and are read back whole. (web-sys marks those two
/// classes unstable, so they are constructed by name; each is a
/// `{readable, writable}` pair, which is all `pipeThrough` needs.)
pub(crate) async fn gzip(data: &[u8], compress: bool) -> Result<Vec<u8>, ApiError> {
    let (what, class) = if compress {
        ("gzip", "CompressionStream")
    } else {
        ("gunzip", "DecompressionStream")
    };
    let constructor = Reflect::get(&worker::js_sys::global(), &JsValue::from_str(class))
        .map_err(js_error(what))?
        .dyn_into::<Function>()
        .map_err(js_error(what))?;
    let transform = Reflect::construct(&constructor, &Array::of1(&JsValue::from_str("gzip")))
        .map_err(js_error(what))?
        .unchecked_into::<web_sys::ReadableWritablePair>();
    let input = Uint8Array::from(data);
    let source = web_sys::Response::new_with_opt_buffer_source(Some(&input))
        .map_err(js_error(what))?
        .body()
        .ok_or_else(|| ApiError::internal(format!("{what}: no body")))?;
    let piped = source.pipe_through(&transform);
    let output =
        web_sys::Response::new_with_opt_readable_stream(Some(&piped)).map_err(js_error(what))?;
    let buffer = JsFuture::from(output.array_buffer().map_err(js_error(what))?)
        .await
        .map_err(js_error(what))?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, at: i64) -> DueEvent {
        DueEvent {
            seq,
            at,
            entry: AuditEntry {
                secret_version: None,
                id: format!("e{seq}"),
                at: coffer_core::Timestamp::from_unix_millis(at)
                    .unwrap_or(coffer_core::Timestamp::MAX),
                action: "credential.read".into(),
                outcome: "success".into(),
                credential_id: None,
                actor_id: "a".into(),
                actor_name: None,
                actor_email: None,
                actor_tenant_id: "t".into(),
                request_id: "r".into(),
            },
        }
    }

    #[test]
    fn an_object_is_one_utc_day_past_the_cutoff() {
        // 2026-01-01T23:59:59.999Z and 2026-01-02T00:00:00.000Z.
        let (late, midnight) = (1_767_311_999_999, 1_767_312_000_000);
        assert_eq!(utc_day(late), "2026-01-01");
        assert_eq!(utc_day(midnight), "2026-01-02");
        let events = [
            event(1, late - 5),
            event(2, late),
            event(3, midnight),
            event(4, late),
        ];
        let seqs = |run: &[DueEvent]| run.iter().map(|e| e.seq).collect::<Vec<_>>();
        // The day ends the run, even when a later event is of the same day.
        assert_eq!(seqs(object_run(&events, i64::MAX)), vec![1, 2]);
        // So does the retention cutoff.
        assert_eq!(seqs(object_run(&events, late)), vec![1]);
        assert_eq!(seqs(object_run(&events, 0)), Vec::<i64>::new());
        assert_eq!(seqs(object_run(&[], 0)), Vec::<i64>::new());
    }

    #[test]
    fn ndjson_is_one_line_per_event() {
        let text = ndjson(&[event(1, 0), event(2, 0)]);
        let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
        assert_eq!(lines.len(), 3, "two lines, each ending in a newline");
        assert_eq!(lines[2], b"");
        for (line, id) in lines.iter().zip(["e1", "e2"]) {
            let value: Value = serde_json::from_slice(line).expect("a JSON line");
            assert_eq!(value["id"], id);
            assert_eq!(value["at"], "1970-01-01T00:00:00.000Z");
        }
        assert_eq!(count_lines(&text), 2);
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
