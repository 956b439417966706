//! The scheduled sweeps: expiry, master-key rotation (tenant keys), the
//! migration of legacy data keys under tenant keys, orphaned blobs.
//!
//! Each is bounded per run (a Worker invocation has CPU and subrequest
//! limits), idempotent, resumes where the last run stopped, and logs a
//! one-line JSON summary.
use alloc::rc::Rc;

use coffer_core::{migrate_data_key, rewrap_tenant_key, Binding, Keyring};
use serde_json::{json, Value};
use worker::Env;

use crate::{
    env,
    error::ApiError,
    keyring::keyring,
    keys,
    log::{self, Console},
    random,
    store::{ArchiveBucket, Io, Store},
};

/// Records marked expired per D1 statement, and statements per run.
const EXPIRE_BATCH: u32 = 500;
const EXPIRE_BATCHES: usize = 20;
/// Tenant keys re-wrapped per D1 batch, and batches per run.
const REWRAP_BATCH: u32 = 100;
const REWRAP_BATCHES: usize = 20;
/// Legacy data keys moved under tenant keys per D1 batch, and batches per run.
const MIGRATE_BATCH: u32 = 100;
const MIGRATE_BATCHES: usize = 20;
/// Rows (and blobs) of deleted tenants removed per step, and steps per run.
const SHRED_BATCH: u32 = 100;
const SHRED_STEPS: usize = 10;
/// Audit archive objects of a deleted tenant deleted per tenant and run
/// (one R2 list and one R2 delete).
const SHRED_ARCHIVE_OBJECTS: u32 = 1000;
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
    let io = Rc::new(Io::default());
    let store = match Store::open(env, Rc::clone(&io)) {
        Ok(store) => store,
        Err(error) => {
            log_failure("all", &error);
            return;
        }
    };
    let mut before = io.statements();
    let mut report = |sweep: &str, outcome: Result<Value, ApiError>| {
        let statements = io.statements() - before;
        before = io.statements();
        match outcome {
            Ok(mut summary) => {
                // The D1 statements the sweep ran (a batch counts each).
                summary["d1_statements"] = json!(statements);
                log::json(
                    Console::Log,
                    &json!({"level": "info", "sweep": sweep, "summary": summary}),
                )
            }
            Err(error) => log_failure(sweep, &error),
        }
    };
    report("expire", expire(&store, now_ms).await);
    match keyring(env) {
        Ok(keyring) => {
            report("rewrap", rotate_master(&store, &keyring).await);
            report("migrate", migrate_legacy(&store, &keyring, now_ms).await);
        }
        Err(error) => log_failure("rewrap", &error),
    }
    report("shred", shred(&store, env, now_ms).await);
    report("orphans", orphans(&store, env, now_ms).await);
    report("archive", crate::archive::run(&store, env, now_ms).await);
    report(
        "refresh",
        crate::refresh::sweep(env, &store, REFRESH_BATCH).await,
    );
}

fn log_failure(sweep: &str, error: &ApiError) {
    log::json(
        Console::Error,
        &json!({"level": "error", "sweep": sweep, "error": error.log_reason().unwrap_or("failed")}),
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

/// Master-key rotation: moves tenant keys to the active master key, one
/// statement per tenant key (so per tenant), data keys and blobs
/// untouched. Keys that do not unwrap (their master key is gone from the
/// keyring) are counted and skipped, never rewritten. `remaining` counts
/// tenant keys still under another master key; `legacy` the data keys
/// still under a master key directly (the `migrate` sweep moves them):
/// the old master key may leave `COFFER_KEYS` once both are 0.
pub(crate) async fn rotate_master(store: &Store, keyring: &Keyring) -> Result<Value, ApiError> {
    let active = keyring.active_kid();
    let (mut rewrapped, mut failed) = (0, 0);
    let mut after = (String::new(), 0_i64);
    for _ in 0..REWRAP_BATCHES {
        let stale = store
            .tenant_keys_not_under(active, (&after.0, after.1), REWRAP_BATCH)
            .await?;
        let mut updates = Vec::with_capacity(stale.len());
        for key in &stale {
            match rewrap_tenant_key(
                keyring,
                &mut random::rng(),
                key.tenant,
                key.version,
                &key.wrapped,
            ) {
                Ok(Some(moved)) => updates.push((key, moved.kid, moved.wrapped)),
                Ok(None) => {}
                Err(_) => {
                    failed += 1;
                    log::json(
                        Console::Error,
                        &json!({"level": "error", "sweep": "rewrap", "tenant": key.tenant.to_string(),
                               "tenant_key_version": key.version, "kid": key.kid,
                               "error": "tenant key does not unwrap with the keyring"}),
                    );
                }
            }
        }
        rewrapped += store.replace_tenant_key_wraps(&updates).await?;
        match stale.last() {
            Some(last) if stale.len() == REWRAP_BATCH as usize => {
                after = (last.tenant.to_string(), i64::from(last.version));
            }
            _ => break,
        }
    }
    let remaining = store.count_tenant_keys_not_under(active).await?;
    let legacy = store.count_legacy_wraps().await?;
    Ok(
        json!({"active_kid": active, "tenant_keys_rewrapped": rewrapped, "failed": failed,
              "remaining": remaining, "legacy": legacy}),
    )
}

/// Moves data keys still wrapped under a master key directly (records
/// written before the key hierarchy) under their tenant's key, creating the
/// tenant key where the tenant has none; blobs untouched. Each move
/// compare-and-sets on the old wrap, so a concurrent secret change wins and
/// a read never fails: until its row moves, the legacy wrap still opens.
pub(crate) async fn migrate_legacy(
    store: &Store,
    keyring: &Keyring,
    now_ms: i64,
) -> Result<Value, ApiError> {
    let (mut migrated, mut failed) = (0, 0);
    let mut batches = 0;
    for earlier in [false, true] {
        let mut after = (String::new(), 0_i64);
        while batches < MIGRATE_BATCHES {
            batches += 1;
            let wraps = store
                .legacy_wraps(earlier, &after.0, after.1, MIGRATE_BATCH)
                .await?;
            let mut moves = Vec::with_capacity(wraps.len());
            for wrap in &wraps {
                let tenant_key = match keys::for_write(keyring, store, wrap.owner, now_ms).await {
                    Ok(key) => key,
                    // A deleted tenant: the shredding sweep removes the row.
                    Err(ApiError::TenantDeleted) => continue,
                    Err(error) => return Err(error),
                };
                let binding = Binding {
                    tenant: wrap.owner,
                    credential: wrap.id,
                    version: u64::try_from(wrap.secret_version).unwrap_or(0),
                };
                match migrate_data_key(
                    keyring,
                    &tenant_key,
                    &mut random::rng(),
                    &binding,
                    &wrap.wrapped_dek,
                ) {
                    Ok(moved) => moves.push((
                        wrap.id,
                        wrap.secret_version,
                        wrap.earlier,
                        wrap.wrapped_dek.clone(),
                        moved,
                        tenant_key.version(),
                    )),
                    Err(_) => {
                        failed += 1;
                        log::json(
                            Console::Error,
                            &json!({"level": "error", "sweep": "migrate", "credential": wrap.id.to_string(),
                                   "kid": wrap.kid, "error": "data key does not unwrap with the keyring"}),
                        );
                    }
                }
            }
            migrated += store.move_wraps(&moves).await?;
            match wraps.last() {
                Some(last) if wraps.len() == MIGRATE_BATCH as usize => {
                    after = (last.id.to_string(), last.secret_version);
                }
                _ => break,
            }
        }
    }
    let remaining = store.count_legacy_wraps().await?;
    Ok(json!({"migrated": migrated, "failed": failed, "remaining": remaining}))
}

/// Removes what deleted tenants left (their secrets were unrecoverable
/// from the deletion on): earlier versions, records with their shares and
/// blobs, their audit archive objects in R2, then audit events but the
/// `tenant.delete` one, in bounded steps. The archive sweep leaves a
/// deleted tenant's events alone until this is done, then archives its
/// `tenant.delete` event like any other once past retention.
async fn shred(store: &Store, env: &Env, now_ms: i64) -> Result<Value, ApiError> {
    let tenants = store.tenants_to_purge(SHRED_BATCH).await?;
    let (mut records, mut versions, mut blobs, mut audit, mut purged) = (0, 0, 0, 0, 0);
    let mut archive_objects = 0;
    let bucket = if tenants.is_empty() {
        None
    } else {
        Some(ArchiveBucket::open(env, store)?)
    };
    let mut steps = 0;
    for tenant in &tenants {
        if steps >= SHRED_STEPS {
            break;
        }
        let archive_left = match &bucket {
            Some(bucket) => {
                let (deleted, left) = bucket
                    .delete_objects(*tenant, SHRED_ARCHIVE_OBJECTS)
                    .await?;
                archive_objects += deleted;
                left
            }
            None => false,
        };
        while steps < SHRED_STEPS {
            steps += 1;
            let step = store
                .purge_tenant(*tenant, SHRED_BATCH, now_ms, archive_left)
                .await?;
            records += step.records;
            versions += step.versions;
            blobs += step.blobs;
            audit += step.audit_events;
            if step.done {
                purged += 1;
                break;
            }
            if archive_left && step.records == 0 && step.versions == 0 && step.audit_events == 0 {
                // Only archive objects are left: the next run deletes more.
                break;
            }
        }
    }
    Ok(
        json!({"tenants": tenants.len(), "purged": purged, "records_removed": records,
              "versions_removed": versions, "blobs_removed": blobs, "audit_removed": audit,
              "archive_objects_removed": archive_objects}),
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
            let pointed_at = current.contains(&(
                blob.id.clone(),
                blob.secret_version,
                blob.blob_nonce.clone(),
            ));
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
