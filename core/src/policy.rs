//! Who may do what: tenancy, sharing and roles, in one pure function.
//!
//! # Order of checks
//!
//! [`decide`] asks, in this order, and stops at the first "no":
//!
//! 1. **Membership.** The acting tenant must be one of the token's tenants
//!    (`tenant_id` or `tenants`), else [`Forbidden::NotATenantOfToken`]. The
//!    worker normally catches this earlier with
//!    [`Principal::acting_tenant`](crate::Principal::acting_tenant); checking
//!    again makes the function safe on its own.
//! 2. **Visibility** (record actions only). No record, or a record neither
//!    owned by nor shared with the acting tenant → [`Denial::NotVisible`].
//!    This comes before the role so that a stranger learns nothing, whatever
//!    its role: existence is hidden behind the same 404 as "no such record".
//! 3. **Ownership.** A shared tenant may read metadata and nothing else:
//!    anything more is [`Forbidden::SharedTenant`]. This comes before the
//!    role because it is the lasting reason: a higher role would not help,
//!    so naming the role would mislead.
//! 4. **Role**, "or higher": [`Forbidden::RoleTooLow`] when the principal's
//!    highest role is below [`Action::required_role`].
//!
//! Tenant-level actions ([`Action::Create`], [`Action::List`],
//! [`Action::ReadAudit`]) skip 2 and 3: they concern the acting tenant
//! itself, so only membership and the role count.
//!
//! [`admit`] asks 1 and 4 alone, for a handler that must refuse before it
//! reads a request body (a viewer's `PATCH` is 403 whatever it sends, and
//! its body is never read). For a caller whose role is too low this puts
//! the role before visibility; the 403 says nothing about any record, so
//! the stranger still learns nothing.
use core::fmt;

use crate::{
    id::{Role, TenantId},
    principal::Principal,
};

/// What the caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read a record's metadata (never the secret). Viewer.
    ReadMetadata,
    /// List the tenant's records' metadata. Viewer; tenant-level.
    List,
    /// Read a record's decrypted secret. User.
    ReadSecret,
    /// Create a record in the acting tenant. Editor; tenant-level.
    Create,
    /// Change a record's fields, status or secret. Editor.
    Update,
    /// Delete a record and its secret material. Admin.
    Delete,
    /// List, grant or revoke a record's shares. Admin.
    Share,
    /// Read the acting tenant's audit log. Admin; tenant-level.
    ReadAudit,
    /// List a record's secret versions (metadata only). Viewer; owner only.
    ListVersions,
    /// Seal an earlier secret version again as a new one. Editor.
    Rollback,
    /// Destroy an earlier secret version irrecoverably. Admin.
    DestroyVersion,
    /// Rotate the acting tenant's key. Admin; tenant-level.
    RotateTenantKey,
    /// Delete the acting tenant, crypto-shredding every secret it stored.
    /// Admin; tenant-level.
    DeleteTenant,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 13] = [
        Action::ReadMetadata,
        Action::List,
        Action::ReadSecret,
        Action::Create,
        Action::Update,
        Action::Delete,
        Action::Share,
        Action::ReadAudit,
        Action::ListVersions,
        Action::Rollback,
        Action::DestroyVersion,
        Action::RotateTenantKey,
        Action::DeleteTenant,
    ];

    /// The lowest role that may take the action (any higher role may too).
    pub fn required_role(self) -> Role {
        match self {
            Self::ReadMetadata | Self::List | Self::ListVersions => Role::Viewer,
            Self::ReadSecret => Role::User,
            Self::Create | Self::Update | Self::Rollback => Role::Editor,
            Self::Delete
            | Self::Share
            | Self::ReadAudit
            | Self::DestroyVersion
            | Self::RotateTenantKey
            | Self::DeleteTenant => Role::Admin,
        }
    }

    /// Whether the action concerns the acting tenant rather than one record.
    pub fn is_tenant_level(self) -> bool {
        matches!(
            self,
            Self::Create
                | Self::List
                | Self::ReadAudit
                | Self::RotateTenantKey
                | Self::DeleteTenant
        )
    }
}

/// How the acting tenant relates to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    /// The acting tenant owns the record.
    Owner,
    /// The record is shared with the acting tenant.
    Shared,
    /// Neither: the record is not visible to the acting tenant.
    Stranger,
}

impl Relation {
    /// Derives the relation from the record's owner and its share list.
    pub fn of(acting: TenantId, owner: TenantId, shared_with: &[TenantId]) -> Self {
        Self::from_share_flag(acting, owner, shared_with.contains(&acting))
    }

    /// Derives the relation when the store has already answered whether
    /// the acting tenant is in the share list (one indexed lookup instead of
    /// loading the list).
    pub fn from_share_flag(acting: TenantId, owner: TenantId, shared_with_acting: bool) -> Self {
        if acting == owner {
            Self::Owner
        } else if shared_with_acting {
            Self::Shared
        } else {
            Self::Stranger
        }
    }
}

/// Why a visible action was refused (the worker answers 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Forbidden {
    /// The acting tenant is not one of the token's tenants.
    NotATenantOfToken,
    /// The record is only shared with the acting tenant, which may read its
    /// metadata and nothing else.
    SharedTenant,
    /// The principal's role is below what the action needs.
    RoleTooLow {
        /// The lowest role that would do.
        required: Role,
        /// The principal's highest contract role, if any.
        held: Option<Role>,
    },
}

/// A refusal, saying which answer hides the most while staying honest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denial {
    /// The record does not exist for the acting tenant (the worker answers
    /// 404, the same as for a record that does not exist at all).
    NotVisible,
    /// The record is visible but the action is not allowed (403).
    Forbidden(Forbidden),
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotVisible => f.write_str("no such record for this tenant"),
            Self::Forbidden(Forbidden::NotATenantOfToken) => {
                f.write_str("the requested tenant is not one of the token's tenants")
            }
            Self::Forbidden(Forbidden::SharedTenant) => f.write_str(
                "the credential is shared with this tenant, which may read its metadata only",
            ),
            Self::Forbidden(Forbidden::RoleTooLow {
                required,
                held: Some(held),
            }) => {
                write!(
                    f,
                    "this needs the role {required} or higher; the token has {held}"
                )
            }
            Self::Forbidden(Forbidden::RoleTooLow {
                required,
                held: None,
            }) => {
                write!(
                    f,
                    "this needs the role {required} or higher; the token has no role"
                )
            }
        }
    }
}

/// Decides whether `principal`, acting for `acting`, may take `action`.
///
/// `record` is the acting tenant's [`Relation`] to the record, or `None`
/// when there is no such record; it is ignored for tenant-level actions.
/// See the module docs for the order of checks.
///
/// # Errors
///
/// [`Denial::NotVisible`] or [`Denial::Forbidden`], as the module docs set
/// out.
pub fn decide(
    principal: &Principal,
    acting: TenantId,
    action: Action,
    record: Option<Relation>,
) -> Result<(), Denial> {
    if !principal.belongs_to(acting) {
        return Err(Denial::Forbidden(Forbidden::NotATenantOfToken));
    }
    if !action.is_tenant_level() {
        match record {
            None | Some(Relation::Stranger) => return Err(Denial::NotVisible),
            Some(Relation::Shared) if action != Action::ReadMetadata => {
                return Err(Denial::Forbidden(Forbidden::SharedTenant));
            }
            Some(Relation::Owner | Relation::Shared) => {}
        }
    }
    role_suffices(principal, action)
}

/// The checks of [`decide`] that need no record: membership (1) and role
/// (4). A handler asks this before it reads a request body, so a caller who
/// could never be allowed is refused whatever it sent, without the body
/// being read; [`decide`] still runs once the record is loaded.
///
/// A caller this admits may still be refused by [`decide`] (the record is
/// not visible, or only shared); a caller it refuses would be refused by
/// [`decide`] too, except that [`decide`] hides a missing record behind
/// [`Denial::NotVisible`] first: the role says nothing about any record.
///
/// # Errors
///
/// [`Denial::Forbidden`] with [`Forbidden::NotATenantOfToken`] or
/// [`Forbidden::RoleTooLow`].
pub fn admit(principal: &Principal, acting: TenantId, action: Action) -> Result<(), Denial> {
    if !principal.belongs_to(acting) {
        return Err(Denial::Forbidden(Forbidden::NotATenantOfToken));
    }
    role_suffices(principal, action)
}

fn role_suffices(principal: &Principal, action: Action) -> Result<(), Denial> {
    let required = action.required_role();
    let held = principal.highest_role();
    if held < Some(required) {
        return Err(Denial::Forbidden(Forbidden::RoleTooLow { required, held }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use alloc::{string::ToString, vec, vec::Vec};

    use super::*;

    fn tenant(n: u8) -> TenantId {
        TenantId::parse(&alloc::format!("00000000-0000-4000-8000-0000000000{n:02x}"))
            .expect("valid uuid")
    }

    fn principal(roles: Vec<Role>) -> Principal {
        Principal {
            sub: "user-1".into(),
            name: None,
            email: None,
            tenant_name: None,
            home_tenant: tenant(1),
            tenants: vec![tenant(2)],
            roles,
        }
    }

    /// What the contract's table says, written independently of `decide`'s
    /// control flow: one row per (action, relation), then the role rule.
    fn expected(action: Action, relation: Relation, role: Option<Role>) -> Result<(), Denial> {
        use Action::*;
        use Relation::*;
        let allowed_for_relation = match (action, relation) {
            (Create | List | ReadAudit | RotateTenantKey | DeleteTenant, _) => true,
            (_, Stranger) => return Err(Denial::NotVisible),
            (_, Owner) => true,
            (ReadMetadata, Shared) => true,
            (
                ReadSecret | Update | Delete | Share | ListVersions | Rollback | DestroyVersion,
                Shared,
            ) => false,
        };
        if !allowed_for_relation {
            return Err(Denial::Forbidden(Forbidden::SharedTenant));
        }
        let required = match action {
            ReadMetadata | List | ListVersions => Role::Viewer,
            ReadSecret => Role::User,
            Create | Update | Rollback => Role::Editor,
            Delete | Share | ReadAudit | DestroyVersion | RotateTenantKey | DeleteTenant => {
                Role::Admin
            }
        };
        match role {
            Some(held) if held >= required => Ok(()),
            held => Err(Denial::Forbidden(Forbidden::RoleTooLow { required, held })),
        }
    }

    #[test]
    fn every_action_relation_and_role_follows_the_contract_table() {
        let roles = core::iter::once(None).chain(Role::ALL.into_iter().map(Some));
        let mut cases = 0;
        for role in roles {
            let who = principal(role.into_iter().collect());
            for action in Action::ALL {
                for relation in [Relation::Owner, Relation::Shared, Relation::Stranger] {
                    for acting in [tenant(1), tenant(2)] {
                        let got = decide(&who, acting, action, Some(relation));
                        assert_eq!(
                            got,
                            expected(action, relation, role),
                            "{action:?} {relation:?} {role:?}"
                        );
                        cases += 1;
                    }
                }
            }
        }
        assert_eq!(cases, 5 * 13 * 3 * 2);
    }

    #[test]
    fn spot_checks_of_the_table() {
        let admin = principal(vec![Role::Admin]);
        let viewer = principal(vec![Role::Viewer]);
        let owner = Some(Relation::Owner);
        let shared = Some(Relation::Shared);
        let t = tenant(1);
        // A shared tenant never reads the secret, even as admin.
        assert_eq!(
            decide(&admin, t, Action::ReadSecret, shared),
            Err(Denial::Forbidden(Forbidden::SharedTenant))
        );
        assert_eq!(decide(&viewer, t, Action::ReadMetadata, shared), Ok(()));
        // A stranger with a low role still gets NotVisible, not Forbidden.
        assert_eq!(
            decide(&viewer, t, Action::Delete, Some(Relation::Stranger)),
            Err(Denial::NotVisible)
        );
        assert_eq!(
            decide(&viewer, t, Action::ReadSecret, owner),
            Err(Denial::Forbidden(Forbidden::RoleTooLow {
                required: Role::User,
                held: Some(Role::Viewer)
            }))
        );
        // Roles are "or higher"; the highest one counts.
        let many = principal(vec![Role::Viewer, Role::Editor]);
        assert_eq!(decide(&many, t, Action::Update, owner), Ok(()));
        assert!(matches!(
            decide(&many, t, Action::Delete, owner),
            Err(Denial::Forbidden(Forbidden::RoleTooLow {
                required: Role::Admin,
                ..
            }))
        ));
    }

    #[test]
    fn a_missing_record_is_not_visible_and_tenant_actions_need_no_record() {
        let admin = principal(vec![Role::Admin]);
        for action in Action::ALL {
            let got = decide(&admin, tenant(1), action, None);
            if action.is_tenant_level() {
                assert_eq!(got, Ok(()), "{action:?}");
            } else {
                assert_eq!(got, Err(Denial::NotVisible), "{action:?}");
            }
        }
    }

    #[test]
    fn a_tenant_outside_the_token_is_forbidden_before_anything_else() {
        let admin = principal(vec![Role::Admin]);
        for action in Action::ALL {
            for record in [None, Some(Relation::Owner), Some(Relation::Stranger)] {
                assert_eq!(
                    decide(&admin, tenant(9), action, record),
                    Err(Denial::Forbidden(Forbidden::NotATenantOfToken)),
                    "{action:?} {record:?}"
                );
            }
        }
    }

    /// `admit` is `decide` without the record: it refuses exactly the
    /// callers `decide` refuses for every relation (membership or role),
    /// and admits the rest.
    #[test]
    fn admit_refuses_whom_decide_refuses_for_any_record() {
        let roles = [
            None,
            Some(Role::Viewer),
            Some(Role::User),
            Some(Role::Editor),
            Some(Role::Admin),
        ];
        for action in Action::ALL {
            for role in roles {
                let who = principal(role.into_iter().collect());
                for acting in [tenant(1), tenant(2), tenant(9)] {
                    let admitted = admit(&who, acting, action);
                    let as_owner = decide(&who, acting, action, Some(Relation::Owner));
                    assert_eq!(admitted, as_owner, "{action:?} {role:?} {acting}");
                }
            }
        }
        let viewer = principal(vec![Role::Viewer]);
        assert!(matches!(
            admit(&viewer, tenant(1), Action::Update),
            Err(Denial::Forbidden(Forbidden::RoleTooLow {
                required: Role::Editor,
                held: Some(Role::Viewer)
            }))
        ));
    }

    #[test]
    fn relations_derive_from_owner_and_shares() {
        let (a, b, c) = (tenant(1), tenant(2), tenant(3));
        assert_eq!(Relation::of(a, a, &[b]), Relation::Owner);
        assert_eq!(Relation::of(b, a, &[c, b]), Relation::Shared);
        assert_eq!(Relation::of(c, a, &[b]), Relation::Stranger);
        assert_eq!(Relation::of(c, a, &[]), Relation::Stranger);
        // Owning wins over an (odd) share with oneself.
        assert_eq!(Relation::from_share_flag(a, a, true), Relation::Owner);
        assert_eq!(Relation::from_share_flag(b, a, true), Relation::Shared);
        assert_eq!(Relation::from_share_flag(b, a, false), Relation::Stranger);
    }

    #[test]
    fn denials_say_what_to_do() {
        let cases = [
            (Denial::NotVisible, "no such record for this tenant"),
            (
                Denial::Forbidden(Forbidden::RoleTooLow {
                    required: Role::User,
                    held: None,
                }),
                "this needs the role integration_user or higher; the token has no role",
            ),
            (
                Denial::Forbidden(Forbidden::RoleTooLow {
                    required: Role::Admin,
                    held: Some(Role::Editor),
                }),
                "this needs the role integration_admin or higher; the token has integration_editor",
            ),
        ];
        for (denial, message) in cases {
            assert_eq!(denial.to_string(), message);
        }
    }
}
