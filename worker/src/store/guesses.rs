//! Isolate memory of which blob key each decrypted-read lookup was last
//! served from, so the next read can fetch the blob from KV while D1 is
//! still deciding. Keys only, never blob contents; bounded; a wrong or
//! stale guess costs one extra KV read and nothing else, because blob keys
//! are immutable and D1 names the current one.
use core::cell::RefCell;
use std::collections::HashMap;

use coffer_core::{CredentialId, TenantId};

/// How many lookups an isolate remembers before starting over.
const CAPACITY: usize = 10_000;

/// What a decrypted read looks a record up by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Lookup {
    /// A credential (connection) id.
    Id(CredentialId),
    /// The selection rule: a tenant's newest record for an integration.
    Selection(TenantId, String),
}

thread_local! {
    static GUESSES: RefCell<HashMap<Lookup, String>> = RefCell::new(HashMap::new());
}

pub(super) fn get(lookup: &Lookup) -> Option<String> {
    GUESSES.with(|guesses| guesses.borrow().get(lookup).cloned())
}

pub(super) fn remember(lookup: &Lookup, key: String) {
    GUESSES.with(|guesses| {
        let mut guesses = guesses.borrow_mut();
        if guesses.len() >= CAPACITY && !guesses.contains_key(lookup) {
            guesses.clear();
        }
        guesses.insert(lookup.clone(), key);
    });
}
