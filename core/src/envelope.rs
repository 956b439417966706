//! Envelope encryption of secrets: AES-256-GCM under a fresh data key (DEK)
//! per secret version, the DEK wrapped under a master key (KEK).
//!
//! The byte formats are documented in the crate docs; the constants below
//! are their single source.
use alloc::{string::String, vec::Vec};
use core::fmt;

use aes_gcm::{
    aead::{AeadInPlace, KeyInit},
    Aes256Gcm, Key, Nonce, Tag,
};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::{
    id::{CredentialId, TenantId},
    keyring::{is_valid_kid, Keyring, KEK_LEN},
    validate::limits::MAX_SECRET_BYTES,
};

/// Format byte of a version-1 sealed blob.
pub(crate) const BLOB_V1: u8 = 0x01;
/// Format byte of a version-1 wrapped DEK.
const WRAPPED_V1: u8 = 0x01;
/// Domain labels that start each AAD, so that a blob can never be taken
/// for a wrapped key or the other way round, even under the same key.
const BLOB_LABEL: &[u8] = b"coffer/secret";
pub(crate) const WRAPPED_LABEL: &[u8] = b"coffer/dek";

/// A DEK is an AES-256 key.
pub(crate) const DEK_LEN: usize = 32;
/// NIST SP 800-38D §5.2.1.1 recommends 96-bit IVs: they are used as is,
/// without a GHASH pass, and §8.2.2 allows them to be random.
pub(crate) const NONCE_LEN: usize = 12;
/// The full 128-bit tag (SP 800-38D §5.2.1.2 allows truncation; we do not).
pub(crate) const TAG_LEN: usize = 16;
/// `format ‖ nonce`.
pub(crate) const BLOB_HEADER_LEN: usize = 1 + NONCE_LEN;
/// `format ‖ kid length`, before the kid.
const WRAPPED_PREFIX_LEN: usize = 2;

/// Which secret version a ciphertext belongs to. Both the sealed blob and
/// the wrapped DEK are bound to it through their AAD, so a blob or key
/// copied to another tenant, record or version does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Binding {
    /// The record's owner tenant.
    pub tenant: TenantId,
    /// The record.
    pub credential: CredentialId,
    /// The record's `version` when this secret was sealed.
    pub version: u64,
}

impl Binding {
    /// `tenant (16 bytes) ‖ credential (16 bytes) ‖ version (8 bytes, big-endian)`:
    /// fixed widths, so no two bindings share an encoding.
    pub(crate) fn encode_into(&self, aad: &mut Vec<u8>) {
        aad.extend_from_slice(self.tenant.as_uuid().as_bytes());
        aad.extend_from_slice(self.credential.as_uuid().as_bytes());
        aad.extend_from_slice(&self.version.to_be_bytes());
    }
}

/// A sealed secret version, ready to store.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The sealed blob (format byte, nonce, ciphertext, tag): goes to KV.
    pub blob: Vec<u8>,
    /// The DEK wrapped under the active KEK: goes to D1.
    pub wrapped_dek: Vec<u8>,
    /// The KEK's id, also inside `wrapped_dek`: a D1 column, so the rotation
    /// sweep can find keys still wrapped under a retired KEK. Empty when the
    /// DEK is wrapped under a tenant key ([`seal_with_tenant_key`](crate::seal_with_tenant_key)).
    pub kid: String,
    /// The version of the tenant key that wraps the DEK (format `0x02`), or
    /// `None` for a DEK wrapped under the KEK directly (format `0x01`).
    pub tenant_key_version: Option<u32>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ciphertext is not secret, but dumping it helps nobody; lengths do.
        f.debug_struct("Sealed")
            .field("blob_len", &self.blob.len())
            .field("wrapped_dek_len", &self.wrapped_dek.len())
            .field("kid", &self.kid)
            .field("tenant_key_version", &self.tenant_key_version)
            .finish()
    }
}

/// What [`rewrap`] did.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rewrapped {
    /// The DEK is already wrapped under the active KEK: nothing to store.
    AlreadyActive,
    /// The DEK, re-wrapped under the active KEK; the blob is untouched.
    Rewrapped {
        /// The new wrapped DEK, replacing the old one in D1.
        wrapped_dek: Vec<u8>,
        /// The active KEK's id.
        kid: String,
    },
}

impl fmt::Debug for Rewrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyActive => f.write_str("AlreadyActive"),
            Self::Rewrapped { wrapped_dek, kid } => f
                .debug_struct("Rewrapped")
                .field("wrapped_dek_len", &wrapped_dek.len())
                .field("kid", kid)
                .finish(),
        }
    }
}

/// Why a secret could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    /// The plaintext is larger than the contract's secret limit.
    TooLarge {
        /// The plaintext's length in bytes.
        len: usize,
        /// [`limits::MAX_SECRET_BYTES`](crate::limits::MAX_SECRET_BYTES).
        max: usize,
    },
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len, max } => {
                write!(
                    f,
                    "secret of {len} bytes is larger than the {max}-byte limit"
                )
            }
        }
    }
}

/// A sealed secret could not be opened. Deliberately one opaque variant:
/// an unknown key id, a wrong binding, a malformed or truncated input and a
/// bad tag all look the same, so that failures leak nothing about which
/// check failed (the worker logs it and answers 500).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// Not openable with this keyring and binding.
    Undecryptable,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sealed secret could not be opened")
    }
}

/// The one AEAD primitive of the crate: AES-256-GCM with a 96-bit nonce and
/// a 128-bit tag, appending `ciphertext ‖ tag` to `out`.
///
/// The caller reserves capacity in `out`, so the plaintext copied in for
/// in-place encryption never moves and leaves no stale copy behind.
pub(crate) fn aead_seal(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), aes_gcm::Error> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let start = out.len();
    out.extend_from_slice(plaintext);
    let Some(body) = out.get_mut(start..) else {
        return Err(aes_gcm::Error);
    };
    match cipher.encrypt_in_place_detached(Nonce::from_slice(nonce), aad, body) {
        Ok(tag) => {
            out.extend_from_slice(&tag);
            Ok(())
        }
        Err(error) => {
            // Wipe the plaintext copied in before giving up.
            zeroize::Zeroize::zeroize(out);
            Err(error)
        }
    }
}

/// Inverse of [`aead_seal`]: checks the tag over `ciphertext ‖ tag` and
/// returns the plaintext in a buffer wiped on drop.
pub(crate) fn aead_open(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let body_len = sealed
        .len()
        .checked_sub(TAG_LEN)
        .ok_or(OpenError::Undecryptable)?;
    let (ciphertext, tag) = sealed.split_at(body_len);
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    // aes-gcm 0.10 decrypts before comparing tags, so on failure the buffer
    // may hold unauthenticated plaintext: it is wiped on drop either way.
    let mut buffer = Zeroizing::new(ciphertext.to_vec());
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            aad,
            buffer.as_mut_slice(),
            Tag::from_slice(tag),
        )
        .map_err(|_| OpenError::Undecryptable)?;
    Ok(buffer)
}

pub(crate) fn blob_aad(binding: &Binding) -> Vec<u8> {
    let mut aad = Vec::with_capacity(BLOB_LABEL.len() + 1 + 40);
    aad.extend_from_slice(BLOB_LABEL);
    aad.push(BLOB_V1);
    binding.encode_into(&mut aad);
    aad
}

fn wrapped_aad(kid: &str, binding: &Binding) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAPPED_LABEL.len() + 2 + kid.len() + 40);
    aad.extend_from_slice(WRAPPED_LABEL);
    aad.push(WRAPPED_V1);
    aad.push(kid_len_byte(kid));
    aad.extend_from_slice(kid.as_bytes());
    binding.encode_into(&mut aad);
    aad
}

/// The key id's length as its one-byte prefix. Ids are at most 64 bytes
/// (checked by [`Keyring::parse`] and by the wrapped-key parser), so the
/// saturation never happens; it only avoids a silent truncating cast.
pub(crate) fn kid_len_byte(kid: &str) -> u8 {
    u8::try_from(kid.len()).unwrap_or(u8::MAX)
}

pub(crate) fn random_nonce(rng: &mut (impl RngCore + CryptoRng)) -> [u8; NONCE_LEN] {
    let mut nonce = [0_u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    nonce
}

/// Wraps `dek` under the keyring's active KEK.
fn wrap(
    keyring: &Keyring,
    rng: &mut (impl RngCore + CryptoRng),
    binding: &Binding,
    dek: &[u8; DEK_LEN],
) -> Result<(Vec<u8>, String), aes_gcm::Error> {
    let kek = keyring.active();
    // NIST SP 800-38D §8.3: at most 2^32 random nonces per key. Each wrap
    // spends one under the KEK, so a KEK covers about 4 billion secret
    // versions and rewraps; rotate long before that.
    let nonce = random_nonce(rng);
    let kid = kek.kid.as_str();
    let mut wrapped =
        Vec::with_capacity(WRAPPED_PREFIX_LEN + kid.len() + NONCE_LEN + DEK_LEN + TAG_LEN);
    wrapped.push(WRAPPED_V1);
    wrapped.push(kid_len_byte(kid));
    wrapped.extend_from_slice(kid.as_bytes());
    wrapped.extend_from_slice(&nonce);
    aead_seal(
        &kek.key,
        &nonce,
        &wrapped_aad(kid, binding),
        dek,
        &mut wrapped,
    )?;
    Ok((wrapped, kek.kid.clone()))
}

/// The parts of a version-1 wrapped DEK.
struct WrappedParts<'a> {
    kid: &'a str,
    nonce: &'a [u8; NONCE_LEN],
    sealed_dek: &'a [u8],
}

fn parse_wrapped(wrapped: &[u8]) -> Option<WrappedParts<'_>> {
    let (&[format, kid_len], rest) = wrapped.split_first_chunk::<WRAPPED_PREFIX_LEN>()?;
    if format != WRAPPED_V1 {
        return None;
    }
    let (kid, rest) = rest.split_at_checked(usize::from(kid_len))?;
    if !is_valid_kid(kid) {
        return None;
    }
    let kid = core::str::from_utf8(kid).ok()?;
    let (nonce, sealed_dek) = rest.split_first_chunk::<NONCE_LEN>()?;
    if sealed_dek.len() != DEK_LEN + TAG_LEN {
        return None;
    }
    Some(WrappedParts {
        kid,
        nonce,
        sealed_dek,
    })
}

/// Unwraps a DEK with whichever KEK its header names.
pub(crate) fn unwrap_dek<'a>(
    keyring: &Keyring,
    binding: &Binding,
    wrapped: &'a [u8],
) -> Result<(Zeroizing<[u8; DEK_LEN]>, &'a str), OpenError> {
    let parts = parse_wrapped(wrapped).ok_or(OpenError::Undecryptable)?;
    let kek = keyring.get(parts.kid).ok_or(OpenError::Undecryptable)?;
    let plain = aead_open(
        &kek.key,
        parts.nonce,
        &wrapped_aad(parts.kid, binding),
        parts.sealed_dek,
    )?;
    let mut dek = Zeroizing::new([0_u8; DEK_LEN]);
    if plain.len() != DEK_LEN {
        return Err(OpenError::Undecryptable);
    }
    dek.copy_from_slice(&plain);
    Ok((dek, parts.kid))
}

/// The key id a wrapped DEK names, if it is well formed: for logs (an
/// unknown id after a botched rotation) and for the sweep. The id is not
/// secret; nothing is decrypted.
pub fn wrapped_kid(wrapped_dek: &[u8]) -> Option<&str> {
    parse_wrapped(wrapped_dek).map(|parts| parts.kid)
}

/// Seals `plaintext` (a secret's compact JSON) for `binding`: a fresh DEK
/// and nonce from `rng`, the blob under the DEK, the DEK under the active
/// KEK. `rng` must be a CSPRNG (the worker passes one over
/// `crypto.getRandomValues`).
///
/// # Errors
///
/// [`SealError::TooLarge`] when `plaintext` exceeds
/// [`limits::MAX_SECRET_BYTES`](crate::limits::MAX_SECRET_BYTES).
pub fn seal(
    keyring: &Keyring,
    rng: &mut (impl RngCore + CryptoRng),
    binding: &Binding,
    plaintext: &[u8],
) -> Result<Sealed, SealError> {
    let (dek, blob) = seal_blob(rng, binding, plaintext)?;
    // The only failure of AES-GCM encryption is an input over 2^36 - 32
    // bytes; a DEK is 32.
    let (wrapped_dek, kid) =
        wrap(keyring, rng, binding, &dek).map_err(|_| SealError::TooLarge {
            len: plaintext.len(),
            max: MAX_SECRET_BYTES,
        })?;
    Ok(Sealed {
        blob,
        wrapped_dek,
        kid,
        tenant_key_version: None,
    })
}

/// A fresh DEK and the format-`0x01` blob of `plaintext` under it.
pub(crate) fn seal_blob(
    rng: &mut (impl RngCore + CryptoRng),
    binding: &Binding,
    plaintext: &[u8],
) -> Result<(Zeroizing<[u8; DEK_LEN]>, Vec<u8>), SealError> {
    let too_large = SealError::TooLarge {
        len: plaintext.len(),
        max: MAX_SECRET_BYTES,
    };
    if plaintext.len() > MAX_SECRET_BYTES {
        return Err(too_large);
    }
    let mut dek = Zeroizing::new([0_u8; DEK_LEN]);
    rng.fill_bytes(dek.as_mut_slice());
    // Each DEK encrypts exactly one message, so the SP 800-38D §8.3 nonce
    // budget is never a concern for it; the nonce is random anyway so that
    // a faulty RNG repeating a DEK still needs to repeat the nonce too.
    let nonce = random_nonce(rng);
    let mut blob = Vec::with_capacity(BLOB_HEADER_LEN + plaintext.len() + TAG_LEN);
    blob.push(BLOB_V1);
    blob.extend_from_slice(&nonce);
    // The only failure of AES-GCM encryption is a plaintext over 2^36 - 32
    // bytes (SP 800-38D §5.2.1.1), ruled out by the size check above.
    aead_seal(&dek, &nonce, &blob_aad(binding), plaintext, &mut blob).map_err(|_| too_large)?;
    Ok((dek, blob))
}

/// Opens a sealed secret: unwraps the DEK with the KEK its header names,
/// then decrypts the blob. Returns the plaintext in a buffer wiped on drop.
///
/// # Errors
///
/// [`OpenError::Undecryptable`] for every failure: unknown key id, wrong
/// binding, malformed, truncated or tampered input.
pub fn open(
    keyring: &Keyring,
    binding: &Binding,
    wrapped_dek: &[u8],
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let (dek, _) = unwrap_dek(keyring, binding, wrapped_dek)?;
    open_blob(&dek, binding, blob)
}

/// Decrypts a format-`0x01` blob with its (already unwrapped) DEK.
pub(crate) fn open_blob(
    dek: &[u8; DEK_LEN],
    binding: &Binding,
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let (&[format], rest) = blob
        .split_first_chunk::<1>()
        .ok_or(OpenError::Undecryptable)?;
    if format != BLOB_V1 {
        return Err(OpenError::Undecryptable);
    }
    let (nonce, sealed) = rest
        .split_first_chunk::<NONCE_LEN>()
        .ok_or(OpenError::Undecryptable)?;
    aead_open(dek, nonce, &blob_aad(binding), sealed)
}

/// Re-wraps a DEK under the active KEK, for key rotation; the blob in KV is
/// not touched. The DEK is unwrapped (and so authenticated) first, even when
/// it is already under the active KEK, so the sweep also finds damaged rows.
///
/// # Errors
///
/// [`OpenError::Undecryptable`] when the wrapped DEK does not open with this
/// keyring and binding.
pub fn rewrap(
    keyring: &Keyring,
    rng: &mut (impl RngCore + CryptoRng),
    binding: &Binding,
    wrapped_dek: &[u8],
) -> Result<Rewrapped, OpenError> {
    let (dek, kid) = unwrap_dek(keyring, binding, wrapped_dek)?;
    if kid == keyring.active_kid() {
        return Ok(Rewrapped::AlreadyActive);
    }
    let (wrapped_dek, kid) =
        wrap(keyring, rng, binding, &dek).map_err(|_| OpenError::Undecryptable)?;
    Ok(Rewrapped::Rewrapped { wrapped_dek, kid })
}

// The KEK and DEK are both AES-256 keys; `aead_seal` takes either.
const _: () = assert!(KEK_LEN == DEK_LEN);

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use alloc::{format, string::ToString, vec, vec::Vec};

    use base64::{engine::general_purpose::STANDARD, Engine as _};
    use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

    use super::*;

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(0x00c0_ffee)
    }

    fn keyring(entries: &[(&str, u8)]) -> Keyring {
        let value: Vec<String> = entries
            .iter()
            .map(|(kid, byte)| format!("{kid}:{}", STANDARD.encode([*byte; 32])))
            .collect();
        Keyring::parse(&value.join(",")).expect("valid keyring")
    }

    fn binding(tenant: u8, credential: u8, version: u64) -> Binding {
        let id = |n: u8| format!("00000000-0000-4000-8000-0000000000{n:02x}");
        Binding {
            tenant: TenantId::parse(&id(tenant)).expect("uuid"),
            credential: CredentialId::parse(&id(credential)).expect("uuid"),
            version,
        }
    }

    const SECRET: &[u8] = br#"{"accessToken":"at-123","refreshToken":"rt-456"}"#;

    #[test]
    fn sealed_secrets_open_to_the_same_bytes() {
        let keys = keyring(&[("k1", 1)]);
        let mut rng = rng();
        for len in [0, 1, 16, 1024, MAX_SECRET_BYTES] {
            let plaintext: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = seal(&keys, &mut rng, &binding(1, 2, 3), &plaintext).expect("sealed");
            assert_eq!(sealed.kid, "k1");
            assert_eq!(sealed.blob.len(), 1 + 12 + len + 16);
            assert_eq!(sealed.wrapped_dek.len(), 2 + 2 + 12 + 32 + 16);
            let opened =
                open(&keys, &binding(1, 2, 3), &sealed.wrapped_dek, &sealed.blob).expect("opens");
            assert_eq!(opened.as_slice(), plaintext.as_slice());
        }
    }

    #[test]
    fn secrets_over_the_limit_are_refused() {
        let keys = keyring(&[("k1", 1)]);
        let plaintext = vec![b'a'; MAX_SECRET_BYTES + 1];
        assert!(matches!(
            seal(&keys, &mut rng(), &binding(1, 2, 3), &plaintext),
            Err(SealError::TooLarge {
                len: 65537,
                max: 65536
            })
        ));
    }

    #[test]
    fn every_seal_uses_fresh_randomness() {
        let keys = keyring(&[("k1", 1)]);
        let mut rng = rng();
        let a = seal(&keys, &mut rng, &binding(1, 2, 3), SECRET).expect("sealed");
        let b = seal(&keys, &mut rng, &binding(1, 2, 3), SECRET).expect("sealed");
        assert_ne!(a.blob, b.blob);
        assert_ne!(a.wrapped_dek, b.wrapped_dek);
        // A DEK from one seal does not open the other's blob.
        assert!(matches!(
            open(&keys, &binding(1, 2, 3), &a.wrapped_dek, &b.blob),
            Err(OpenError::Undecryptable)
        ));
    }

    /// The nonce of a sealed blob (`format ‖ nonce ‖ …`).
    fn blob_nonce(blob: &[u8]) -> [u8; NONCE_LEN] {
        blob[1..1 + NONCE_LEN].try_into().expect("12 bytes")
    }

    /// The nonce of a wrapped DEK (`format ‖ k ‖ kid ‖ nonce ‖ …`).
    fn wrap_nonce(wrapped: &[u8]) -> [u8; NONCE_LEN] {
        let start = 2 + usize::from(wrapped[1]);
        wrapped[start..start + NONCE_LEN]
            .try_into()
            .expect("12 bytes")
    }

    /// NIST SP 800-38D §8: a (key, nonce) pair must never encrypt twice.
    /// Every wrap under one KEK, from a seal or a rewrap, spends a nonce of
    /// that KEK, so no two may be equal; and sealing the same secret for the
    /// same record twice must not repeat a blob nonce either (a constant
    /// nonce would leave only the DEK's randomness between two identical
    /// ciphertexts).
    #[test]
    fn no_nonce_repeats_across_seals_and_rewraps_of_the_same_input() {
        let b = binding(1, 2, 3);
        let keys = keyring(&[("k1", 1), ("k0", 0)]);
        let retired = keyring(&[("k0", 0)]);
        let mut rng = rng();
        let mut blob_nonces = alloc::collections::BTreeSet::new();
        let mut k1_wrap_nonces = alloc::collections::BTreeSet::new();
        const SEALS: usize = 200;
        for _ in 0..SEALS {
            let sealed = seal(&keys, &mut rng, &b, SECRET).expect("sealed");
            assert!(blob_nonces.insert(blob_nonce(&sealed.blob)));
            assert!(k1_wrap_nonces.insert(wrap_nonce(&sealed.wrapped_dek)));
            // The same secret, sealed under the old key and moved to k1 by
            // the rotation sweep, spends a k1 nonce of its own too.
            let old = seal(&retired, &mut rng, &b, SECRET).expect("sealed");
            assert!(blob_nonces.insert(blob_nonce(&old.blob)));
            let Ok(Rewrapped::Rewrapped { wrapped_dek, .. }) =
                rewrap(&keys, &mut rng, &b, &old.wrapped_dek)
            else {
                panic!("rewraps under k1");
            };
            assert_ne!(wrap_nonce(&wrapped_dek), wrap_nonce(&old.wrapped_dek));
            assert!(k1_wrap_nonces.insert(wrap_nonce(&wrapped_dek)));
        }
        assert_eq!(blob_nonces.len(), 2 * SEALS);
        assert_eq!(k1_wrap_nonces.len(), 2 * SEALS);
    }

    /// `aead_seal` copies the plaintext (the secret, or the DEK) into the
    /// output and encrypts it in place. If the output had to grow after the
    /// copy, the allocator would get back a buffer still holding the
    /// plaintext, never wiped. `Vec::with_capacity(n)` allocates exactly
    /// `n` (the `Vec` docs' "Guarantees"), so an output whose capacity is
    /// its length was never reallocated: the header and tag lengths the
    /// capacity is computed from are the real ones.
    #[test]
    fn sealing_reserves_exactly_the_output_so_no_plaintext_copy_is_left_behind() {
        let mut rng = rng();
        for kid in ["k", "main-2025", &"k".repeat(64)] {
            let keys = keyring(&[(kid, 1), ("old", 2)]);
            for len in [0, 1, 47, 1024, MAX_SECRET_BYTES] {
                let plaintext = vec![b'x'; len];
                let sealed = seal(&keys, &mut rng, &binding(1, 2, 3), &plaintext).expect("sealed");
                assert_eq!(sealed.blob.capacity(), sealed.blob.len(), "{kid} {len}");
                assert_eq!(
                    sealed.wrapped_dek.capacity(),
                    sealed.wrapped_dek.len(),
                    "{kid} {len}"
                );
            }
            let old =
                seal(&keyring(&[("old", 2)]), &mut rng, &binding(1, 2, 3), SECRET).expect("sealed");
            let Ok(Rewrapped::Rewrapped { wrapped_dek, .. }) =
                rewrap(&keys, &mut rng, &binding(1, 2, 3), &old.wrapped_dek)
            else {
                panic!("rewraps");
            };
            assert_eq!(wrapped_dek.capacity(), wrapped_dek.len(), "{kid}");
        }
    }

    #[test]
    fn every_single_byte_tamper_fails() {
        let keys = keyring(&[("k1", 1)]);
        let b = binding(1, 2, 3);
        let sealed = seal(&keys, &mut rng(), &b, SECRET).expect("sealed");
        for flip in [0x01_u8, 0x80, 0xff] {
            for i in 0..sealed.blob.len() {
                let mut blob = sealed.blob.clone();
                blob[i] ^= flip;
                assert!(
                    matches!(
                        open(&keys, &b, &sealed.wrapped_dek, &blob),
                        Err(OpenError::Undecryptable)
                    ),
                    "blob byte {i} ^ {flip:#x}"
                );
            }
            for i in 0..sealed.wrapped_dek.len() {
                let mut wrapped = sealed.wrapped_dek.clone();
                wrapped[i] ^= flip;
                assert!(
                    matches!(
                        open(&keys, &b, &wrapped, &sealed.blob),
                        Err(OpenError::Undecryptable)
                    ),
                    "wrapped byte {i} ^ {flip:#x}"
                );
                assert!(matches!(
                    rewrap(&keys, &mut rng(), &b, &wrapped),
                    Err(OpenError::Undecryptable)
                ));
            }
        }
    }

    #[test]
    fn truncated_or_extended_inputs_fail() {
        let keys = keyring(&[("k1", 1)]);
        let b = binding(1, 2, 3);
        let sealed = seal(&keys, &mut rng(), &b, SECRET).expect("sealed");
        for len in 0..sealed.blob.len() {
            assert!(
                open(&keys, &b, &sealed.wrapped_dek, &sealed.blob[..len]).is_err(),
                "{len}"
            );
        }
        for len in 0..sealed.wrapped_dek.len() {
            assert!(
                open(&keys, &b, &sealed.wrapped_dek[..len], &sealed.blob).is_err(),
                "{len}"
            );
        }
        let mut longer = sealed.blob.clone();
        longer.push(0);
        assert!(open(&keys, &b, &sealed.wrapped_dek, &longer).is_err());
        let mut longer = sealed.wrapped_dek.clone();
        longer.push(0);
        assert!(open(&keys, &b, &longer, &sealed.blob).is_err());
        assert!(open(&keys, &b, &sealed.blob, &sealed.wrapped_dek).is_err());
    }

    #[test]
    fn a_blob_or_key_moved_to_another_binding_fails() {
        let keys = keyring(&[("k1", 1)]);
        let original = binding(1, 2, 3);
        let sealed = seal(&keys, &mut rng(), &original, SECRET).expect("sealed");
        for other in [
            binding(9, 2, 3),
            binding(1, 9, 3),
            binding(1, 2, 4),
            binding(1, 2, 2),
        ] {
            assert!(matches!(
                open(&keys, &other, &sealed.wrapped_dek, &sealed.blob),
                Err(OpenError::Undecryptable)
            ));
            assert!(matches!(
                rewrap(&keys, &mut rng(), &other, &sealed.wrapped_dek),
                Err(OpenError::Undecryptable)
            ));
        }
        // The tenant and credential uuids swapped with each other.
        let swapped = Binding {
            tenant: TenantId::parse(&original.credential.to_string()).expect("uuid"),
            credential: CredentialId::parse(&original.tenant.to_string()).expect("uuid"),
            version: 3,
        };
        assert!(open(&keys, &swapped, &sealed.wrapped_dek, &sealed.blob).is_err());
        // A wrapped key re-encrypted for another record (as a rewrap under a
        // stolen binding would produce) still cannot open this blob.
        let elsewhere = seal(&keys, &mut rng(), &binding(1, 9, 3), SECRET).expect("sealed");
        assert!(open(&keys, &original, &elsewhere.wrapped_dek, &sealed.blob).is_err());
    }

    #[test]
    fn rotation_rewraps_and_survives_removing_the_old_key() {
        let b = binding(1, 2, 3);
        let old = keyring(&[("old", 1)]);
        let sealed = seal(&old, &mut rng(), &b, SECRET).expect("sealed");
        assert_eq!(wrapped_kid(&sealed.wrapped_dek), Some("old"));

        let rotated = keyring(&[("new", 2), ("old", 1)]);
        // Before the sweep, the old wrap still opens under the rotated ring.
        assert!(open(&rotated, &b, &sealed.wrapped_dek, &sealed.blob).is_ok());
        let Rewrapped::Rewrapped { wrapped_dek, kid } =
            rewrap(&rotated, &mut rng(), &b, &sealed.wrapped_dek).expect("rewraps")
        else {
            panic!("expected a new wrap");
        };
        assert_eq!(kid, "new");
        assert_eq!(wrapped_kid(&wrapped_dek), Some("new"));
        let opened = open(&rotated, &b, &wrapped_dek, &sealed.blob).expect("opens");
        assert_eq!(opened.as_slice(), SECRET);
        // A second sweep has nothing to do.
        assert_eq!(
            rewrap(&rotated, &mut rng(), &b, &wrapped_dek),
            Ok(Rewrapped::AlreadyActive)
        );

        let retired = keyring(&[("new", 2)]);
        let opened = open(&retired, &b, &wrapped_dek, &sealed.blob).expect("opens without old");
        assert_eq!(opened.as_slice(), SECRET);
        // The old wrap needs the key that is gone.
        assert!(matches!(
            open(&retired, &b, &sealed.wrapped_dek, &sealed.blob),
            Err(OpenError::Undecryptable)
        ));
    }

    #[test]
    fn a_keyring_without_the_kid_fails_cleanly() {
        let b = binding(1, 2, 3);
        let sealed = seal(&keyring(&[("a", 1)]), &mut rng(), &b, SECRET).expect("sealed");
        let others = keyring(&[("b", 1)]);
        assert_eq!(
            open(&others, &b, &sealed.wrapped_dek, &sealed.blob),
            Err(OpenError::Undecryptable)
        );
        // Same id, different key bytes: the tag catches it.
        let impostor = keyring(&[("a", 2)]);
        assert_eq!(
            open(&impostor, &b, &sealed.wrapped_dek, &sealed.blob),
            Err(OpenError::Undecryptable)
        );
    }

    #[test]
    fn byte_formats_are_as_documented() {
        let keys = keyring(&[("main-2025", 1)]);
        let sealed = seal(&keys, &mut rng(), &binding(1, 2, 3), SECRET).expect("sealed");
        assert_eq!(sealed.blob[0], 0x01);
        assert_eq!(sealed.wrapped_dek[0], 0x01);
        assert_eq!(sealed.wrapped_dek[1], 9);
        assert_eq!(&sealed.wrapped_dek[2..11], b"main-2025");
        assert_eq!(sealed.wrapped_dek.len(), 2 + 9 + 12 + 48);
        // A future format byte is refused, not misread.
        let mut future = sealed.blob.clone();
        future[0] = 0x02;
        assert!(open(&keys, &binding(1, 2, 3), &sealed.wrapped_dek, &future).is_err());
        assert_eq!(wrapped_kid(&[0x02, 1, b'a']), None);
    }

    #[test]
    fn debug_output_shows_no_bytes() {
        let keys = keyring(&[("k1", 1)]);
        let sealed = seal(&keys, &mut rng(), &binding(1, 2, 3), SECRET).expect("sealed");
        assert_eq!(
            format!("{sealed:?}"),
            format!(
                r#"Sealed {{ blob_len: {}, wrapped_dek_len: 64, kid: "k1", tenant_key_version: None }}"#,
                29 + SECRET.len()
            )
        );
        assert_eq!(
            OpenError::Undecryptable.to_string(),
            "sealed secret could not be opened"
        );
        // The rotation sweep's results, as a log or a failed assertion
        // would print them: the key id and a length, never the wrapped key.
        let rotated = keyring(&[("k2", 2), ("k1", 1)]);
        let rewrapped =
            rewrap(&rotated, &mut rng(), &binding(1, 2, 3), &sealed.wrapped_dek).expect("rewraps");
        assert_eq!(
            format!("{rewrapped:?}"),
            r#"Rewrapped { wrapped_dek_len: 64, kid: "k2" }"#
        );
        assert_eq!(format!("{:?}", Rewrapped::AlreadyActive), "AlreadyActive");
    }

    /// The worker logs a sealing failure as `seal: <this text>`.
    #[test]
    fn a_refused_seal_says_how_large_it_was() {
        let keys = keyring(&[("k1", 1)]);
        let plaintext = vec![b'a'; MAX_SECRET_BYTES + 1];
        let error = seal(&keys, &mut rng(), &binding(1, 2, 3), &plaintext).expect_err("too large");
        assert_eq!(
            error.to_string(),
            "secret of 65537 bytes is larger than the 65536-byte limit"
        );
    }

    fn hex(text: &str) -> Vec<u8> {
        let text: String = text.split_whitespace().collect();
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }

    struct Vector {
        source: &'static str,
        key: &'static str,
        nonce: &'static str,
        aad: &'static str,
        plaintext: &'static str,
        ciphertext: &'static str,
        tag: &'static str,
        valid: bool,
    }

    /// AES-256-GCM known answers, run through `aead_seal` / `aead_open`,
    /// the functions the envelope uses.
    ///
    /// - "GCM spec TC n": D. McGrew and J. Viega, "The Galois/Counter Mode of
    ///   Operation (GCM)", revised 2005, Appendix B, Test Cases 13–16 (the
    ///   AES-256 cases with 96-bit IVs), as submitted to NIST for
    ///   SP 800-38D.
    /// - "Wycheproof n": C2SP/wycheproof `testvectors/aes_gcm_test.json`
    ///   (google-wycheproof 0.8r12), tcId n, from the 256-bit key, 96-bit IV
    ///   group.
    const VECTORS: &[Vector] = &[
        Vector {
            source: "GCM spec TC 13",
            key: "0000000000000000000000000000000000000000000000000000000000000000",
            nonce: "000000000000000000000000",
            aad: "",
            plaintext: "",
            ciphertext: "",
            tag: "530f8afbc74536b9a963b4f1c4cb738b",
            valid: true,
        },
        Vector {
            source: "GCM spec TC 14",
            key: "0000000000000000000000000000000000000000000000000000000000000000",
            nonce: "000000000000000000000000",
            aad: "",
            plaintext: "00000000000000000000000000000000",
            ciphertext: "cea7403d4d606b6e074ec5d3baf39d18",
            tag: "d0d1c8a799996bf0265b98b5d48ab919",
            valid: true,
        },
        Vector {
            source: "GCM spec TC 15",
            key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            nonce: "cafebabefacedbaddecaf888",
            aad: "",
            plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
                        1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
            ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
                         8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
            tag: "b094dac5d93471bdec1a502270e3cc6c",
            valid: true,
        },
        Vector {
            source: "GCM spec TC 16",
            key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            nonce: "cafebabefacedbaddecaf888",
            aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
                        1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
            ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
                         8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
            tag: "76fc6ece0f4e1768cddf8853bb2d551b",
            valid: true,
        },
        Vector {
            source: "Wycheproof 89",
            key: "2ce6b4c15f85fb2da5cc6c269491eef281980309181249ebf2832bd6d0732d0b",
            nonce: "c064fae9173b173fd6f11f34",
            aad: "498d3075b09fed998280583d61bb36b6ce41f130063b80824d1586e143d349b1
                  26b16aa10fe57343ed223d6364ee602257fe313a7fc9bf9088f027795b8dc1d3",
            plaintext: "f8a27a4baf00dc0555d222f2fa4fb42dc666ea3c",
            ciphertext: "aed58d8a252f740dba4bf6d36773bd5b41234bba",
            tag: "01f93d7456aa184ebb49bea472b6d65d",
            valid: true,
        },
        Vector {
            source: "Wycheproof 92 (special case: tag all ones)",
            key: "00112233445566778899aabbccddeeff102132435465768798a9bacbdcedfe0f",
            nonce: "000000000000000000000000",
            aad: "",
            plaintext: "561008fa07a68f5c61285cd013464eaf",
            ciphertext: "23293e9b07ca7d1b0cae7cc489a973b3",
            tag: "ffffffffffffffffffffffffffffffff",
            valid: true,
        },
        Vector {
            source: "Wycheproof 93 (special case: tag all zeros)",
            key: "00112233445566778899aabbccddeeff102132435465768798a9bacbdcedfe0f",
            nonce: "ffffffffffffffffffffffff",
            aad: "",
            plaintext: "c6152244cea1978d3e0bc274cf8c0b3b",
            ciphertext: "7cb6fc7c6abc009efe9551a99f36a421",
            tag: "00000000000000000000000000000000",
            valid: true,
        },
        Vector {
            source: "Wycheproof 94 (flipped bit 0 in tag)",
            key: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            nonce: "505152535455565758595a5b",
            aad: "",
            plaintext: "202122232425262728292a2b2c2d2e2f",
            ciphertext: "b2061457c0759fc1749f174ee1ccadfa",
            tag: "9de8fef6d8ab1bf1bf887232eab590dd",
            valid: false,
        },
        Vector {
            source: "Wycheproof 117 (tag changed to all zero)",
            key: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            nonce: "505152535455565758595a5b",
            aad: "",
            plaintext: "202122232425262728292a2b2c2d2e2f",
            ciphertext: "b2061457c0759fc1749f174ee1ccadfa",
            tag: "00000000000000000000000000000000",
            valid: false,
        },
    ];

    #[test]
    fn aes_256_gcm_known_answers() {
        for vector in VECTORS {
            let key: [u8; 32] = hex(vector.key).try_into().expect("32-byte key");
            let nonce: [u8; 12] = hex(vector.nonce).try_into().expect("12-byte nonce");
            let aad = hex(vector.aad);
            let plaintext = hex(vector.plaintext);
            let mut expected = hex(vector.ciphertext);
            expected.extend(hex(vector.tag));
            let opened = aead_open(&key, &nonce, &aad, &expected);
            if vector.valid {
                let mut sealed = Vec::new();
                aead_seal(&key, &nonce, &aad, &plaintext, &mut sealed).expect("seals");
                assert_eq!(sealed, expected, "{}", vector.source);
                assert_eq!(
                    opened.as_deref().map(Vec::as_slice),
                    Ok(plaintext.as_slice()),
                    "{}",
                    vector.source
                );
            } else {
                assert_eq!(opened, Err(OpenError::Undecryptable), "{}", vector.source);
            }
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn any_binding() -> impl Strategy<Value = Binding> {
            (any::<[u8; 16]>(), any::<[u8; 16]>(), any::<u64>()).prop_map(|(t, c, version)| {
                Binding {
                    tenant: TenantId::parse(&uuid::Uuid::from_bytes(t).to_string()).expect("uuid"),
                    credential: CredentialId::from_uuid(uuid::Uuid::from_bytes(c)),
                    version,
                }
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn any_secret_round_trips(
                plaintext in proptest::collection::vec(any::<u8>(), 0..4096),
                b in any_binding(),
                seed in any::<u64>(),
            ) {
                let keys = keyring(&[("k1", 1)]);
                let mut rng = ChaCha20Rng::seed_from_u64(seed);
                let sealed = seal(&keys, &mut rng, &b, &plaintext).expect("sealed");
                let opened = open(&keys, &b, &sealed.wrapped_dek, &sealed.blob).expect("opens");
                prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
            }

            #[test]
            fn any_tamper_fails(
                plaintext in proptest::collection::vec(any::<u8>(), 0..512),
                b in any_binding(),
                position in any::<prop::sample::Index>(),
                flip in 1_u8..,
                in_blob in any::<bool>(),
            ) {
                let keys = keyring(&[("k1", 1)]);
                let mut sealed = seal(&keys, &mut rng(), &b, &plaintext).expect("sealed");
                let target = if in_blob { &mut sealed.blob } else { &mut sealed.wrapped_dek };
                let i = position.index(target.len());
                target[i] ^= flip;
                prop_assert!(open(&keys, &b, &sealed.wrapped_dek, &sealed.blob).is_err());
            }
        }
    }
}
