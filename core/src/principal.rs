//! The verified caller.
use alloc::{string::String, vec::Vec};

use crate::id::{Role, TenantId};

/// A caller whose token has been verified and whose claims passed the
/// claim rules (`claims.rs`). Only claim validation builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub(crate) sub: String,
    pub(crate) name: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) tenant_name: Option<String>,
    pub(crate) home_tenant: TenantId,
    pub(crate) tenants: Vec<TenantId>,
    pub(crate) roles: Vec<Role>,
}

/// `x-tenantid` named a tenant the token does not belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotATenantOfToken;

impl core::fmt::Display for NotATenantOfToken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("x-tenantid is not one of the token's tenants")
    }
}

impl Principal {
    /// Builds a principal without a verified token, for benchmarks and
    /// other crates' tests. Only with the `test-util` feature, which the
    /// worker's normal dependency never enables.
    #[cfg(feature = "test-util")]
    pub fn for_test(
        sub: &str,
        home_tenant: TenantId,
        tenants: Vec<TenantId>,
        roles: Vec<Role>,
    ) -> Self {
        Self {
            sub: sub.into(),
            name: None,
            email: None,
            tenant_name: None,
            home_tenant,
            tenants,
            roles,
        }
    }

    /// The subject (`sub`).
    pub fn sub(&self) -> &str {
        &self.sub
    }

    /// Display name (`name`), for audit fields.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// E-mail (`email`), for audit fields.
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }

    /// The tenant's display name (`tenant_name`), when the token has one.
    pub fn tenant_name(&self) -> Option<&str> {
        self.tenant_name.as_deref()
    }

    /// The tenant the token acts for (`tenant_id`).
    pub fn home_tenant(&self) -> TenantId {
        self.home_tenant
    }

    /// Whether the principal belongs to `tenant` (`tenant_id` or `tenants`).
    pub fn belongs_to(&self, tenant: TenantId) -> bool {
        self.home_tenant == tenant || self.tenants.contains(&tenant)
    }

    /// The highest of the principal's contract roles, if any.
    pub fn highest_role(&self) -> Option<Role> {
        self.roles.iter().copied().max()
    }

    /// The tenant of a request: `requested` (from `x-tenantid`) when present
    /// and one of the token's tenants, otherwise the home tenant.
    ///
    /// # Errors
    ///
    /// [`NotATenantOfToken`] when `requested` is not one of the token's tenants.
    pub fn acting_tenant(
        &self,
        requested: Option<TenantId>,
    ) -> Result<TenantId, NotATenantOfToken> {
        match requested {
            None => Ok(self.home_tenant),
            Some(tenant) if self.belongs_to(tenant) => Ok(tenant),
            Some(_) => Err(NotATenantOfToken),
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use alloc::{string::ToString, vec};

    use super::*;

    fn tenant(n: u8) -> TenantId {
        TenantId::parse(&alloc::format!("00000000-0000-4000-8000-0000000000{n:02x}"))
            .expect("valid uuid")
    }

    fn check(requested: Option<TenantId>, expected: Result<TenantId, NotATenantOfToken>) {
        let principal = Principal {
            sub: "user-1".into(),
            name: None,
            email: None,
            tenant_name: None,
            home_tenant: tenant(1),
            tenants: vec![tenant(2)],
            roles: vec![Role::User, Role::Viewer],
        };
        assert_eq!(
            principal.acting_tenant(requested),
            expected,
            "{requested:?}"
        );
        assert_eq!(principal.highest_role(), Some(Role::User));
    }

    #[test]
    fn the_acting_tenant_is_the_header_when_it_is_one_of_the_tokens() {
        check(None, Ok(tenant(1)));
        check(Some(tenant(1)), Ok(tenant(1)));
        check(Some(tenant(2)), Ok(tenant(2)));
        check(Some(tenant(3)), Err(NotATenantOfToken));
    }

    #[test]
    fn a_foreign_tenant_is_named_by_its_header() {
        assert_eq!(
            NotATenantOfToken.to_string(),
            "x-tenantid is not one of the token's tenants"
        );
    }
}
