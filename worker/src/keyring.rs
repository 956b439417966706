//! The master keys (`COFFER_KEYS`), parsed once per isolate.
use alloc::rc::Rc;

use coffer_core::{Keyring, Zeroizing};
use worker::Env;

use crate::{env, error::ApiError};

thread_local! {
    /// `COFFER_KEYS` parsed once per isolate, keyed by its text (which only
    /// changes with a deployment); both are wiped when replaced.
    static PARSED_KEYRING: core::cell::RefCell<Option<(Zeroizing<String>, Rc<Keyring>)>> =
        const { core::cell::RefCell::new(None) };
}

/// The master keys. A malformed `COFFER_KEYS` fails the request with a
/// logged reason (never the value) and a generic 500.
pub(crate) fn keyring(env: &Env) -> Result<Rc<Keyring>, ApiError> {
    let raw = Zeroizing::new(
        env.secret(env::COFFER_KEYS)
            .map(|secret| secret.to_string())
            .or_else(|_| env.var(env::COFFER_KEYS).map(|var| var.to_string()))
            .map_err(|_| ApiError::internal("COFFER_KEYS is not set"))?,
    );
    let cached = PARSED_KEYRING.with(|cell| {
        cell.borrow()
            .as_ref()
            .filter(|(text, _)| **text == *raw)
            .map(|(_, keyring)| Rc::clone(keyring))
    });
    if let Some(keyring) = cached {
        return Ok(keyring);
    }
    let keyring = Rc::new(
        Keyring::parse(&raw)
            .map_err(|error| ApiError::internal(format!("COFFER_KEYS: {error}")))?,
    );
    PARSED_KEYRING.with(|cell| *cell.borrow_mut() = Some((raw, Rc::clone(&keyring))));
    Ok(keyring)
}
