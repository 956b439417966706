//! Every id, slug and enum parser on the same arbitrary text: none may
//! panic, and whatever parses must render back to text that parses to the
//! same value.
#![no_main]

use coffer_core::{
    parse_page_limit, ApiVersion, AuthType, CredentialId, IntegrationId, Role, Status, TenantId,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    if let Ok(tenant) = TenantId::parse(input) {
        let text = tenant.to_string();
        // Only the 36-character hyphenated spelling is accepted.
        assert!(text.eq_ignore_ascii_case(input), "{input:?} -> {text}");
        assert_eq!(TenantId::parse(&text), Ok(tenant));
    }

    if let Ok(credential) = CredentialId::parse(input) {
        assert_eq!(CredentialId::parse(&credential.to_string()), Ok(credential));
        assert_eq!(CredentialId::parse(&credential.prefixed()), Ok(credential));
    }

    if let Ok(integration) = IntegrationId::parse(input) {
        let slug = integration.as_str();
        assert_eq!(slug, input.to_ascii_lowercase());
        assert!(!slug.is_empty() && slug.len() <= IntegrationId::MAX_LEN);
        assert_eq!(IntegrationId::parse(slug).as_ref(), Ok(&integration));
    }

    if let Some(role) = Role::parse(input) {
        assert_eq!(role.as_str(), input);
    }
    if let Ok(kind) = AuthType::parse(input) {
        assert_eq!(kind.as_str(), input);
    }
    if let Ok(status) = Status::parse(input) {
        assert_eq!(status.as_str(), input);
    }
    if let Ok(status) = Status::parse_settable(input) {
        assert_ne!(status, Status::Expired);
        assert_eq!(Status::parse(input), Ok(status));
    }
    if let Ok(version) = ApiVersion::parse(Some(input)) {
        assert_eq!(version.as_str(), input);
    }

    if let Ok(limit) = parse_page_limit(Some(input)) {
        assert!((1..=100).contains(&limit), "{input:?} -> {limit}");
        assert_eq!(input.parse::<u32>(), Ok(limit));
        assert!(input.bytes().all(|b| b.is_ascii_digit()), "{input:?}");
    }

    // Error messages are rendered for clients; rendering must not panic.
    for error in [
        TenantId::parse(input).err(),
        CredentialId::parse(input).err(),
        IntegrationId::parse(input).err(),
    ]
    .into_iter()
    .flatten()
    {
        let _ = error.to_string();
    }
});
