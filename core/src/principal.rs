//! The verified caller.
use alloc::{string::String, vec::Vec};

use crate::id::{Role, TenantId};

/// A caller whose token has been verified and whose claims passed the
/// rules in [`crate::claims`]. Only claim validation builds one.
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
