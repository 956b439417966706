//! `TokenClaims::from_json` and `validate` on arbitrary bytes and times:
//! no panic, and a principal only when the rules hold.
//!
//! Input: a flags byte, then (flag 0x80) eight big-endian bytes of `now`
//! in milliseconds, else 2024-03-27T00:00:00Z; the rest is the JSON.
//! Flags 0x01 and 0x02 require the issuer `https://issuer.example` and the
//! audience `coffer`; flag 0x04 binds the issuer to the one tenant
//! [`SCOPED_TENANT`] (else it speaks for any).
#![no_main]

use coffer_core::{ClaimRules, Role, TenantId, TenantScope, TokenClaims, LEEWAY_SECONDS};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const NOW_MS: i64 = 1_711_497_600_000;
const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "coffer";
const SCOPED_TENANT: &str = "550e8400-e29b-41d4-a716-446655440001";

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (now_ms, json) = match rest.split_first_chunk::<8>() {
        Some((now, json)) if flags & 0x80 != 0 => (i64::from_be_bytes(*now), json),
        _ => (NOW_MS, rest),
    };
    let scope = if flags & 0x04 != 0 {
        TenantScope::Only(vec![TenantId::parse(SCOPED_TENANT).expect("uuid")])
    } else {
        TenantScope::Any
    };
    let rules = ClaimRules {
        issuer: (flags & 0x01 != 0).then_some(ISSUER),
        audience: (flags & 0x02 != 0).then_some(AUDIENCE),
        tenants: &scope,
    };

    let Ok(claims) = TokenClaims::from_json(json) else {
        return;
    };
    let (exp, nbf, iat) = (claims.exp, claims.nbf, claims.iat);
    let result = claims.validate(&rules, now_ms);
    let Ok(principal) = result else {
        let _ = result.map_err(|error| error.to_string());
        return;
    };

    // Time: RFC 7519 §4.1.4–4.1.6, with the leeway.
    let ms = |seconds: i64| seconds.saturating_mul(1000);
    let exp = exp.expect("a principal has an exp");
    assert!(now_ms < ms(exp.saturating_add(LEEWAY_SECONDS)));
    for not_before in [nbf, iat].into_iter().flatten() {
        assert!(now_ms >= ms(not_before.saturating_sub(LEEWAY_SECONDS)));
    }

    // The claims it came from, as plain JSON (from_json accepted them, so
    // they are an object). Duplicate keys make serde's derive fail, so the
    // map holds the values the principal was built from.
    let value: Value = serde_json::from_slice(json).expect("accepted claims are JSON");
    let claim = |name: &str| value.get(name).and_then(Value::as_str);
    assert!(!principal.sub().is_empty());
    assert_eq!(Some(principal.sub()), claim("sub"));
    if rules.issuer.is_some() {
        assert_eq!(claim("iss"), Some(ISSUER));
    }
    let home = principal.home_tenant();
    assert_eq!(
        TenantId::parse(claim("tenant_id").expect("a principal has a tenant_id")),
        Ok(home)
    );
    assert!(principal.belongs_to(home));
    // Every tenant named is one the issuer may speak for.
    assert!(scope.permits(home));
    for tenant in value
        .get("tenants")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let tenant = TenantId::parse(tenant.as_str().expect("tenants are strings"));
        assert!(scope.permits(tenant.expect("tenants are UUIDs")));
    }
    assert_eq!(principal.acting_tenant(None), Ok(home));
    assert_eq!(principal.acting_tenant(Some(home)), Ok(home));

    // Roles: only the contract's names count, from either place.
    let named = |value: Option<&Value>| -> Vec<Role> {
        value
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(Role::parse)
            .collect()
    };
    let mut roles = named(value.get("roles"));
    roles.extend(named(value.pointer("/realm_access/roles")));
    assert_eq!(principal.highest_role(), roles.into_iter().max());
});
