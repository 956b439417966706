//! Token signatures checked by the runtime's WebCrypto (`crypto.subtle`):
//! a realm key imported with `importKey("jwk", ...)` and the deployment's
//! HS256 secret with `importKey("raw", ...)`, each once per isolate, then
//! `verify` per token. HMAC, SHA-256, RSA and elliptic-curve arithmetic
//! thus stay out of the `.wasm` (workerd runs them natively).
//!
//! Everything decided here comes from the key, never from the token: the
//! algorithm the token's `alg` must match ([`RealmKey::precheck`],
//! [`verify::precheck_hs256`]), the import and verify parameters, and the
//! key material. The token supplies only the bytes it signed and its
//! signature.

use core::cell::RefCell;

use coffer_core::TokenClaims;
use subtle::ConstantTimeEq as _;
use wasm_bindgen::{JsCast as _, JsValue};
use web_sys::{Crypto, CryptoKey, SubtleCrypto};
use worker::{
    js_sys::{Array, Object, Promise, Reflect, Uint8Array},
    wasm_bindgen_futures::JsFuture,
};
use zeroize::Zeroizing;

use super::verify::{self, ParsedToken, RealmKey, VerifyError};

/// The keys of one realm key set already imported into WebCrypto, by `kid`
/// (a list searched in order, as [`verify::KeySet`] is). It lives and dies
/// with its key set in the JWKS cache (`jwks.rs`), so a refreshed set never
/// verifies with a key imported from an older one.
#[derive(Debug, Default)]
pub(crate) struct ImportedKeys(RefCell<Vec<(String, CryptoKey)>>);

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
    let cached = imported
        .0
        .borrow()
        .iter()
        .find_map(|(key_id, crypto_key)| (key_id == kid).then(|| crypto_key.clone()));
    let crypto_key = match cached {
        Some(crypto_key) => crypto_key,
        None => {
            let crypto_key = import(&subtle, key).await.ok_or(VerifyError::UnusableKey)?;
            let mut imported = imported.0.borrow_mut();
            // A concurrent request may have imported it while this one waited.
            if !imported.iter().any(|(key_id, _)| key_id == kid) {
                imported.push((kid.to_owned(), crypto_key.clone()));
            }
            crypto_key
        }
    };
    check_signature(
        &subtle,
        key.algorithm().verify_parameters(),
        &crypto_key,
        token,
    )
    .await?;
    verify::claims_of_verified(token)
}

thread_local! {
    /// The deployment's HS256 key as WebCrypto imported it, with the
    /// secret it was imported from: a request whose `AUTH_HS256_SECRET`
    /// differs (compared in constant time) imports its own.
    static HS256_KEY: RefCell<Option<(Zeroizing<Vec<u8>>, CryptoKey)>> =
        const { RefCell::new(None) };
}

/// Verifies an HS256 token's signature with the deployment's `secret` and
/// returns its claims, which the core's claim rules judge next.
pub(crate) async fn verify_hs256(
    token: &ParsedToken<'_>,
    secret: &str,
) -> Result<TokenClaims, VerifyError> {
    verify::precheck_hs256(token)?;
    let subtle = subtle().ok_or(VerifyError::UnusableHs256Key)?;
    let cached = HS256_KEY.with(|slot| {
        slot.borrow()
            .as_ref()
            .filter(|(imported_from, _)| bool::from(imported_from.ct_eq(secret.as_bytes())))
            .map(|(_, crypto_key)| crypto_key.clone())
    });
    let crypto_key = match cached {
        Some(crypto_key) => crypto_key,
        None => {
            let crypto_key = import_raw(&subtle, secret.as_bytes(), verify::HS256_IMPORT)
                .await
                .ok_or(VerifyError::UnusableHs256Key)?;
            let imported_from = Zeroizing::new(secret.as_bytes().to_vec());
            HS256_KEY.with(|slot| *slot.borrow_mut() = Some((imported_from, crypto_key.clone())));
            crypto_key
        }
    };
    check_signature(&subtle, verify::HS256_VERIFY, &crypto_key, token).await?;
    verify::claims_of_verified(token)
}

/// Whether WebCrypto says `token`'s signature over its signing input is
/// `key`'s, verifying with `parameters`.
async fn check_signature(
    subtle: &SubtleCrypto,
    parameters: &[(&str, &str)],
    key: &CryptoKey,
    token: &ParsedToken<'_>,
) -> Result<(), VerifyError> {
    let algorithm = dictionary(parameters.iter().copied());
    let signature = Uint8Array::from(token.signature());
    let signed = Uint8Array::from(token.signing_input());
    let verified = match subtle.verify_with_object_and_buffer_source_and_buffer_source(
        &algorithm, key, &signature, &signed,
    ) {
        Ok(promise) => resolve(promise).await,
        Err(_) => None,
    };
    // Only `true` verifies; `false`, a rejection or anything else does not.
    if verified.and_then(|value| value.as_bool()) != Some(true) {
        return Err(VerifyError::BadSignature);
    }
    Ok(())
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
    import_key(subtle, "jwk", &jwk, key.algorithm().import_parameters()).await
}

/// Imports raw key bytes for verification only, not extractable; the copy
/// handed to WebCrypto is wiped once it has been imported.
async fn import_raw(
    subtle: &SubtleCrypto,
    bytes: &[u8],
    parameters: &[(&str, &str)],
) -> Option<CryptoKey> {
    let key_data = Uint8Array::from(bytes);
    let imported = import_key(subtle, "raw", &key_data, parameters).await;
    key_data.fill(0, 0, key_data.length());
    imported
}

async fn import_key(
    subtle: &SubtleCrypto,
    format: &str,
    key_data: &Object,
    parameters: &[(&str, &str)],
) -> Option<CryptoKey> {
    let algorithm = dictionary(parameters.iter().copied());
    let usages = Array::of1(&JsValue::from_str("verify"));
    let promise = subtle
        .import_key_with_object(format, key_data, &algorithm, false, &usages)
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
