//! Isolate memory of what each decrypted-read lookup was last served from:
//! the blob's (immutable) KV key and the record's secret write with its
//! wrapped data key. Never a secret or an unwrapped key; bounded.
//!
//! Two uses. The slow path fetches the remembered blob from KV while D1 is
//! still deciding ([`super::Store::prefetch_blob`]). The fast path opens the
//! remembered blob with the remembered wrap and then asks D1, in the one
//! statement that counts and audits the read, whether the record is still
//! that secret write, owned by the reader, servable, and (for a selection)
//! still the selected record ([`super::Store::record_remembered_read`]).
//! Nothing is decided from memory: a wrong or stale guess costs a KV read
//! and falls back to the slow path.
use core::cell::RefCell;
use std::collections::HashMap;

use coffer_core::{CredentialId, IntegrationId, TenantId, Version};

use super::{blobs::blob_key, Record};

/// How many lookups an isolate remembers before starting over.
const CAPACITY: usize = 10_000;

/// What a decrypted read looks a record up by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Lookup {
    /// A credential (connection) id.
    Id(CredentialId),
    /// The selection rule: a tenant's newest record for an integration.
    Selection(TenantId, IntegrationId),
}

/// The secret write a lookup was last served from.
#[derive(Debug, Clone)]
pub(crate) struct Remembered {
    /// The blob's KV key.
    pub(crate) key: String,
    pub(crate) id: CredentialId,
    pub(crate) owner: TenantId,
    pub(crate) secret_version: Version,
    pub(crate) blob_nonce: String,
    /// The data key as wrapped when it was served (a rewrap since makes it
    /// fail to open only if the old master key is gone: then the slow path).
    pub(crate) wrapped_dek: Vec<u8>,
    /// The tenant-key version and wrapped tenant key loaded with it
    /// (`None`: a legacy data key under a master key).
    pub(crate) tk_version: Option<u32>,
    pub(crate) tenant_key: Option<super::TenantKeyRef>,
}

impl Remembered {
    pub(super) fn of(record: &Record) -> Self {
        Self {
            key: blob_key(record),
            id: record.id,
            owner: record.owner,
            secret_version: record.secret_version,
            blob_nonce: record.blob_nonce.clone(),
            wrapped_dek: record.wrapped_dek.clone(),
            tk_version: record.tk_version,
            tenant_key: record.tenant_key.clone(),
        }
    }
}

thread_local! {
    static GUESSES: RefCell<HashMap<Lookup, Remembered>> = RefCell::new(HashMap::new());
}

pub(super) fn get(lookup: &Lookup) -> Option<Remembered> {
    GUESSES.with(|guesses| guesses.borrow().get(lookup).cloned())
}

pub(super) fn remember(lookup: &Lookup, remembered: Remembered) {
    GUESSES.with(|guesses| {
        let mut guesses = guesses.borrow_mut();
        if guesses.len() >= CAPACITY && !guesses.contains_key(lookup) {
            guesses.clear();
        }
        guesses.insert(lookup.clone(), remembered);
    });
}

pub(super) fn forget(lookup: &Lookup) {
    GUESSES.with(|guesses| {
        guesses.borrow_mut().remove(lookup);
    });
}
