//! The middle layer of the key hierarchy: one key per tenant.
//!
//! Master key (KEK, [`Keyring`]) → tenant key (32 random bytes, one per
//! tenant and version, stored in D1 wrapped under a KEK) → the tenant's
//! data-key key (32 random bytes, stored in KV wrapped under the tenant
//! key) → data key (one per secret version, stored in D1 wrapped under the
//! data-key key, format `0x02`) → sealed blob (format `0x01`, unchanged).
//!
//! Rotating the master key rewraps tenant keys only (D1, one row per
//! tenant). Destroying a tenant's keys in D1 and KV makes every data key,
//! and so every blob, of the tenant unrecoverable (crypto-shredding); since
//! the two halves live in different stores, a copy of either store from
//! before the deletion, beside the other store as it is now, opens nothing.
//! [`TenantKey`] is the unwrapped data-key key: what the worker caches.
//!
//! The byte formats are documented in the crate docs; the constants below
//! are their single source.
use alloc::{string::String, vec::Vec};
use core::fmt;

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::{
    envelope::{
        aead_open, aead_seal, kid_len_byte, open_blob, random_nonce, seal_blob, unwrap_dek,
        Binding, OpenError, SealError, Sealed, DEK_LEN, NONCE_LEN, TAG_LEN, WRAPPED_LABEL,
    },
    id::TenantId,
    keyring::{is_valid_kid, Keyring},
};

/// Format byte of a version-1 wrapped tenant key.
const TENANT_KEY_V1: u8 = 0x01;
/// Format byte of a data key wrapped under a tenant key.
const WRAPPED_V2: u8 = 0x02;
/// Domain label of a wrapped tenant key's AAD (a DEK's is `coffer/dek`, a
/// blob's `coffer/secret`): no AAD of one layer equals another's.
const TENANT_KEY_LABEL: &[u8] = b"coffer/tenant-key";
/// Domain label of the KV half's AAD.
const KV_HALF_LABEL: &[u8] = b"coffer/tenant-kv-key";
/// Format byte of the KV half (the data-key key under the tenant key).
const KV_HALF_V1: u8 = 0x01;
/// Length of a KV half: format, version, nonce, key, tag.
const KV_HALF_LEN: usize = 1 + 4 + NONCE_LEN + TENANT_KEY_LEN + TAG_LEN;
/// A tenant key is an AES-256 key.
const TENANT_KEY_LEN: usize = 32;
/// `format ‖ kid length`, before the kid.
const TENANT_KEY_PREFIX_LEN: usize = 2;
/// `format ‖ tenant-key version ‖ nonce` of a format-`0x02` wrapped DEK.
const WRAPPED_V2_HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// Length of a format-`0x02` wrapped DEK.
pub(crate) const WRAPPED_V2_LEN: usize = WRAPPED_V2_HEADER_LEN + DEK_LEN + TAG_LEN;

/// A tenant's unwrapped data-key key (the key data keys are wrapped
/// under), of one tenant-key version: its bytes are wiped on drop and never
/// printed. Built only by [`new_tenant_key`] and [`open_tenant_key`], so it
/// always belongs to the tenant and version it names.
pub struct TenantKey {
    tenant: TenantId,
    version: u32,
    key: Zeroizing<[u8; TENANT_KEY_LEN]>,
}

impl TenantKey {
    /// The tenant the key belongs to.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The key's version (from 1; a tenant-key rotation adds one).
    pub fn version(&self) -> u32 {
        self.version
    }
}

impl fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantKey")
            .field("tenant", &self.tenant)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A tenant key wrapped under a master key, ready to store, and the
/// tenant's data-key key wrapped under it.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedTenantKey {
    /// The wrapped-tenant-key format (see the crate docs): goes to D1.
    pub wrapped: Vec<u8>,
    /// The KEK's id, also inside `wrapped`: a D1 column, so master-key
    /// rotation finds tenant keys still wrapped under a retired KEK.
    pub kid: String,
    /// The KV half (see the crate docs): the data-key key wrapped under the
    /// tenant key; goes to KV. Empty from [`rewrap_tenant_key`], which
    /// leaves it as it is.
    pub kv_half: Vec<u8>,
}

impl fmt::Debug for WrappedTenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedTenantKey")
            .field("wrapped_len", &self.wrapped.len())
            .field("kid", &self.kid)
            .field("kv_half_len", &self.kv_half.len())
            .finish()
    }
}

fn tenant_key_aad(kid: &str, tenant: TenantId, version: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(TENANT_KEY_LABEL.len() + 2 + kid.len() + 20);
    aad.extend_from_slice(TENANT_KEY_LABEL);
    aad.push(TENANT_KEY_V1);
    aad.push(kid_len_byte(kid));
    aad.extend_from_slice(kid.as_bytes());
    aad.extend_from_slice(tenant.as_uuid().as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

fn wrap_tenant_key(
    keyring: &Keyring,
    rng: &mut (impl RngCore + CryptoRng),
    tenant: TenantId,
    version: u32,
    key: &[u8; TENANT_KEY_LEN],
) -> Result<WrappedTenantKey, aes_gcm::Error> {
    let kek = keyring.active();
    let kid = kek.kid.as_str();
    let nonce = random_nonce(rng);
    let mut wrapped = Vec::with_capacity(
        TENANT_KEY_PREFIX_LEN + kid.len() + 4 + NONCE_LEN + TENANT_KEY_LEN + TAG_LEN,
    );
    wrapped.push(TENANT_KEY_V1);
    wrapped.push(kid_len_byte(kid));
    wrapped.extend_from_slice(kid.as_bytes());
    wrapped.extend_from_slice(&version.to_be_bytes());
    wrapped.extend_from_slice(&nonce);
    aead_seal(
        &kek.key,
        &nonce,
        &tenant_key_aad(kid, tenant, version),
        key,
        &mut wrapped,
    )?;
    Ok(WrappedTenantKey {
        wrapped,
        kid: kek.kid.clone(),
        kv_half: Vec::new(),
    })
}

fn kv_half_aad(tenant: TenantId, version: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(KV_HALF_LABEL.len() + 1 + 20);
    aad.extend_from_slice(KV_HALF_LABEL);
    aad.push(KV_HALF_V1);
    aad.extend_from_slice(tenant.as_uuid().as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

/// Wraps the data-key key under the tenant key (the KV half).
fn wrap_kv_half(
    tenant_key: &[u8; TENANT_KEY_LEN],
    rng: &mut (impl RngCore + CryptoRng),
    tenant: TenantId,
    version: u32,
    data_key_key: &[u8; TENANT_KEY_LEN],
) -> Result<Vec<u8>, aes_gcm::Error> {
    let nonce = random_nonce(rng);
    let mut half = Vec::with_capacity(KV_HALF_LEN);
    half.push(KV_HALF_V1);
    half.extend_from_slice(&version.to_be_bytes());
    half.extend_from_slice(&nonce);
    aead_seal(
        tenant_key,
        &nonce,
        &kv_half_aad(tenant, version),
        data_key_key,
        &mut half,
    )?;
    Ok(half)
}

fn unwrap_kv_half(
    tenant_key: &[u8; TENANT_KEY_LEN],
    tenant: TenantId,
    version: u32,
    half: &[u8],
) -> Result<Zeroizing<[u8; TENANT_KEY_LEN]>, OpenError> {
    let (&[format], rest) = half
        .split_first_chunk::<1>()
        .ok_or(OpenError::Undecryptable)?;
    let (named, rest) = rest
        .split_first_chunk::<4>()
        .ok_or(OpenError::Undecryptable)?;
    if format != KV_HALF_V1 || half.len() != KV_HALF_LEN || u32::from_be_bytes(*named) != version {
        return Err(OpenError::Undecryptable);
    }
    let (nonce, sealed) = rest
        .split_first_chunk::<NONCE_LEN>()
        .ok_or(OpenError::Undecryptable)?;
    let plain = aead_open(tenant_key, nonce, &kv_half_aad(tenant, version), sealed)?;
    if plain.len() != TENANT_KEY_LEN {
        return Err(OpenError::Undecryptable);
    }
    let mut key = Zeroizing::new([0_u8; TENANT_KEY_LEN]);
    key.copy_from_slice(&plain);
    Ok(key)
}

/// The parts of a version-1 wrapped tenant key.
struct TenantKeyParts<'a> {
    kid: &'a str,
    version: u32,
    nonce: &'a [u8; NONCE_LEN],
    sealed_key: &'a [u8],
}

fn parse_tenant_key(wrapped: &[u8]) -> Option<TenantKeyParts<'_>> {
    let (&[format, kid_len], rest) = wrapped.split_first_chunk::<TENANT_KEY_PREFIX_LEN>()?;
    if format != TENANT_KEY_V1 {
        return None;
    }
    let (kid, rest) = rest.split_at_checked(usize::from(kid_len))?;
    if !is_valid_kid(kid) {
        return None;
    }
    let kid = core::str::from_utf8(kid).ok()?;
    let (version, rest) = rest.split_first_chunk::<4>()?;
    let (nonce, sealed_key) = rest.split_first_chunk::<NONCE_LEN>()?;
    if sealed_key.len() != TENANT_KEY_LEN + TAG_LEN {
        return None;
    }
    Some(TenantKeyParts {
        kid,
        version: u32::from_be_bytes(*version),
        nonce,
        sealed_key,
    })
}

/// The KEK id and the version a wrapped tenant key names, if it is well
/// formed: for logs and the rotation sweep. Nothing is decrypted.
pub fn tenant_key_header(wrapped: &[u8]) -> Option<(&str, u32)> {
    parse_tenant_key(wrapped).map(|parts| (parts.kid, parts.version))
}

/// A fresh tenant key and data-key key (32 bytes each from `rng`, a CSPRNG)
/// for `tenant` at `version`: the tenant key wrapped under the keyring's
/// active KEK (for D1), the data-key key wrapped under the tenant key (the
/// KV half), and the unwrapped data-key key.
///
/// # Errors
///
/// None in practice: AES-GCM only fails on inputs far beyond 32 bytes. The
/// `Result` keeps the one impossible path from panicking.
pub fn new_tenant_key(
    keyring: &Keyring,
    rng: &mut (impl RngCore + CryptoRng),
    tenant: TenantId,
    version: u32,
) -> Result<(TenantKey, WrappedTenantKey), OpenError> {
    let mut tenant_key = Zeroizing::new([0_u8; TENANT_KEY_LEN]);
    rng.fill_bytes(tenant_key.as_mut_slice());
    let mut key = Zeroizing::new([0_u8; TENANT_KEY_LEN]);
    rng.fill_bytes(key.as_mut_slice());
    let mut wrapped = wrap_tenant_key(keyring, rng, tenant, version, &tenant_key)
        .map_err(|_| OpenError::Undecryptable)?;
    wrapped.kv_half = wrap_kv_half(&tenant_key, rng, tenant, version, &key)
        .map_err(|_| OpenError::Undecryptable)?;
    Ok((
        TenantKey {
            tenant,
            version,
            key,
        },
        wrapped,
    ))
}

/// Unwraps `tenant`'s key of `version` (from D1) with whichever KEK its
/// header names, then with it the data-key key (`kv_half`, from KV).
///
/// # Errors
///
/// [`OpenError::Undecryptable`] for every failure: unknown key id, another
/// tenant or version, a missing or foreign half, malformed, truncated or
/// tampered input.
pub fn open_tenant_key(
    keyring: &Keyring,
    tenant: TenantId,
    version: u32,
    wrapped: &[u8],
    kv_half: &[u8],
) -> Result<TenantKey, OpenError> {
    let tenant_key = unwrap_tenant_key(keyring, tenant, version, wrapped)?;
    Ok(TenantKey {
        tenant,
        version,
        key: unwrap_kv_half(&tenant_key, tenant, version, kv_half)?,
    })
}

/// The tenant key alone, from its D1 wrap.
fn unwrap_tenant_key(
    keyring: &Keyring,
    tenant: TenantId,
    version: u32,
    wrapped: &[u8],
) -> Result<Zeroizing<[u8; TENANT_KEY_LEN]>, OpenError> {
    let parts = parse_tenant_key(wrapped).ok_or(OpenError::Undecryptable)?;
    if parts.version != version {
        return Err(OpenError::Undecryptable);
    }
    let kek = keyring.get(parts.kid).ok_or(OpenError::Undecryptable)?;
    let plain = aead_open(
        &kek.key,
        parts.nonce,
        &tenant_key_aad(parts.kid, tenant, version),
        parts.sealed_key,
    )?;
    let mut key = Zeroizing::new([0_u8; TENANT_KEY_LEN]);
    if plain.len() != TENANT_KEY_LEN {
        return Err(OpenError::Undecryptable);
    }
    key.copy_from_slice(&plain);
    Ok(key)
}

/// Re-wraps a tenant key under the active KEK, for master-key rotation: the
/// KV half and the data keys are untouched (the result's `kv_half` is
/// empty). The key is unwrapped (authenticated) first, even when already
/// under the active KEK. `Ok(None)`: already under the active KEK, nothing
/// to store.
///
/// # Errors
///
/// [`OpenError::Undecryptable`] when the wrapped key does not open with
/// this keyring, tenant and version.
pub fn rewrap_tenant_key(
    keyring: &Keyring,
    rng: &mut (impl RngCore + CryptoRng),
    tenant: TenantId,
    version: u32,
    wrapped: &[u8],
) -> Result<Option<WrappedTenantKey>, OpenError> {
    let key = unwrap_tenant_key(keyring, tenant, version, wrapped)?;
    if tenant_key_header(wrapped).map(|(kid, _)| kid) == Some(keyring.active_kid()) {
        return Ok(None);
    }
    wrap_tenant_key(keyring, rng, tenant, version, &key)
        .map(Some)
        .map_err(|_| OpenError::Undecryptable)
}

fn wrapped_v2_aad(tenant_key_version: u32, binding: &Binding) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAPPED_LABEL.len() + 5 + 40);
    aad.extend_from_slice(WRAPPED_LABEL);
    aad.push(WRAPPED_V2);
    aad.extend_from_slice(&tenant_key_version.to_be_bytes());
    binding.encode_into(&mut aad);
    aad
}

/// Wraps `dek` under `tenant_key` (format `0x02`).
fn wrap_under(
    tenant_key: &TenantKey,
    rng: &mut (impl RngCore + CryptoRng),
    binding: &Binding,
    dek: &[u8; DEK_LEN],
) -> Result<Vec<u8>, OpenError> {
    if tenant_key.tenant != binding.tenant {
        return Err(OpenError::Undecryptable);
    }
    // SP 800-38D §8.3: 2^32 random nonces per key; a tenant key spends one
    // per secret version of its tenant and per rewrap, so rotate it (or
    // the tenant) well before four billion of those.
    let nonce = random_nonce(rng);
    let mut wrapped = Vec::with_capacity(WRAPPED_V2_LEN);
    wrapped.push(WRAPPED_V2);
    wrapped.extend_from_slice(&tenant_key.version.to_be_bytes());
    wrapped.extend_from_slice(&nonce);
    aead_seal(
        &tenant_key.key,
        &nonce,
        &wrapped_v2_aad(tenant_key.version, binding),
        dek,
        &mut wrapped,
    )
    .map_err(|_| OpenError::Undecryptable)?;
    Ok(wrapped)
}

/// The tenant-key version a format-`0x02` wrapped DEK names, if it is one
/// (well formed). `None` for a format-`0x01` (legacy, under a KEK) or
/// malformed key. Nothing is decrypted.
pub fn data_key_tenant_version(wrapped_dek: &[u8]) -> Option<u32> {
    let (&[format], rest) = wrapped_dek.split_first_chunk::<1>()?;
    if format != WRAPPED_V2 || wrapped_dek.len() != WRAPPED_V2_LEN {
        return None;
    }
    let (version, _) = rest.split_first_chunk::<4>()?;
    Some(u32::from_be_bytes(*version))
}

fn unwrap_under(
    tenant_key: &TenantKey,
    binding: &Binding,
    wrapped_dek: &[u8],
) -> Result<Zeroizing<[u8; DEK_LEN]>, OpenError> {
    if tenant_key.tenant != binding.tenant
        || data_key_tenant_version(wrapped_dek) != Some(tenant_key.version)
    {
        return Err(OpenError::Undecryptable);
    }
    let (nonce, sealed_dek) = wrapped_dek
        .get(5..)
        .and_then(|rest| rest.split_first_chunk::<NONCE_LEN>())
        .ok_or(OpenError::Undecryptable)?;
    let plain = aead_open(
        &tenant_key.key,
        nonce,
        &wrapped_v2_aad(tenant_key.version, binding),
        sealed_dek,
    )?;
    if plain.len() != DEK_LEN {
        return Err(OpenError::Undecryptable);
    }
    let mut dek = Zeroizing::new([0_u8; DEK_LEN]);
    dek.copy_from_slice(&plain);
    Ok(dek)
}

/// Seals `plaintext` for `binding` under a fresh DEK, the DEK wrapped
/// under `tenant_key` (format `0x02`); [`Sealed::kid`] is empty and
/// [`Sealed::tenant_key_version`] names the tenant key.
///
/// # Errors
///
/// [`SealError::TooLarge`] when `plaintext` exceeds
/// [`limits::MAX_SECRET_BYTES`](crate::limits::MAX_SECRET_BYTES), or when
/// `tenant_key` belongs to another tenant than `binding` (a caller bug,
/// refused rather than sealed under the wrong tenant).
pub fn seal_with_tenant_key(
    tenant_key: &TenantKey,
    rng: &mut (impl RngCore + CryptoRng),
    binding: &Binding,
    plaintext: &[u8],
) -> Result<Sealed, SealError> {
    let (dek, blob) = seal_blob(rng, binding, plaintext)?;
    let wrapped_dek =
        wrap_under(tenant_key, rng, binding, &dek).map_err(|_| SealError::TooLarge {
            len: plaintext.len(),
            max: crate::limits::MAX_SECRET_BYTES,
        })?;
    Ok(Sealed {
        blob,
        wrapped_dek,
        kid: String::new(),
        tenant_key_version: Some(tenant_key.version),
    })
}

/// Opens a secret whose DEK is wrapped under `tenant_key` (format `0x02`).
///
/// # Errors
///
/// [`OpenError::Undecryptable`] for every failure, including a data key of
/// another tenant or tenant-key version.
pub fn open_with_tenant_key(
    tenant_key: &TenantKey,
    binding: &Binding,
    wrapped_dek: &[u8],
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let dek = unwrap_under(tenant_key, binding, wrapped_dek)?;
    open_blob(&dek, binding, blob)
}

/// Moves a legacy data key (format `0x01`, under a KEK) under `tenant_key`
/// (format `0x02`); the blob is untouched. For the migration sweep.
///
/// # Errors
///
/// [`OpenError::Undecryptable`] when the legacy key does not open with this
/// keyring and binding, or `tenant_key` is another tenant's.
pub fn migrate_data_key(
    keyring: &Keyring,
    tenant_key: &TenantKey,
    rng: &mut (impl RngCore + CryptoRng),
    binding: &Binding,
    legacy_wrapped_dek: &[u8],
) -> Result<Vec<u8>, OpenError> {
    let (dek, _) = unwrap_dek(keyring, binding, legacy_wrapped_dek)?;
    wrap_under(tenant_key, rng, binding, &dek)
}

/// Moves a data key from one tenant key (version) to another, for a
/// tenant-key rotation; the blob is untouched.
///
/// # Errors
///
/// [`OpenError::Undecryptable`] when the data key does not open under
/// `from`, or the two keys belong to different tenants.
pub fn rewrap_data_key(
    from: &TenantKey,
    to: &TenantKey,
    rng: &mut (impl RngCore + CryptoRng),
    binding: &Binding,
    wrapped_dek: &[u8],
) -> Result<Vec<u8>, OpenError> {
    let dek = unwrap_under(from, binding, wrapped_dek)?;
    wrap_under(to, rng, binding, &dek)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use alloc::{format, vec::Vec};

    use base64::{engine::general_purpose::STANDARD, Engine as _};
    use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

    use super::*;
    use crate::{id::CredentialId, open, seal};

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(0x07e4_a4e7)
    }

    fn keyring(entries: &[(&str, u8)]) -> Keyring {
        let value: Vec<String> = entries
            .iter()
            .map(|(kid, byte)| format!("{kid}:{}", STANDARD.encode([*byte; 32])))
            .collect();
        Keyring::parse(&value.join(",")).expect("valid keyring")
    }

    fn tenant(n: u8) -> TenantId {
        TenantId::parse(&format!("00000000-0000-4000-8000-0000000000{n:02x}")).expect("uuid")
    }

    fn binding(t: u8, credential: u8, version: u64) -> Binding {
        Binding {
            tenant: tenant(t),
            credential: CredentialId::parse(&format!(
                "00000000-0000-4000-8000-0000000000{credential:02x}"
            ))
            .expect("uuid"),
            version,
        }
    }

    const SECRET: &[u8] = br#"{"apiKey":"k-123"}"#;

    #[test]
    fn the_documented_layouts_hold() {
        let keys = keyring(&[("k1", 1)]);
        let mut rng = rng();
        let (key, wrapped) = new_tenant_key(&keys, &mut rng, tenant(1), 7).expect("new");
        assert_eq!(wrapped.kid, "k1");
        assert_eq!(wrapped.wrapped.len(), 66 + 2);
        assert_eq!(wrapped.wrapped[..4], [0x01, 2, b'k', b'1']);
        assert_eq!(wrapped.wrapped[4..8], 7_u32.to_be_bytes());
        assert_eq!(tenant_key_header(&wrapped.wrapped), Some(("k1", 7)));
        let sealed = seal_with_tenant_key(&key, &mut rng, &binding(1, 2, 3), SECRET).expect("seal");
        assert_eq!(sealed.kid, "");
        assert_eq!(sealed.tenant_key_version, Some(7));
        assert_eq!(sealed.wrapped_dek.len(), 65);
        assert_eq!(sealed.wrapped_dek[..5], [0x02, 0, 0, 0, 7]);
        assert_eq!(data_key_tenant_version(&sealed.wrapped_dek), Some(7));
        assert_eq!(sealed.blob.len(), 1 + 12 + SECRET.len() + 16);
        assert_eq!(sealed.blob[0], 0x01);
    }

    #[test]
    fn the_hierarchy_opens_top_down() {
        let keys = keyring(&[("k1", 1)]);
        let mut rng = rng();
        let (_, wrapped) = new_tenant_key(&keys, &mut rng, tenant(1), 1).expect("new");
        let key = open_tenant_key(&keys, tenant(1), 1, &wrapped.wrapped, &wrapped.kv_half)
            .expect("unwraps");
        let sealed = seal_with_tenant_key(&key, &mut rng, &binding(1, 2, 3), SECRET).expect("seal");
        // A fresh unwrap of the stored key opens what the first one sealed.
        let again = open_tenant_key(&keys, tenant(1), 1, &wrapped.wrapped, &wrapped.kv_half)
            .expect("unwraps");
        let opened =
            open_with_tenant_key(&again, &binding(1, 2, 3), &sealed.wrapped_dek, &sealed.blob)
                .expect("opens");
        assert_eq!(opened.as_slice(), SECRET);
        // The legacy reader refuses the new format, and the other way round.
        assert_eq!(
            open(&keys, &binding(1, 2, 3), &sealed.wrapped_dek, &sealed.blob),
            Err(OpenError::Undecryptable)
        );
        let legacy = seal(&keys, &mut rng, &binding(1, 2, 3), SECRET).expect("seal");
        assert_eq!(
            open_with_tenant_key(&key, &binding(1, 2, 3), &legacy.wrapped_dek, &legacy.blob),
            Err(OpenError::Undecryptable)
        );
    }

    #[test]
    fn a_tenant_key_is_bound_to_its_tenant_version_and_master_key() {
        let keys = keyring(&[("k1", 1), ("k0", 2)]);
        let mut rng = rng();
        let (_, wrapped) = new_tenant_key(&keys, &mut rng, tenant(1), 3).expect("new");
        assert!(open_tenant_key(&keys, tenant(1), 3, &wrapped.wrapped, &wrapped.kv_half).is_ok());
        for (t, v) in [(2, 3), (1, 4), (1, 2)] {
            assert_eq!(
                open_tenant_key(&keys, tenant(t), v, &wrapped.wrapped, &wrapped.kv_half).err(),
                Some(OpenError::Undecryptable)
            );
        }
        // The version in the header edited to match another version.
        let mut edited = wrapped.wrapped.clone();
        edited[4..8].copy_from_slice(&4_u32.to_be_bytes());
        assert!(open_tenant_key(&keys, tenant(1), 4, &edited, &wrapped.kv_half).is_err());
        // The kid edited to name the other master key.
        let mut renamed = wrapped.wrapped.clone();
        renamed[3] = b'0';
        assert!(open_tenant_key(&keys, tenant(1), 3, &renamed, &wrapped.kv_half).is_err());
        // Without its master key.
        let without = keyring(&[("k0", 2)]);
        assert!(
            open_tenant_key(&without, tenant(1), 3, &wrapped.wrapped, &wrapped.kv_half).is_err()
        );
        // Every truncation and every single-bit flip is refused.
        for len in 0..wrapped.wrapped.len() {
            assert!(open_tenant_key(
                &keys,
                tenant(1),
                3,
                &wrapped.wrapped[..len],
                &wrapped.kv_half
            )
            .is_err());
        }
        for bit in 0..wrapped.wrapped.len() * 8 {
            let mut flipped = wrapped.wrapped.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                open_tenant_key(&keys, tenant(1), 3, &flipped, &wrapped.kv_half).is_err(),
                "bit {bit}"
            );
        }
    }

    /// Either half alone opens nothing: the D1 wrap with another tenant's
    /// (or version's, or a tampered) KV half, or no KV half, is refused.
    #[test]
    fn both_halves_are_needed() {
        let keys = keyring(&[("k1", 1)]);
        let mut rng = rng();
        let (_, one) = new_tenant_key(&keys, &mut rng, tenant(1), 1).expect("new");
        let (_, other) = new_tenant_key(&keys, &mut rng, tenant(2), 1).expect("new");
        let (_, again) = new_tenant_key(&keys, &mut rng, tenant(1), 1).expect("new");
        assert_eq!(one.kv_half.len(), 65);
        assert_eq!(one.kv_half[..5], [0x01, 0, 0, 0, 1]);
        assert!(open_tenant_key(&keys, tenant(1), 1, &one.wrapped, &one.kv_half).is_ok());
        for half in [&other.kv_half, &again.kv_half, &Vec::new()] {
            assert!(open_tenant_key(&keys, tenant(1), 1, &one.wrapped, half).is_err());
        }
        for bit in 0..one.kv_half.len() * 8 {
            let mut flipped = one.kv_half.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(open_tenant_key(&keys, tenant(1), 1, &one.wrapped, &flipped).is_err());
        }
        // A master rotation leaves the KV half as it is.
        let rotated = keyring(&[("k2", 2), ("k1", 1)]);
        let moved = rewrap_tenant_key(&rotated, &mut rng, tenant(1), 1, &one.wrapped)
            .expect("rewraps")
            .expect("moved");
        assert!(moved.kv_half.is_empty());
        assert!(open_tenant_key(&rotated, tenant(1), 1, &moved.wrapped, &one.kv_half).is_ok());
    }

    /// The AADs bind each wrap to its tenant and version even where the key
    /// bytes are the same (an RNG replaying its output): a KV half or a
    /// data key moved to another tenant or version under equal keys does
    /// not open.
    #[test]
    fn equal_key_bytes_still_do_not_open_across_tenants_or_versions() {
        let keys = keyring(&[("k1", 1)]);
        let (one, a) = new_tenant_key(&keys, &mut rng(), tenant(1), 1).expect("new");
        let (_, b) = new_tenant_key(&keys, &mut rng(), tenant(2), 1).expect("new");
        let (_, c) = new_tenant_key(&keys, &mut rng(), tenant(1), 2).expect("new");
        // Same RNG stream: the same tenant key and data-key key bytes.
        assert_eq!(a.kv_half[5..17], b.kv_half[5..17]);
        assert!(open_tenant_key(&keys, tenant(2), 1, &b.wrapped, &a.kv_half).is_err());
        let mut relabelled = a.kv_half.clone();
        relabelled[1..5].copy_from_slice(&2_u32.to_be_bytes());
        assert!(open_tenant_key(&keys, tenant(1), 2, &c.wrapped, &relabelled).is_err());
        let b1 = binding(1, 2, 3);
        let sealed = seal_with_tenant_key(&one, &mut rng(), &b1, SECRET).expect("seal");
        let two = open_tenant_key(&keys, tenant(1), 2, &c.wrapped, &c.kv_half).expect("opens");
        let mut moved = sealed.wrapped_dek.clone();
        moved[1..5].copy_from_slice(&2_u32.to_be_bytes());
        assert!(open_with_tenant_key(&two, &b1, &moved, &sealed.blob).is_err());
    }

    #[test]
    fn a_data_key_is_bound_to_its_tenant_key() {
        let keys = keyring(&[("k1", 1)]);
        let mut rng = rng();
        let (one, _) = new_tenant_key(&keys, &mut rng, tenant(1), 1).expect("new");
        let (two, _) = new_tenant_key(&keys, &mut rng, tenant(1), 2).expect("new");
        let (other, _) = new_tenant_key(&keys, &mut rng, tenant(2), 1).expect("new");
        let b = binding(1, 2, 3);
        let sealed = seal_with_tenant_key(&one, &mut rng, &b, SECRET).expect("seal");
        for key in [&two, &other] {
            assert!(open_with_tenant_key(key, &b, &sealed.wrapped_dek, &sealed.blob).is_err());
        }
        // Another record or version of the same tenant.
        for moved in [binding(1, 9, 3), binding(1, 2, 4)] {
            assert!(open_with_tenant_key(&one, &moved, &sealed.wrapped_dek, &sealed.blob).is_err());
        }
        // Sealing with another tenant's key is refused.
        assert!(seal_with_tenant_key(&other, &mut rng, &b, SECRET).is_err());
    }

    #[test]
    fn master_rotation_rewraps_the_tenant_key_only() {
        let old = keyring(&[("k1", 1)]);
        let mut rng = rng();
        let (key, wrapped) = new_tenant_key(&old, &mut rng, tenant(1), 1).expect("new");
        let sealed = seal_with_tenant_key(&key, &mut rng, &binding(1, 2, 3), SECRET).expect("seal");
        assert_eq!(
            rewrap_tenant_key(&old, &mut rng, tenant(1), 1, &wrapped.wrapped),
            Ok(None)
        );
        let rotated = keyring(&[("k2", 2), ("k1", 1)]);
        let new = rewrap_tenant_key(&rotated, &mut rng, tenant(1), 1, &wrapped.wrapped)
            .expect("rewraps")
            .expect("moved");
        assert_eq!(new.kid, "k2");
        let retired = keyring(&[("k2", 2)]);
        let key = open_tenant_key(&retired, tenant(1), 1, &new.wrapped, &wrapped.kv_half)
            .expect("unwraps");
        let opened =
            open_with_tenant_key(&key, &binding(1, 2, 3), &sealed.wrapped_dek, &sealed.blob)
                .expect("the data key did not change");
        assert_eq!(opened.as_slice(), SECRET);
        assert!(rewrap_tenant_key(&retired, &mut rng, tenant(1), 1, &wrapped.wrapped).is_err());
    }

    #[test]
    fn legacy_keys_migrate_and_tenant_keys_rotate() {
        let keys = keyring(&[("k1", 1)]);
        let mut rng = rng();
        let b = binding(1, 2, 3);
        let legacy = seal(&keys, &mut rng, &b, SECRET).expect("legacy");
        let (one, _) = new_tenant_key(&keys, &mut rng, tenant(1), 1).expect("new");
        let migrated =
            migrate_data_key(&keys, &one, &mut rng, &b, &legacy.wrapped_dek).expect("moves");
        let opened = open_with_tenant_key(&one, &b, &migrated, &legacy.blob).expect("opens");
        assert_eq!(opened.as_slice(), SECRET);
        let (two, _) = new_tenant_key(&keys, &mut rng, tenant(1), 2).expect("new");
        let rotated = rewrap_data_key(&one, &two, &mut rng, &b, &migrated).expect("rotates");
        assert_eq!(data_key_tenant_version(&rotated), Some(2));
        let opened = open_with_tenant_key(&two, &b, &rotated, &legacy.blob).expect("opens");
        assert_eq!(opened.as_slice(), SECRET);
        assert!(open_with_tenant_key(&one, &b, &rotated, &legacy.blob).is_err());
        // Another tenant's key is never a target.
        let (other, _) = new_tenant_key(&keys, &mut rng, tenant(2), 1).expect("new");
        assert!(rewrap_data_key(&one, &other, &mut rng, &b, &migrated).is_err());
        assert!(migrate_data_key(&keys, &other, &mut rng, &b, &legacy.wrapped_dek).is_err());
    }

    #[test]
    fn debug_shows_no_key_material() {
        let keys = keyring(&[("k1", 1)]);
        let (key, wrapped) = new_tenant_key(&keys, &mut rng(), tenant(1), 1).expect("new");
        let shown = format!("{key:?} {wrapped:?}");
        assert!(
            shown.contains("version: 1")
                && shown.contains("wrapped_len: 68")
                && shown.contains("kv_half_len: 65"),
            "{shown}"
        );
        for window in key.key.windows(4) {
            assert!(!shown.as_bytes().windows(4).any(|w| w == window));
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Arbitrary bytes as a wrapped tenant key never panic, and open
            /// only if they are exactly the genuine wrap.
            #[test]
            fn arbitrary_wrapped_tenant_keys_never_open(
                bytes in proptest::collection::vec(any::<u8>(), 0..120),
                version in any::<u32>(),
            ) {
                let keys = keyring(&[("k1", 1)]);
                prop_assert!(open_tenant_key(&keys, tenant(1), version, &bytes, &bytes).is_err());
                let _ = tenant_key_header(&bytes);
                prop_assert!(rewrap_tenant_key(&keys, &mut rng(), tenant(1), version, &bytes).is_err());
            }

            /// A genuine wrap with any one byte changed, or cut, or grown,
            /// is refused; the header parser agrees with the layout.
            #[test]
            fn tampered_tenant_keys_are_refused(
                version in any::<u32>(),
                kid in "[A-Za-z0-9._-]{1,64}",
                index in any::<prop::sample::Index>(),
                delta in 1_u8..,
                extra in proptest::collection::vec(any::<u8>(), 1..8),
                seed in any::<u64>(),
            ) {
                let keys = Keyring::parse(&format!("{kid}:{}", STANDARD.encode([9_u8; 32]))).expect("keyring");
                let mut rng = ChaCha20Rng::seed_from_u64(seed);
                let (key, wrapped) = new_tenant_key(&keys, &mut rng, tenant(1), version).expect("new");
                prop_assert_eq!(wrapped.wrapped.len(), 66 + kid.len());
                prop_assert_eq!(tenant_key_header(&wrapped.wrapped), Some((kid.as_str(), version)));
                let opened = open_tenant_key(&keys, tenant(1), version, &wrapped.wrapped, &wrapped.kv_half).expect("genuine");
                prop_assert_eq!(*opened.key, *key.key);
                let mut changed = wrapped.wrapped.clone();
                let at = index.index(changed.len());
                changed[at] = changed[at].wrapping_add(delta);
                prop_assert!(open_tenant_key(&keys, tenant(1), version, &changed, &wrapped.kv_half).is_err());
                let cut = &wrapped.wrapped[..at];
                prop_assert!(open_tenant_key(&keys, tenant(1), version, cut, &wrapped.kv_half).is_err());
                let mut grown = wrapped.wrapped.clone();
                grown.extend_from_slice(&extra);
                prop_assert!(open_tenant_key(&keys, tenant(1), version, &grown, &wrapped.kv_half).is_err());
            }

            /// Any secret round-trips through the three layers, and any
            /// data key moved to another record, version or tenant-key
            /// version fails.
            #[test]
            fn secrets_round_trip_through_the_hierarchy(
                plaintext in proptest::collection::vec(any::<u8>(), 0..512),
                version in any::<u32>(),
                secret_version in any::<u64>(),
                seed in any::<u64>(),
            ) {
                let keys = keyring(&[("k1", 1)]);
                let mut rng = ChaCha20Rng::seed_from_u64(seed);
                let (_, wrapped) = new_tenant_key(&keys, &mut rng, tenant(1), version).expect("new");
                let key = open_tenant_key(&keys, tenant(1), version, &wrapped.wrapped, &wrapped.kv_half).expect("opens");
                let b = binding(1, 2, secret_version);
                let sealed = seal_with_tenant_key(&key, &mut rng, &b, &plaintext).expect("seals");
                let opened = open_with_tenant_key(&key, &b, &sealed.wrapped_dek, &sealed.blob).expect("opens");
                prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
                let moved = binding(1, 2, secret_version.wrapping_add(1));
                prop_assert!(open_with_tenant_key(&key, &moved, &sealed.wrapped_dek, &sealed.blob).is_err());
            }
        }
    }
}
