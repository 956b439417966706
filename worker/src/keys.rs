//! Tenant keys in the Worker: unwrapping with a short isolate cache, and
//! finding (or creating) the key a new secret version is sealed under.
//!
//! Unwrapping takes the tenant key's D1 wrap (loaded with the row) and its
//! KV half (one KV read). The cache holds unwrapped keys for at most
//! [`TTL_MS`] (60 s), keyed by the D1 wrap and the KV half's nonce, so it
//! never serves a key D1 no longer names: a master rotation changes the
//! wrap (a miss, then an unwrap with the new master key), a deletion
//! removes it (nothing to look up). Evicted keys are dropped, and
//! `TenantKey` wipes its bytes on drop (`zeroize`). The cache decides
//! nothing: D1 still decides access in the statement that counts each read.
use alloc::rc::Rc;
use core::cell::RefCell;
use std::collections::HashMap;

use coffer_core::{
    new_tenant_key, open, open_tenant_key, open_with_tenant_key, seal_with_tenant_key, Binding,
    Keyring, Sealed, TenantId, TenantKey, Timestamp, Zeroizing,
};

use crate::{
    env,
    error::ApiError,
    random,
    store::{Record, Store, StoredTenantKey, TenantKeyRef},
};

/// Secret versions kept per record, the current one included
/// (`COFFER_SECRET_VERSIONS_KEPT`, default 10, at least 1, at most 100).
/// Every secret write counts toward it: a `PATCH`, a rollback and a token
/// refresh.
pub(crate) fn versions_kept(env: &worker::Env) -> u32 {
    env.var(env::SECRET_VERSIONS_KEPT)
        .ok()
        .and_then(|value| value.to_string().trim().parse::<u32>().ok())
        .unwrap_or(DEFAULT_VERSIONS_KEPT)
        .clamp(1, 100)
}

/// Vault KV v2's default `max_versions` is 10 too.
const DEFAULT_VERSIONS_KEPT: u32 = 10;

/// The binding of `record`'s current secret version: the AAD that ties its
/// data key and blob to tenant, credential and secret version.
pub(crate) fn binding(record: &Record) -> Binding {
    Binding {
        tenant: record.owner,
        credential: record.id,
        version: record.secret_version.get(),
    }
}

/// Seals `secret` for `record`'s current secret version under its owner's
/// active tenant key (created with the tenant's first record; data-key
/// format `0x02`), writes the data key's wrap, the tenant-key version and
/// who wrote the secret when into the record, and returns the sealed blob
/// to store. The one sealing path of every secret write: create, `PATCH`,
/// rollback and OAuth2 token refresh. `Err(TenantDeleted)` once the tenant
/// was deleted.
pub(crate) async fn seal_record(
    keyring: &Keyring,
    store: &Store,
    record: &mut Record,
    secret: &[u8],
    now: Timestamp,
) -> Result<Vec<u8>, ApiError> {
    let tenant_key = for_write(keyring, store, record.owner, now.as_unix_millis()).await?;
    let Sealed {
        kid,
        wrapped_dek,
        blob,
        tenant_key_version,
    } = seal_with_tenant_key(&tenant_key, &mut random::rng(), &binding(record), secret)
        .map_err(|error| ApiError::internal(format!("seal: {error}")))?;
    record.kid = kid;
    record.wrapped_dek = wrapped_dek;
    record.tk_version = tenant_key_version;
    record.secret_at = Some(now);
    record.secret_by = Some(record.updated_by.clone());
    Ok(blob)
}

/// How long an unwrapped tenant key (or which key is a tenant's active
/// one) stays in isolate memory.
pub(crate) const TTL_MS: i64 = 60_000;
/// Entries per map before the isolate starts over.
const CAPACITY: usize = 4096;

struct Unwrapped {
    key: Rc<TenantKey>,
    until: i64,
}

struct Active {
    stored: StoredTenantKey,
    until: i64,
}

thread_local! {
    static UNWRAPPED: RefCell<HashMap<(TenantId, u32, TenantKeyRef), Unwrapped>> =
        RefCell::new(HashMap::new());
    static ACTIVE: RefCell<HashMap<TenantId, Active>> = RefCell::new(HashMap::new());
}

/// Drops expired entries (their keys are wiped as the last `Rc` goes), and
/// everything when the map is full.
fn evict<K, V>(map: &mut HashMap<K, V>, now_ms: i64, until: impl Fn(&V) -> i64) {
    map.retain(|_, value| until(value) > now_ms);
    if map.len() >= CAPACITY {
        map.clear();
    }
}

fn cached(id: &(TenantId, u32, TenantKeyRef), now_ms: i64) -> Option<Rc<TenantKey>> {
    UNWRAPPED.with(|cache| {
        let mut cache = cache.borrow_mut();
        match cache.get(id) {
            Some(entry) if entry.until > now_ms => Some(Rc::clone(&entry.key)),
            Some(_) => {
                cache.remove(id);
                None
            }
            None => None,
        }
    })
}

fn remember(id: (TenantId, u32, TenantKeyRef), key: &Rc<TenantKey>, now_ms: i64) {
    UNWRAPPED.with(|cache| {
        let mut cache = cache.borrow_mut();
        evict(&mut cache, now_ms, |entry| entry.until);
        cache.insert(
            id,
            Unwrapped {
                key: Rc::clone(key),
                until: now_ms.saturating_add(TTL_MS),
            },
        );
    });
}

/// `tenant`'s key of `version`, unwrapped from its D1 wrap (as D1 returned
/// it) and its KV half, or from the isolate cache. `Ok(None)`: it does not
/// open (its master key or KV half is gone).
pub(crate) async fn unwrap(
    keyring: &Keyring,
    store: &Store,
    now_ms: i64,
    tenant: TenantId,
    version: u32,
    key: &TenantKeyRef,
) -> Result<Option<Rc<TenantKey>>, ApiError> {
    let id = (tenant, version, key.clone());
    if let Some(found) = cached(&id, now_ms) {
        return Ok(Some(found));
    }
    let Some(half) = store.kv_half(tenant, version, key).await? else {
        return Ok(None);
    };
    let Ok(opened) = open_tenant_key(keyring, tenant, version, &key.wrapped, &half) else {
        return Ok(None);
    };
    let opened = Rc::new(opened);
    remember(id, &opened, now_ms);
    Ok(Some(opened))
}

/// Opens a sealed secret version: through its tenant key when it has one
/// (`tk_version` and the `tenant_key` loaded with the row), else as a
/// legacy data key under a master key. `Ok(None)` for every failure to
/// open; `Err` only when storage fails.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn open_secret(
    keyring: &Keyring,
    store: &Store,
    now_ms: i64,
    binding: &Binding,
    tk_version: Option<u32>,
    tenant_key: Option<&TenantKeyRef>,
    wrapped_dek: &[u8],
    blob: &[u8],
) -> Result<Option<Zeroizing<Vec<u8>>>, ApiError> {
    let Some(version) = tk_version else {
        return Ok(open(keyring, binding, wrapped_dek, blob).ok());
    };
    let Some(tenant_key) = tenant_key else {
        return Ok(None);
    };
    let Some(key) = unwrap(keyring, store, now_ms, binding.tenant, version, tenant_key).await?
    else {
        return Ok(None);
    };
    Ok(open_with_tenant_key(&key, binding, wrapped_dek, blob).ok())
}

/// Forgets which key is `tenant`'s active one (a write sealed under it
/// found it gone: rotated or destroyed).
pub(crate) fn forget_active(tenant: TenantId) {
    ACTIVE.with(|active| {
        active.borrow_mut().remove(&tenant);
    });
}

/// The key a new secret version of `tenant` is sealed under: its active
/// tenant key, created (version 1) with the tenant's first record. Racing
/// first writes both try to create one; one wins and both use the winner's.
/// `Err(TenantDeleted)` when the tenant was deleted.
pub(crate) async fn for_write(
    keyring: &Keyring,
    store: &Store,
    tenant: TenantId,
    now_ms: i64,
) -> Result<Rc<TenantKey>, ApiError> {
    let cached = ACTIVE.with(|active| {
        active
            .borrow()
            .get(&tenant)
            .filter(|entry| entry.until > now_ms)
            .map(|entry| entry.stored.clone())
    });
    let stored = match cached {
        Some(stored) => stored,
        None => {
            let stored = match store.active_tenant_key(tenant).await? {
                Some(stored) => stored,
                None => create(keyring, store, tenant, now_ms).await?,
            };
            ACTIVE.with(|active| {
                let mut active = active.borrow_mut();
                evict(&mut active, now_ms, |entry| entry.until);
                active.insert(
                    tenant,
                    Active {
                        stored: stored.clone(),
                        until: now_ms.saturating_add(TTL_MS),
                    },
                );
            });
            stored
        }
    };
    unwrap(
        keyring,
        store,
        now_ms,
        tenant,
        stored.version,
        &stored.reference(),
    )
    .await?
    .ok_or_else(|| {
        ApiError::internal(format!(
            "the tenant key of {tenant} (version {}, master key {}) does not unwrap",
            stored.version, stored.kid
        ))
    })
}

/// A fresh key for `tenant` at `version`, its KV half written (KV first,
/// then the caller's D1 row), and the unwrapped key remembered.
pub(crate) async fn new_stored(
    keyring: &Keyring,
    store: &Store,
    tenant: TenantId,
    version: u32,
    now_ms: i64,
) -> Result<StoredTenantKey, ApiError> {
    let (key, wrapped) = new_tenant_key(keyring, &mut random::rng(), tenant, version)
        .map_err(|_| ApiError::internal("a new tenant key did not wrap"))?;
    let mut nonce = [0_u8; 8];
    random::fill(&mut nonce)?;
    let stored = StoredTenantKey {
        tenant,
        version,
        kid: wrapped.kid,
        wrapped: wrapped.wrapped,
        kv_nonce: nonce.iter().map(|b| format!("{b:02x}")).collect(),
    };
    store.put_kv_half(&stored, &wrapped.kv_half).await?;
    remember((tenant, version, stored.reference()), &Rc::new(key), now_ms);
    Ok(stored)
}

async fn create(
    keyring: &Keyring,
    store: &Store,
    tenant: TenantId,
    now_ms: i64,
) -> Result<StoredTenantKey, ApiError> {
    let stored = new_stored(keyring, store, tenant, 1, now_ms).await?;
    if store.create_first_tenant_key(&stored, now_ms).await? {
        return Ok(stored);
    }
    // Ours lost: its KV half is nobody's.
    store
        .delete_kv_half(tenant, stored.version, &stored.kv_nonce)
        .await;
    // Another request created it first, or the tenant was deleted.
    match store.active_tenant_key(tenant).await? {
        Some(winner) => Ok(winner),
        None => Err(ApiError::TenantDeleted),
    }
}
