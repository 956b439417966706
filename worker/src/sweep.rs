//! The scheduled sweeps: expiry, master-key rewrap, orphaned blobs, and the
//! audit archive (`archive.rs`).
//!
//! Each is bounded per run (a Worker invocation has CPU and subrequest
//! limits), idempotent, resumes where the last run stopped, and logs a
//! one-line JSON summary.
use coffer_core::{rewrap, Binding, Keyring, Rewrapped};

use serde_json::{json, Value};
use worker::{console_error, console_log, Env};

use crate::{env, error::ApiError, keyring::keyring, random, store::Store};

/// Records marked expired per D1 statement, and statements per run.
const EXPIRE_BATCH: u32 = 500;
const EXPIRE_BATCHES: usize = 20;
/// Data keys re-wrapped per D1 batch, and batches per run.
const REWRAP_BATCH: u32 = 100;
const REWRAP_BATCHES: usize = 20;
/// KV keys per list page, and pages per run.
const ORPHAN_PAGE: u64 = 1000;
const ORPHAN_PAGES: usize = 5;
/// Token refreshes per run (each may wait up to 10 s for its endpoint).
const REFRESH_BATCH: u32 = 25;
/// Default age before an unreferenced blob may be removed: long enough
/// that a create or update whose D1 write is still in flight is spared.
const DEFAULT_RETENTION_SECONDS: i64 = 24 * 60 * 60;
/// `coffer_meta` key holding the orphan sweep's KV list cursor.
const ORPHAN_CURSOR: &str = "sweep.orphans.cursor";

/// Runs every sweep once and logs each summary.
pub(crate) async fn run(env: &Env, now_ms: i64) {
    let store = match Store::open(env, Default::default()) {
        Ok(store) => store,
        Err(error) => {
            log_failure("all", &error);
            return;
        }
    };
    report("expire", expire(&store, now_ms).await);
    match keyring(env) {
        Ok(keyring) => report("rewrap", rewrap_all(&store, &keyring).await),
        Err(error) => log_failure("rewrap", &error),
    }
    report("orphans", orphans(&store, env, now_ms).await);
    report("archive", crate::archive::run(&store, env, now_ms).await);
    report(
        "refresh",
        crate::refresh::sweep(env, &store, REFRESH_BATCH).await,
    );
}

fn report(sweep: &str, outcome: Result<Value, ApiError>) {
    match outcome {
        Ok(summary) => console_log!(
            "{}",
            json!({"level": "info", "sweep": sweep, "summary": summary})
        ),
        Err(error) => log_failure(sweep, &error),
    }
}

fn log_failure(sweep: &str, error: &ApiError) {
    console_error!(
        "{}",
        json!({"level": "error", "sweep": sweep, "error": error.log_reason().unwrap_or("failed")})
    );
}

/// Stores `expired` on active records past `expiresAt` (reads already show
/// it; this makes the stored status and the status filter agree).
async fn expire(store: &Store, now_ms: i64) -> Result<Value, ApiError> {
    let mut expired = 0;
    for _ in 0..EXPIRE_BATCHES {
        let changed = store.expire_due(now_ms, EXPIRE_BATCH).await?;
        expired += changed;
        if changed < EXPIRE_BATCH as usize {
            break;
        }
    }
    Ok(json!({"expired": expired}))
}

/// Moves data keys to the active master key, ciphertexts untouched. Keys
/// that do not unwrap (their master key is gone from the keyring) are
/// counted and skipped, never rewritten.
pub(crate) async fn rewrap_all(store: &Store, keyring: &Keyring) -> Result<Value, ApiError> {
    let active = keyring.active_kid();
    let (mut rewrapped, mut failed, mut after) = (0, 0, String::new());
    for _ in 0..REWRAP_BATCHES {
        let wraps = store.wraps_not_under(active, &after, REWRAP_BATCH).await?;
        let mut updates = Vec::with_capacity(wraps.len());
        for wrap in &wraps {
            let binding = Binding {
                tenant: wrap.owner,
                credential: wrap.id,
                version: wrap.secret_version.get(),
            };
            match rewrap(keyring, &mut random::rng(), &binding, &wrap.wrapped_dek) {
                Ok(Rewrapped::Rewrapped { wrapped_dek, kid }) => {
                    updates.push((wrap, kid, wrapped_dek))
                }
                Ok(_) => {}
                Err(_) => {
                    failed += 1;
                    console_error!(
                        "{}",
                        json!({"level": "error", "sweep": "rewrap", "credential": wrap.id.to_string(),
                               "kid": wrap.kid, "error": "data key does not unwrap with the keyring"})
                    );
                }
            }
        }
        rewrapped += store.replace_wraps(&updates).await?;
        match wraps.last() {
            Some(last) if wraps.len() == REWRAP_BATCH as usize => after = last.id.to_string(),
            _ => break,
        }
    }
    let remaining = store.count_not_under(active).await?;
    Ok(
        json!({"active_kid": active, "rewrapped": rewrapped, "failed": failed, "remaining": remaining}),
    )
}

/// Removes KV blobs no D1 row points at (failed writes, superseded secret
/// versions whose delete failed) once older than the retention window, by
/// the write time the Worker stored with each blob; a blob without one is
/// kept and counted (`unknown_age`), never removed.
async fn orphans(store: &Store, env: &Env, now_ms: i64) -> Result<Value, ApiError> {
    let retention_ms = env
        .var(env::BLOB_RETENTION_SECONDS)
        .ok()
        .and_then(|v| v.to_string().parse::<i64>().ok())
        .unwrap_or(DEFAULT_RETENTION_SECONDS)
        .max(0)
        .saturating_mul(1000);
    let mut cursor = store.meta(ORPHAN_CURSOR).await?;
    let (mut scanned, mut removed, mut kept_young, mut unknown_age) = (0, 0, 0, 0);
    for _ in 0..ORPHAN_PAGES {
        let (blobs, next) = store.list_blobs(cursor.take(), ORPHAN_PAGE).await?;
        scanned += blobs.len();
        let ids: Vec<&str> = blobs.iter().map(|b| b.id.as_str()).collect();
        let current = if ids.is_empty() {
            Default::default()
        } else {
            store.secret_versions(&ids).await?
        };
        for blob in &blobs {
            let pointed_at = current.get(&blob.id).is_some_and(|(version, nonce)| {
                *version == blob.secret_version && *nonce == blob.blob_nonce
            });
            if pointed_at {
                continue;
            }
            // Only a blob whose age is known and past the window may go:
            // a younger one may belong to a write whose D1 commit is still
            // in flight, and one of unknown age is kept and counted.
            let Some(written_at) = blob.written_at else {
                unknown_age += 1;
                continue;
            };
            if now_ms.saturating_sub(written_at) < retention_ms {
                kept_young += 1;
                continue;
            }
            store.delete_blob_key(&blob.key).await?;
            removed += 1;
        }
        cursor = next;
        if cursor.is_none() {
            break;
        }
    }
    // Resume here next run; after a complete pass, start over.
    store.set_meta(ORPHAN_CURSOR, cursor.as_deref()).await?;
    Ok(
        json!({"scanned": scanned, "removed": removed, "kept_young": kept_young,
               "unknown_age": unknown_age, "complete": cursor.is_none()}),
    )
}
