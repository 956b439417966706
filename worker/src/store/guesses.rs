//! Isolate memory of what each decrypted-read lookup was last served from:
//! the blob's (immutable) KV key, the sealed blob itself, and the record's
//! secret write with its wrapped data key. Never a secret or an unwrapped
//! key; bounded in entries and in blob bytes.
//!
//! A blob's KV key names its record, secret version and a nonce drawn for
//! that one write, and is never written twice: the bytes kept here are the
//! bytes KV holds under that key (AES-GCM-sealed, bound to tenant, record
//! and version), so keeping them is a cache that cannot go stale.
//!
//! Two uses. The slow path takes the remembered blob from here before D1
//! decides ([`super::Store::guessed_blob`]), saving the KV read when D1
//! names the same key. The fast path opens the remembered blob with the
//! remembered wrap and then asks D1, in the one statement that counts and
//! audits the read, whether the record is still that secret write (same
//! version, same nonce), owned by the reader, servable, and (for a
//! selection) still the selected record
//! ([`super::Store::record_remembered_read`]): one D1 round trip and no KV
//! read. Nothing is decided from memory: a wrong or stale guess is refused
//! by that statement, forgotten, and the slow path decides.
use alloc::rc::Rc;
use core::cell::RefCell;
use std::collections::HashMap;

use coffer_core::{CredentialId, IntegrationId, TenantId, Version};

use super::{blobs::blob_key, Record};

/// How many lookups an isolate remembers before starting over.
const CAPACITY: usize = 10_000;

/// How many bytes of sealed blobs an isolate keeps before starting over
/// (of the isolate's 128 MB; a blob is at most `MAX_SECRET_BYTES` plus
/// its envelope).
const BLOB_BYTES: usize = 8 << 20;

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
    /// The blob KV holds under `key`.
    pub(crate) blob: Sealed,
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

/// A sealed blob, shared between the isolate's memory and a request.
#[derive(Clone)]
pub(crate) struct Sealed(Rc<[u8]>);

impl Sealed {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl core::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

impl Remembered {
    /// `record`'s secret write, served from `blob` (the blob of its key).
    pub(super) fn of(record: &Record, blob: &[u8]) -> Self {
        Self {
            key: blob_key(record),
            blob: Sealed(Rc::from(blob)),
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

/// The remembered lookups and the blob bytes they hold.
#[derive(Default)]
struct Guesses {
    by_lookup: HashMap<Lookup, Remembered>,
    blob_bytes: usize,
}

impl Guesses {
    fn remove(&mut self, lookup: &Lookup) {
        if let Some(old) = self.by_lookup.remove(lookup) {
            self.blob_bytes = self.blob_bytes.saturating_sub(old.blob.0.len());
        }
    }

    fn insert(&mut self, lookup: &Lookup, remembered: Remembered) {
        self.remove(lookup);
        let bytes = remembered.blob.0.len();
        if self.by_lookup.len() >= CAPACITY || self.blob_bytes.saturating_add(bytes) > BLOB_BYTES {
            self.by_lookup.clear();
            self.blob_bytes = 0;
        }
        if bytes <= BLOB_BYTES {
            self.blob_bytes += bytes;
            self.by_lookup.insert(lookup.clone(), remembered);
        }
    }
}

thread_local! {
    static GUESSES: RefCell<Guesses> = RefCell::default();
}

pub(super) fn get(lookup: &Lookup) -> Option<Remembered> {
    GUESSES.with(|guesses| guesses.borrow().by_lookup.get(lookup).cloned())
}

pub(super) fn remember(lookup: &Lookup, remembered: Remembered) {
    GUESSES.with(|guesses| guesses.borrow_mut().insert(lookup, remembered));
}

pub(super) fn forget(lookup: &Lookup) {
    GUESSES.with(|guesses| guesses.borrow_mut().remove(lookup));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remembered(blob_bytes: usize) -> Remembered {
        Remembered {
            key: "secret/v1/k".into(),
            blob: Sealed(Rc::from(vec![7u8; blob_bytes])),
            id: CredentialId::parse("0b6a4f8e-5d1c-4e2a-9f3b-7c8d9e0f1a2b").expect("id"),
            owner: TenantId::parse("4f1d2c3b-8a9e-4b7c-a6d5-e4f3a2b1c0d9").expect("tenant"),
            secret_version: Version::FIRST,
            blob_nonce: "00".into(),
            wrapped_dek: Vec::new(),
            tk_version: None,
            tenant_key: None,
        }
    }

    fn lookup(n: u128) -> Lookup {
        Lookup::Id(CredentialId::parse(&uuid::Uuid::from_u128(n).to_string()).expect("id"))
    }

    #[test]
    fn blob_bytes_are_counted_replaced_and_forgotten() {
        let mut guesses = Guesses::default();
        guesses.insert(&lookup(1), remembered(100));
        guesses.insert(&lookup(2), remembered(50));
        assert_eq!(guesses.blob_bytes, 150);
        guesses.insert(&lookup(1), remembered(10));
        assert_eq!(
            guesses.blob_bytes, 60,
            "a replaced entry's bytes are not counted twice"
        );
        guesses.remove(&lookup(2));
        assert_eq!(guesses.blob_bytes, 10);
        guesses.remove(&lookup(2));
        assert_eq!(guesses.blob_bytes, 10);
        assert_eq!(guesses.by_lookup.len(), 1);
    }

    #[test]
    fn memory_starts_over_at_its_byte_bound() {
        let mut guesses = Guesses::default();
        let half = BLOB_BYTES / 2;
        guesses.insert(&lookup(1), remembered(half));
        guesses.insert(&lookup(2), remembered(half));
        assert_eq!(guesses.by_lookup.len(), 2);
        assert_eq!(guesses.blob_bytes, BLOB_BYTES);
        guesses.insert(&lookup(3), remembered(1));
        assert_eq!(guesses.by_lookup.len(), 1, "over the bound: started over");
        assert_eq!(guesses.blob_bytes, 1);
        assert!(guesses.by_lookup.contains_key(&lookup(3)));
        // A blob larger than the whole bound is not kept at all.
        guesses.insert(&lookup(4), remembered(BLOB_BYTES + 1));
        assert!(!guesses.by_lookup.contains_key(&lookup(4)));
        assert!(guesses.blob_bytes <= BLOB_BYTES);
    }

    #[test]
    fn memory_starts_over_at_its_entry_bound() {
        let mut guesses = Guesses::default();
        for n in 0..CAPACITY as u128 {
            guesses.insert(&lookup(n), remembered(1));
        }
        assert_eq!(guesses.by_lookup.len(), CAPACITY);
        guesses.insert(&lookup(0), remembered(1));
        assert_eq!(guesses.by_lookup.len(), CAPACITY, "a known lookup replaces");
        guesses.insert(&lookup(u128::MAX), remembered(1));
        assert_eq!(guesses.by_lookup.len(), 1);
        assert_eq!(guesses.blob_bytes, 1);
    }

    #[test]
    fn the_isolate_memory_remembers_replaces_and_forgets() {
        assert!(get(&lookup(9)).is_none());
        remember(&lookup(9), remembered(5));
        remember(&lookup(10), remembered(6));
        let got = get(&lookup(9)).expect("remembered");
        assert_eq!(got.blob.bytes(), &[7u8; 5][..]);
        remember(&lookup(9), remembered(2));
        assert_eq!(get(&lookup(9)).map(|r| r.blob.bytes().len()), Some(2));
        forget(&lookup(9));
        assert!(get(&lookup(9)).is_none());
        assert!(get(&lookup(10)).is_some(), "another lookup is left alone");
        GUESSES.with(|guesses| assert_eq!(guesses.borrow().blob_bytes, 6));
    }

    #[test]
    fn a_sealed_blob_debugs_as_its_length() {
        assert_eq!(format!("{:?}", remembered(3).blob), "Sealed(3 bytes)");
    }
}
