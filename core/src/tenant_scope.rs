//! Which tenants an issuer may speak for.
//!
//! Every issuer of tokens is bound to tenants: each realm of `AUTH_REALMS`
//! names its list (or, explicitly, all tenants), and the deployment's own
//! HS256 key speaks for any. A token may name, in `tenant_id` and in
//! `tenants`, only tenants its issuer may speak for. Without this binding,
//! the administrator of one identity provider could mint tokens for the
//! tenants of every other identity provider of the deployment.
use alloc::vec::Vec;

use crate::id::TenantId;

/// The tenants an issuer may speak for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantScope {
    /// Every tenant: the deployment's own HS256 key, or a realm configured
    /// with `"tenants": "*"`.
    Any,
    /// These tenants only. An empty list speaks for no tenant.
    Only(Vec<TenantId>),
}

impl TenantScope {
    /// Whether a token of this issuer may name `tenant`.
    pub fn permits(&self, tenant: TenantId) -> bool {
        match self {
            Self::Any => true,
            Self::Only(tenants) => tenants.contains(&tenant),
        }
    }

    /// Whether a token of this issuer may name every one of `tenants` (its
    /// `tenant_id` and the entries of its `tenants`).
    pub fn permits_all<'a>(&self, tenants: impl IntoIterator<Item = &'a TenantId>) -> bool {
        tenants.into_iter().all(|tenant| self.permits(*tenant))
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use alloc::{format, vec, vec::Vec};

    use super::{TenantId, TenantScope};

    fn tenant(n: u8) -> TenantId {
        TenantId::parse(&format!("00000000-0000-4000-8000-0000000000{n:02x}")).expect("valid uuid")
    }

    fn check(scope: &TenantScope, named: &[u8], expected: bool) {
        let named: Vec<TenantId> = named.iter().copied().map(tenant).collect();
        assert_eq!(
            scope.permits_all(&named),
            expected,
            "{scope:?} naming {named:?}"
        );
    }

    #[test]
    fn a_scoped_issuer_names_only_its_tenants() {
        let scoped = TenantScope::Only(vec![tenant(1), tenant(2)]);
        check(&scoped, &[1], true);
        check(&scoped, &[2, 1], true);
        check(&scoped, &[3], false);
        check(&scoped, &[1, 3], false);
        check(&scoped, &[3, 1], false);
        check(&scoped, &[], true);

        let nobody = TenantScope::Only(Vec::new());
        check(&nobody, &[1], false);

        check(&TenantScope::Any, &[1, 2, 3], true);
    }
}
