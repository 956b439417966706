//! Fixtures shared by the fuzz targets and by the corpus generator
//! (`cargo run --example seed_corpus`).
//!
//! The keys are fuzz-only constants: nothing outside this crate seals under
//! them, so the only secret that can ever open with them is
//! [`REFERENCE_PLAINTEXT`], sealed by [`reference`] into the `open` corpus.
use base64::{engine::general_purpose::STANDARD, Engine as _};
use coffer_core::{seal, Binding, CredentialId, Keyring, Sealed, TenantId};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

/// The active key id of [`keyring`].
pub const ACTIVE_KID: &str = "k1";
/// The retired key id of [`keyring`], the only key of [`retired_keyring`].
pub const RETIRED_KID: &str = "old";

/// The secret sealed into the `open` corpus.
pub const REFERENCE_PLAINTEXT: &[u8] = br#"{"accessToken":"at-123","refreshToken":"rt-456"}"#;

/// A 32-byte key of one repeated byte, as `COFFER_KEYS` spells it.
pub fn key_text(byte: u8) -> String {
    STANDARD.encode([byte; 32])
}

/// `COFFER_KEYS` after a rotation: `k1` active, `old` still decrypting.
pub fn keys_value() -> String {
    format!(
        "{ACTIVE_KID}:{},{RETIRED_KID}:{}",
        key_text(0x11),
        key_text(0x22)
    )
}

/// The keyring of [`keys_value`].
pub fn keyring() -> Keyring {
    Keyring::parse(&keys_value()).expect("the fixture keyring parses")
}

/// The keyring before the rotation: `old` alone.
pub fn retired_keyring() -> Keyring {
    Keyring::parse(&format!("{RETIRED_KID}:{}", key_text(0x22)))
        .expect("the fixture keyring parses")
}

/// A tenant id from 16 arbitrary bytes (the core builds tenants only by
/// parsing, so go through the text form).
pub fn tenant(bytes: [u8; 16]) -> TenantId {
    let text = uuid::Uuid::from_bytes(bytes).hyphenated().to_string();
    TenantId::parse(&text).expect("a hyphenated uuid parses")
}

/// A binding from arbitrary parts.
pub fn binding(tenant_bytes: [u8; 16], credential_bytes: [u8; 16], version: u64) -> Binding {
    Binding {
        tenant: tenant(tenant_bytes),
        credential: CredentialId::from_uuid(uuid::Uuid::from_bytes(credential_bytes)),
        version,
    }
}

/// The binding every `open` input is tried against.
pub fn fixed_binding() -> Binding {
    binding([0x01; 16], [0x02; 16], 3)
}

/// A deterministic RNG: the core takes randomness as a parameter, so the
/// targets are reproducible from their input alone.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// [`REFERENCE_PLAINTEXT`] sealed for [`fixed_binding`], under the active
/// key (`retired == false`) or under the retired one (so that `rewrap`
/// has work to do).
pub fn reference(retired: bool) -> Sealed {
    let keys = if retired {
        retired_keyring()
    } else {
        keyring()
    };
    seal(
        &keys,
        &mut rng(u64::from(retired)),
        &fixed_binding(),
        REFERENCE_PLAINTEXT,
    )
    .expect("the reference secret is small")
}

/// The `open` target's input framing: one byte with the wrapped key's
/// length, the wrapped key, then the blob.
pub fn frame_open_input(wrapped_dek: &[u8], blob: &[u8]) -> Vec<u8> {
    let len = u8::try_from(wrapped_dek.len()).expect("wrapped keys are under 256 bytes");
    let mut input = vec![len];
    input.extend_from_slice(wrapped_dek);
    input.extend_from_slice(blob);
    input
}

/// Inverse of [`frame_open_input`]; every byte string splits somehow.
pub fn split_open_input(data: &[u8]) -> (&[u8], &[u8]) {
    match data.split_first() {
        None => (&[], &[]),
        Some((&len, rest)) => rest.split_at(usize::from(len).min(rest.len())),
    }
}

/// The tenant of [`fixed_binding`], owner of the reference tenant keys.
pub fn fixed_tenant() -> TenantId {
    fixed_binding().tenant
}

/// The tenant-key version the reference tenant keys carry.
pub const REFERENCE_TENANT_KEY_VERSION: u32 = 3;

/// A tenant key of [`fixed_tenant`] at [`REFERENCE_TENANT_KEY_VERSION`],
/// wrapped under the active key (`retired == false`) or the retired one,
/// with [`REFERENCE_PLAINTEXT`] sealed under it for [`fixed_binding`].
pub fn reference_tenant_key(retired: bool) -> (coffer_core::WrappedTenantKey, Sealed) {
    let keys = if retired {
        retired_keyring()
    } else {
        keyring()
    };
    let mut rng = rng(10 + u64::from(retired));
    let (key, wrapped) = coffer_core::new_tenant_key(
        &keys,
        &mut rng,
        fixed_tenant(),
        REFERENCE_TENANT_KEY_VERSION,
    )
    .expect("a tenant key wraps");
    let sealed =
        coffer_core::seal_with_tenant_key(&key, &mut rng, &fixed_binding(), REFERENCE_PLAINTEXT)
            .expect("the reference secret is small");
    (wrapped, sealed)
}
