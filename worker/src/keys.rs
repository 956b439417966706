//! Tenant keys in the Worker: unwrapping with a short isolate cache, and
//! finding (or creating) the key a new secret version is sealed under.
//!
//! The cache holds unwrapped tenant keys for at most [`TTL_MS`] (60 s),
//! keyed by the wrapped bytes D1 returned with the row, so it never serves
//! a key D1 no longer names: a master rotation changes the wrapped bytes
//! (a miss, then an unwrap with the new master key), a deletion removes
//! them (nothing to look up). Evicted keys are dropped, and `TenantKey`
//! wipes its bytes on drop (`zeroize`). The cache decides nothing: D1 still
//! decides access in the statement that counts each read.
use alloc::rc::Rc;
use core::cell::RefCell;
use std::collections::HashMap;

use coffer_core::{
    new_tenant_key, open, open_tenant_key, open_with_tenant_key, Binding, Keyring, TenantId,
    TenantKey, Zeroizing,
};
use rand_core::OsRng;

use crate::{
    error::ApiError,
    store::{StoredTenantKey, Store},
};

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
    static UNWRAPPED: RefCell<HashMap<(TenantId, u32, Vec<u8>), Unwrapped>> =
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

/// `tenant`'s key of `version`, unwrapped from `wrapped` (as D1 returned
/// it) with the master keys, or from the isolate cache.
pub(crate) fn unwrap(
    keyring: &Keyring,
    now_ms: i64,
    tenant: TenantId,
    version: u32,
    wrapped: &[u8],
) -> Option<Rc<TenantKey>> {
    let id = (tenant, version, wrapped.to_vec());
    let cached = UNWRAPPED.with(|cache| {
        let mut cache = cache.borrow_mut();
        match cache.get(&id) {
            Some(entry) if entry.until > now_ms => Some(Rc::clone(&entry.key)),
            Some(_) => {
                cache.remove(&id);
                None
            }
            None => None,
        }
    });
    if cached.is_some() {
        return cached;
    }
    let key = Rc::new(open_tenant_key(keyring, tenant, version, wrapped).ok()?);
    UNWRAPPED.with(|cache| {
        let mut cache = cache.borrow_mut();
        evict(&mut cache, now_ms, |entry| entry.until);
        cache.insert(
            id,
            Unwrapped {
                key: Rc::clone(&key),
                until: now_ms.saturating_add(TTL_MS),
            },
        );
    });
    Some(key)
}

/// Opens a sealed secret version: through its tenant key when it has one
/// (`tk_version` and the wrapped `tenant_key` loaded with the row), else
/// as a legacy data key under a master key. `None` for every failure.
pub(crate) fn open_secret(
    keyring: &Keyring,
    now_ms: i64,
    binding: &Binding,
    tk_version: Option<u32>,
    tenant_key: Option<&[u8]>,
    wrapped_dek: &[u8],
    blob: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    match tk_version {
        None => open(keyring, binding, wrapped_dek, blob).ok(),
        Some(version) => {
            let key = unwrap(keyring, now_ms, binding.tenant, version, tenant_key?)?;
            open_with_tenant_key(&key, binding, wrapped_dek, blob).ok()
        }
    }
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
    unwrap(keyring, now_ms, tenant, stored.version, &stored.wrapped).ok_or_else(|| {
        ApiError::internal(format!(
            "the tenant key of {tenant} (version {}, master key {}) does not unwrap",
            stored.version, stored.kid
        ))
    })
}

async fn create(
    keyring: &Keyring,
    store: &Store,
    tenant: TenantId,
    now_ms: i64,
) -> Result<StoredTenantKey, ApiError> {
    let (_, wrapped) = new_tenant_key(keyring, &mut OsRng, tenant, 1)
        .map_err(|_| ApiError::internal("a new tenant key did not wrap"))?;
    let stored = StoredTenantKey {
        tenant,
        version: 1,
        kid: wrapped.kid,
        wrapped: wrapped.wrapped,
    };
    if store.create_first_tenant_key(&stored, now_ms).await? {
        return Ok(stored);
    }
    // Another request created it first, or the tenant was deleted.
    match store.active_tenant_key(tenant).await? {
        Some(winner) => Ok(winner),
        None => Err(ApiError::TenantDeleted),
    }
}
