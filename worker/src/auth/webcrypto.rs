//! Realm signatures checked by the runtime's WebCrypto (`crypto.subtle`):
//! `importKey("jwk", ...)` once per key and isolate, then `verify` per
//! token. RSA and elliptic-curve arithmetic thus stay out of the `.wasm`
//! (workerd runs them natively, faster than the same code compiled to wasm).
//!
//! Everything decided here comes from the key, never from the token: the
//! algorithm [`RealmKey::precheck`] matched the token's `alg` against, the
//! import and verify parameters, and the key material. The token supplies
//! only the bytes it signed and its signature.

use core::cell::RefCell;
use std::collections::HashMap;

use coffer_core::TokenClaims;
use wasm_bindgen::{JsCast as _, JsValue};
use web_sys::{Crypto, CryptoKey, SubtleCrypto};
use worker::{
    js_sys::{Array, Object, Promise, Reflect, Uint8Array},
    wasm_bindgen_futures::JsFuture,
};

use super::verify::{self, ParsedToken, RealmKey, VerifyError};

/// The keys of one realm key set already imported into WebCrypto, by `kid`.
/// It lives and dies with its key set in the JWKS cache (`jwks.rs`), so a
/// refreshed set never verifies with a key imported from an older one.
#[derive(Debug, Default)]
pub(crate) struct ImportedKeys(RefCell<HashMap<String, CryptoKey>>);

/// Verifies a realm token's signature with `key` (the realm's key for
/// `kid`) and returns its claims, which the core's claim rules judge next.
pub(crate) async fn verify(
    token: &ParsedToken<'_>,
    kid: &str,
    key: &RealmKey,
    imported: &ImportedKeys,
) -> Result<TokenClaims, VerifyError> {
    key.precheck(token)?;
    let subtle = subtle().ok_or(VerifyError::UnusableKey)?;
    let cached = imported.0.borrow().get(kid).cloned();
    let crypto_key = match cached {
        Some(crypto_key) => crypto_key,
        None => {
            let crypto_key = import(&subtle, key).await.ok_or(VerifyError::UnusableKey)?;
            imported
                .0
                .borrow_mut()
                .insert(kid.to_owned(), crypto_key.clone());
            crypto_key
        }
    };
    let algorithm = dictionary(key.algorithm().verify_parameters().iter().copied());
    let signature = Uint8Array::from(token.signature());
    let signed = Uint8Array::from(token.signing_input());
    let verified = match subtle.verify_with_object_and_buffer_source_and_buffer_source(
        &algorithm,
        &crypto_key,
        &signature,
        &signed,
    ) {
        Ok(promise) => resolve(promise).await,
        Err(_) => None,
    };
    // Only `true` verifies; `false`, a rejection or anything else does not.
    if verified.and_then(|value| value.as_bool()) != Some(true) {
        return Err(VerifyError::BadSignature);
    }
    verify::claims_of_verified(token)
}

/// `crypto.subtle` of the global scope (a property in workerd's scope, so
/// read structurally rather than through a checked cast).
fn subtle() -> Option<SubtleCrypto> {
    let crypto = Reflect::get(&worker::js_sys::global(), &JsValue::from_str("crypto")).ok()?;
    if crypto.is_undefined() {
        return None;
    }
    Some(crypto.unchecked_into::<Crypto>().subtle())
}

/// Imports the key for verification only, not extractable.
async fn import(subtle: &SubtleCrypto, key: &RealmKey) -> Option<CryptoKey> {
    let jwk = dictionary(key.import_jwk());
    let algorithm = dictionary(key.algorithm().import_parameters().iter().copied());
    let usages = Array::of1(&JsValue::from_str("verify"));
    let promise = subtle
        .import_key_with_object("jwk", &jwk, &algorithm, false, &usages)
        .ok()?;
    let imported = resolve(promise).await?;
    imported
        .is_object()
        .then(|| imported.unchecked_into::<CryptoKey>())
}

async fn resolve(promise: Promise) -> Option<JsValue> {
    JsFuture::from(promise).await.ok()
}

/// A JS object with these string members.
fn dictionary<'n, 'v>(members: impl Iterator<Item = (&'n str, &'v str)>) -> Object {
    let object = Object::new();
    for (name, value) in members {
        // Setting a property on a fresh plain object cannot fail.
        let _ = Reflect::set(&object, &JsValue::from_str(name), &JsValue::from_str(value));
    }
    object
}
