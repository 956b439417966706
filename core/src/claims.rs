//! Claim rules: what a token whose signature has been verified must say
//! before it becomes a [`Principal`].
//!
//! The worker verifies signatures (the key fixes the algorithm); this module
//! decides everything that depends only on the claims and the time, which
//! the caller passes in. The rules follow RFC 7519 §4.1 with the contract's
//! additions:
//!
//! - `exp` is required; `nbf` and `iat` are checked when present. A leeway of
//!   [`LEEWAY_SECONDS`] absorbs clock skew between the issuer and the edge.
//! - `iss` and `aud` are checked only where the deployment configured them;
//!   `aud` may be a string or an array (RFC 7519 §4.1.3).
//! - `sub` and `tenant_id` (a UUID) are required; `tenants` is an optional
//!   array of UUIDs. Every tenant the token names must be one its issuer may
//!   speak for ([`TenantScope`]). Roles come from `roles` and from Keycloak's
//!   `realm_access.roles`, and names that are not the contract's roles are
//!   ignored (a token may carry roles of other applications).
use alloc::{string::String, vec::Vec};
use core::fmt;

use serde::{de, Deserialize, Deserializer};

use crate::id::{Role, TenantId};
use crate::principal::Principal;
use crate::tenant_scope::TenantScope;

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECONDS: i64 = 60;

/// Why a token's claims were refused. [`ClaimError::reason`] is meant for
/// the log; clients only learn that the token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimError {
    /// The claims are not a JSON object of the expected shape (a claim of
    /// the wrong type, for instance a numeric `sub`).
    Malformed,
    /// No `exp` claim.
    MissingExpiry,
    /// `exp` (plus the leeway) has passed.
    Expired,
    /// `nbf` (minus the leeway) is still in the future.
    NotYetValid,
    /// `iat` (minus the leeway) is in the future.
    IssuedInFuture,
    /// `iss` is missing or differs from the configured issuer.
    IssuerMismatch,
    /// `aud` is missing or does not name the configured audience.
    AudienceMismatch,
    /// No `sub` claim, or an empty one.
    MissingSubject,
    /// No `tenant_id` claim.
    MissingTenant,
    /// `tenant_id` is not a hyphenated UUID.
    InvalidTenant,
    /// An entry of `tenants` is not a hyphenated UUID.
    InvalidTenants,
    /// `tenant_id` or an entry of `tenants` is a tenant the token's issuer
    /// may not speak for.
    TenantOutOfScope,
}

impl ClaimError {
    /// A short reason for the log, without any claim value.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "malformed claims",
            Self::MissingExpiry => "missing exp",
            Self::Expired => "token expired",
            Self::NotYetValid => "token not yet valid (nbf)",
            Self::IssuedInFuture => "token issued in the future (iat)",
            Self::IssuerMismatch => "wrong issuer",
            Self::AudienceMismatch => "wrong audience",
            Self::MissingSubject => "missing sub",
            Self::MissingTenant => "missing tenant_id",
            Self::InvalidTenant => "tenant_id is not a UUID",
            Self::InvalidTenants => "tenants holds a value that is not a UUID",
            Self::TenantOutOfScope => "token names a tenant its issuer may not speak for",
        }
    }
}

impl fmt::Display for ClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// What the deployment expects of a token's issuer: `iss` and `aud` (where
/// `None` leaves the claim unchecked) and the tenants it may name. There is
/// no default: every caller states the tenants its issuer speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimRules<'a> {
    /// The required `iss`, compared exactly.
    pub issuer: Option<&'a str>,
    /// An audience `aud` must name (be, or contain).
    pub audience: Option<&'a str>,
    /// The tenants `tenant_id` and `tenants` may name.
    pub tenants: &'a TenantScope,
}

/// A token's claims other than the registered time claims, as sent.
///
/// Deserializing only checks types; [`TokenClaims::validate`] applies the
/// rules. The worker's JWT library parses `exp`, `nbf` and `iat` itself and
/// hands the rest of the claims over as this type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct IdentityClaims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    tenants: Option<Vec<String>>,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    realm_access: Option<RealmAccess>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    tenant_name: Option<String>,
}

/// RFC 7519 §4.1.3: "In the special case when the JWT has one audience, the
/// aud value MAY be a single case-sensitive string".
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn names(&self, wanted: &str) -> bool {
        match self {
            Self::One(one) => one == wanted,
            Self::Many(many) => many.iter().any(|one| one == wanted),
        }
    }
}

/// Keycloak puts realm roles under `realm_access.roles`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
struct RealmAccess {
    #[serde(default)]
    roles: Option<Vec<String>>,
}

/// All of a token's claims that Coffer reads, as sent: the registered time
/// claims (seconds since the Unix epoch) and the [`IdentityClaims`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct TokenClaims {
    /// `exp`: the token must not be accepted on or after this time.
    #[serde(default, deserialize_with = "numeric_date")]
    pub exp: Option<i64>,
    /// `nbf`: the token must not be accepted before this time.
    #[serde(default, deserialize_with = "numeric_date")]
    pub nbf: Option<i64>,
    /// `iat`: when the token was issued.
    #[serde(default, deserialize_with = "numeric_date")]
    pub iat: Option<i64>,
    /// Every other claim Coffer reads.
    #[serde(flatten)]
    pub identity: IdentityClaims,
}

impl TokenClaims {
    /// Parses a claims set (the JSON payload of a JWT) for its types only.
    ///
    /// # Errors
    ///
    /// [`ClaimError::Malformed`] when `json` is not an object or a claim
    /// Coffer reads has the wrong type.
    pub fn from_json(json: &[u8]) -> Result<Self, ClaimError> {
        serde_json::from_slice(json).map_err(|_| ClaimError::Malformed)
    }

    /// Applies the claim rules at `now_ms` (milliseconds since the Unix
    /// epoch, from the runtime's clock) and builds the principal.
    ///
    /// # Errors
    ///
    /// The first rule the claims break, checked in this order: time
    /// (`exp`, `nbf`, `iat`), `iss`, `aud`, `sub`, `tenant_id`, `tenants`,
    /// then whether the issuer may speak for every tenant named
    /// ([`ClaimError::TenantOutOfScope`]).
    pub fn validate(self, rules: &ClaimRules<'_>, now_ms: i64) -> Result<Principal, ClaimError> {
        let exp = self.exp.ok_or(ClaimError::MissingExpiry)?;
        // RFC 7519 §4.1.4: the current time must be before `exp`.
        if now_ms >= seconds_to_ms(exp.saturating_add(LEEWAY_SECONDS)) {
            return Err(ClaimError::Expired);
        }
        // RFC 7519 §4.1.5: the current time must be on or after `nbf`.
        if let Some(nbf) = self.nbf {
            if now_ms < seconds_to_ms(nbf.saturating_sub(LEEWAY_SECONDS)) {
                return Err(ClaimError::NotYetValid);
            }
        }
        // RFC 7519 §4.1.6 does not require this; a token minted in the future
        // points at a broken or hostile issuer clock.
        if let Some(iat) = self.iat {
            if now_ms < seconds_to_ms(iat.saturating_sub(LEEWAY_SECONDS)) {
                return Err(ClaimError::IssuedInFuture);
            }
        }

        let claims = self.identity;
        if let Some(issuer) = rules.issuer {
            if claims.iss.as_deref() != Some(issuer) {
                return Err(ClaimError::IssuerMismatch);
            }
        }
        if let Some(audience) = rules.audience {
            if !claims.aud.as_ref().is_some_and(|aud| aud.names(audience)) {
                return Err(ClaimError::AudienceMismatch);
            }
        }

        let sub = claims
            .sub
            .filter(|sub| !sub.is_empty())
            .ok_or(ClaimError::MissingSubject)?;
        let home_tenant = TenantId::parse(
            claims
                .tenant_id
                .as_deref()
                .ok_or(ClaimError::MissingTenant)?,
        )
        .map_err(|_| ClaimError::InvalidTenant)?;

        let mut tenants: Vec<TenantId> = Vec::new();
        for tenant in claims.tenants.iter().flatten() {
            let tenant = TenantId::parse(tenant).map_err(|_| ClaimError::InvalidTenants)?;
            if tenant != home_tenant && !tenants.contains(&tenant) {
                tenants.push(tenant);
            }
        }
        // Both claims: `tenants` reaches a tenant through `x-tenantid` as
        // surely as `tenant_id` does.
        if !rules
            .tenants
            .permits_all(core::iter::once(&home_tenant).chain(&tenants))
        {
            return Err(ClaimError::TenantOutOfScope);
        }

        let realm_roles = claims.realm_access.and_then(|access| access.roles);
        let mut roles: Vec<Role> = claims
            .roles
            .iter()
            .flatten()
            .chain(realm_roles.iter().flatten())
            .filter_map(|name| Role::parse(name))
            .collect();
        roles.sort_unstable();
        roles.dedup();

        Ok(Principal {
            sub,
            name: claims.name,
            email: claims.email,
            tenant_name: claims.tenant_name,
            home_tenant,
            tenants,
            roles,
        })
    }
}

fn seconds_to_ms(seconds: i64) -> i64 {
    seconds.saturating_mul(1000)
}

/// RFC 7519 §2 "NumericDate": seconds since the epoch, possibly with a
/// fraction, which is dropped (rounded down).
fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    struct NumericDate;

    impl de::Visitor<'_> for NumericDate {
        type Value = Option<i64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("seconds since the Unix epoch")
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
            Ok(Some(value))
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
            i64::try_from(value)
                .map(Some)
                .map_err(|_| E::custom("timestamp out of range"))
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
            // Finite and within ±2^62 s, far beyond any real date.
            const LIMIT: f64 = 4.611_686_018_427_388e18;
            if !value.is_finite() || !(-LIMIT..LIMIT).contains(&value) {
                return Err(E::custom("timestamp out of range"));
            }
            // `as` truncates toward zero; step down once more for negative
            // fractions so the result is the floor.
            #[allow(clippy::cast_possible_truncation)]
            let whole = value as i64;
            #[allow(clippy::cast_precision_loss)]
            let floor = if (whole as f64) > value {
                whole - 1
            } else {
                whole
            };
            Ok(Some(floor))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }

    deserializer.deserialize_any(NumericDate)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use alloc::{string::ToString, vec, vec::Vec};

    use serde_json::{json, Value};

    use super::{ClaimError, ClaimRules, TokenClaims};
    use crate::id::{Role, TenantId};
    use crate::tenant_scope::TenantScope;

    /// No `iss` or `aud` check, any tenant.
    const ANY: ClaimRules<'static> = ClaimRules {
        issuer: None,
        audience: None,
        tenants: &TenantScope::Any,
    };

    /// A fixed "now": 2024-03-27T00:00:00Z.
    const NOW: i64 = 1_711_497_600;
    const NOW_MS: i64 = NOW * 1000;
    const TENANT: &str = "550e8400-e29b-41d4-a716-446655440001";
    const OTHER: &str = "550e8400-e29b-41d4-a716-446655440002";

    fn base() -> Value {
        json!({
            "sub": "user-1",
            "tenant_id": TENANT,
            "exp": NOW + 600,
            "iat": NOW,
        })
    }

    fn with(changes: Value) -> Value {
        let mut claims = base();
        let (Value::Object(target), Value::Object(changes)) = (&mut claims, changes) else {
            panic!("claims are objects");
        };
        for (name, value) in changes {
            if value == json!("<absent>") {
                target.remove(&name);
            } else {
                target.insert(name, value);
            }
        }
        claims
    }

    fn validate(claims: &Value, rules: &ClaimRules<'_>) -> Result<crate::Principal, ClaimError> {
        let bytes = serde_json::to_vec(claims).expect("serialize claims");
        TokenClaims::from_json(&bytes)?.validate(rules, NOW_MS)
    }

    /// One row per rule; times relative to NOW. RFC 7519 §4.1.4–4.1.6 for
    /// the time claims, §4.1.1 and §4.1.3 for `iss` and `aud`.
    #[test]
    fn claim_rules() {
        let none = ANY;
        let configured = ClaimRules {
            issuer: Some("https://idp.example.com/realms/acme"),
            audience: Some("coffer"),
            tenants: &TenantScope::Any,
        };
        let cases: Vec<(&str, Value, ClaimRules<'_>, Result<(), ClaimError>)> = vec![
            ("minimal token", base(), none, Ok(())),
            (
                "missing exp",
                with(json!({"exp": "<absent>"})),
                none,
                Err(ClaimError::MissingExpiry),
            ),
            (
                "null exp",
                with(json!({"exp": null})),
                none,
                Err(ClaimError::MissingExpiry),
            ),
            (
                "exp as string",
                with(json!({"exp": "soon"})),
                none,
                Err(ClaimError::Malformed),
            ),
            (
                "expired long ago",
                with(json!({"exp": NOW - 3600})),
                none,
                Err(ClaimError::Expired),
            ),
            (
                "expired within leeway",
                with(json!({"exp": NOW - 59})),
                none,
                Ok(()),
            ),
            (
                "expired at leeway edge",
                with(json!({"exp": NOW - 60})),
                none,
                Err(ClaimError::Expired),
            ),
            (
                "fractional exp",
                with(json!({"exp": (NOW as f64) + 0.5})),
                none,
                Ok(()),
            ),
            (
                "nbf in the past",
                with(json!({"nbf": NOW - 10})),
                none,
                Ok(()),
            ),
            (
                "nbf within leeway",
                with(json!({"nbf": NOW + 60})),
                none,
                Ok(()),
            ),
            (
                "nbf beyond leeway",
                with(json!({"nbf": NOW + 61})),
                none,
                Err(ClaimError::NotYetValid),
            ),
            (
                "iat within leeway",
                with(json!({"iat": NOW + 60})),
                none,
                Ok(()),
            ),
            (
                "iat beyond leeway",
                with(json!({"iat": NOW + 61})),
                none,
                Err(ClaimError::IssuedInFuture),
            ),
            ("no iat", with(json!({"iat": "<absent>"})), none, Ok(())),
            (
                "iss and aud match",
                with(json!({"iss": "https://idp.example.com/realms/acme", "aud": "coffer"})),
                configured,
                Ok(()),
            ),
            (
                "aud as array",
                with(
                    json!({"iss": "https://idp.example.com/realms/acme", "aud": ["account", "coffer"]}),
                ),
                configured,
                Ok(()),
            ),
            (
                "wrong iss",
                with(json!({"iss": "https://evil.example.com", "aud": "coffer"})),
                configured,
                Err(ClaimError::IssuerMismatch),
            ),
            (
                "missing iss",
                with(json!({"aud": "coffer"})),
                configured,
                Err(ClaimError::IssuerMismatch),
            ),
            (
                "wrong aud",
                with(json!({"iss": "https://idp.example.com/realms/acme", "aud": ["account"]})),
                configured,
                Err(ClaimError::AudienceMismatch),
            ),
            (
                "missing aud",
                with(json!({"iss": "https://idp.example.com/realms/acme"})),
                configured,
                Err(ClaimError::AudienceMismatch),
            ),
            (
                "iss and aud unchecked when not configured",
                with(json!({"iss": "x", "aud": "y"})),
                none,
                Ok(()),
            ),
            (
                "missing sub",
                with(json!({"sub": "<absent>"})),
                none,
                Err(ClaimError::MissingSubject),
            ),
            (
                "empty sub",
                with(json!({"sub": ""})),
                none,
                Err(ClaimError::MissingSubject),
            ),
            (
                "numeric sub",
                with(json!({"sub": 42})),
                none,
                Err(ClaimError::Malformed),
            ),
            (
                "missing tenant_id",
                with(json!({"tenant_id": "<absent>"})),
                none,
                Err(ClaimError::MissingTenant),
            ),
            (
                "tenant_id not a UUID",
                with(json!({"tenant_id": "acme"})),
                none,
                Err(ClaimError::InvalidTenant),
            ),
            (
                "tenant_id unhyphenated",
                with(json!({"tenant_id": "550e8400e29b41d4a716446655440001"})),
                none,
                Err(ClaimError::InvalidTenant),
            ),
            (
                "tenants of UUIDs",
                with(json!({"tenants": [OTHER, TENANT]})),
                none,
                Ok(()),
            ),
            (
                "tenants with junk",
                with(json!({"tenants": [OTHER, "junk"]})),
                none,
                Err(ClaimError::InvalidTenants),
            ),
            (
                "tenants not an array",
                with(json!({"tenants": OTHER})),
                none,
                Err(ClaimError::Malformed),
            ),
            (
                "roles not an array",
                with(json!({"roles": "integration_admin"})),
                none,
                Err(ClaimError::Malformed),
            ),
            (
                "claims not an object",
                json!(["sub"]),
                none,
                Err(ClaimError::Malformed),
            ),
        ];
        for (name, claims, rules, expected) in cases {
            let got = validate(&claims, &rules).map(|_| ());
            assert_eq!(got, expected, "{name}");
        }
    }

    /// A realm bound to tenants: `tenant_id` and every entry of `tenants`
    /// must be among them, in any letter case.
    #[test]
    fn an_issuer_names_only_the_tenants_it_may_speak_for() {
        const THIRD: &str = "550e8400-e29b-41d4-a716-446655440003";
        let scope = TenantScope::Only(vec![
            TenantId::parse(TENANT).expect("uuid"),
            TenantId::parse(OTHER).expect("uuid"),
        ]);
        let scoped = ClaimRules {
            tenants: &scope,
            ..ANY
        };
        let nobody = TenantScope::Only(Vec::new());
        let cases: Vec<(&str, Value, ClaimRules<'_>, Result<(), ClaimError>)> = vec![
            ("home tenant in scope", base(), scoped, Ok(())),
            (
                "home tenant in another letter case",
                with(json!({"tenant_id": TENANT.to_uppercase()})),
                scoped,
                Ok(()),
            ),
            (
                "tenants in scope",
                with(json!({"tenants": [OTHER, TENANT]})),
                scoped,
                Ok(()),
            ),
            (
                "home tenant out of scope",
                with(json!({"tenant_id": THIRD})),
                scoped,
                Err(ClaimError::TenantOutOfScope),
            ),
            (
                "one of tenants out of scope",
                with(json!({"tenants": [OTHER, THIRD]})),
                scoped,
                Err(ClaimError::TenantOutOfScope),
            ),
            (
                "home tenant out of scope, tenants in it",
                with(json!({"tenant_id": THIRD, "tenants": [TENANT]})),
                scoped,
                Err(ClaimError::TenantOutOfScope),
            ),
            (
                "an empty scope speaks for nobody",
                base(),
                ClaimRules {
                    tenants: &nobody,
                    ..ANY
                },
                Err(ClaimError::TenantOutOfScope),
            ),
            (
                "any tenant",
                with(json!({"tenant_id": THIRD, "tenants": [OTHER]})),
                ANY,
                Ok(()),
            ),
            (
                "malformed tenants are reported as such first",
                with(json!({"tenants": ["junk"]})),
                scoped,
                Err(ClaimError::InvalidTenants),
            ),
        ];
        for (name, claims, rules, expected) in cases {
            let got = validate(&claims, &rules).map(|_| ());
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn principal_carries_the_claims() {
        let claims = with(json!({
            "tenants": [OTHER, TENANT, OTHER],
            "roles": ["integration_viewer", "offline_access", "integration_editor"],
            "realm_access": {"roles": ["integration_admin", "uma_authorization"]},
            "name": "Ada Example",
            "email": "ada@example.com",
            "tenant_name": "Acme",
        }));
        let principal = validate(&claims, &ANY).expect("valid claims");
        let home = TenantId::parse(TENANT).expect("uuid");
        let other = TenantId::parse(OTHER).expect("uuid");
        assert_eq!(principal.sub(), "user-1");
        assert_eq!(principal.home_tenant(), home);
        assert_eq!(principal.tenants, vec![other]);
        assert_eq!(
            principal.roles,
            vec![Role::Viewer, Role::Editor, Role::Admin]
        );
        assert_eq!(principal.highest_role(), Some(Role::Admin));
        assert_eq!(principal.name(), Some("Ada Example"));
        assert_eq!(principal.email(), Some("ada@example.com"));
        assert_eq!(principal.tenant_name(), Some("Acme"));
    }

    #[test]
    fn keycloak_realm_roles_alone_are_read() {
        let claims = with(json!({"realm_access": {"roles": ["integration_user"]}}));
        let principal = validate(&claims, &ANY).expect("valid claims");
        assert_eq!(principal.highest_role(), Some(Role::User));
    }

    #[test]
    fn unknown_roles_and_optional_claims_are_ignored() {
        let claims = with(json!({"roles": ["admin", "INTEGRATION_ADMIN"], "name": null}));
        let principal = validate(&claims, &ANY).expect("valid claims");
        assert_eq!(principal.highest_role(), None);
        assert_eq!(principal.name(), None);
        assert_eq!(principal.tenant_name(), None);
    }

    #[test]
    fn negative_fractional_dates_round_down() {
        let claims = TokenClaims::from_json(br#"{"exp": -1.5, "nbf": 2.25}"#).expect("parse");
        assert_eq!(claims.exp, Some(-2));
        assert_eq!(claims.nbf, Some(2));
    }

    /// `exp`, `nbf` and `iat` as RFC 7519 §2 NumericDates: a JSON number of
    /// seconds, negative or fractional (floored), or `null` for "absent".
    /// `None` as the expectation means the claims are refused as malformed.
    fn check_date(number: &str, expected: Option<Option<i64>>) {
        for claim in ["exp", "nbf", "iat"] {
            let json = alloc::format!(r#"{{"{claim}": {number}}}"#);
            let got = TokenClaims::from_json(json.as_bytes()).map(|claims| match claim {
                "exp" => claims.exp,
                "nbf" => claims.nbf,
                _ => claims.iat,
            });
            match expected {
                Some(date) => assert_eq!(got, Ok(date), "{claim}: {number}"),
                None => assert_eq!(got, Err(ClaimError::Malformed), "{claim}: {number}"),
            }
        }
    }

    #[test]
    fn numeric_dates_of_every_json_shape() {
        // Integers: serde_json hands non-negative ones to `visit_u64` and
        // negative ones to `visit_i64`.
        check_date("0", Some(Some(0)));
        check_date("1711497600", Some(Some(NOW)));
        check_date("-1", Some(Some(-1)));
        check_date("-5", Some(Some(-5)));
        check_date("-1711497600", Some(Some(-NOW)));
        check_date("-9223372036854775808", Some(Some(i64::MIN)));
        check_date("9223372036854775807", Some(Some(i64::MAX)));
        check_date("9223372036854775808", None);
        check_date("18446744073709551615", None);
        // `null` is an absent claim, not the epoch.
        check_date("null", Some(None));
        // Fractions are floored: toward minus infinity, also below zero.
        check_date("0.5", Some(Some(0)));
        check_date("0.999", Some(Some(0)));
        check_date("1.5", Some(Some(1)));
        check_date("-0.5", Some(Some(-1)));
        check_date("-1.5", Some(Some(-2)));
        check_date("-1e-300", Some(Some(-1)));
        check_date("1e-300", Some(Some(0)));
        // A whole number written as a float is that number, not one less.
        check_date("1.0", Some(Some(1)));
        check_date("-1.0", Some(Some(-1)));
        check_date("-0.0", Some(Some(0)));
        check_date("1711497600.0", Some(Some(NOW)));
        check_date("-1711497600.0", Some(Some(-NOW)));
        // The float range is [-2^62, 2^62): beyond any real date, and every
        // float inside it converts to an i64 exactly. 2^62 = 4611686018427387904;
        // the neighbouring doubles are 512 below and 1024 beyond.
        check_date(
            "4611686018427387392.0",
            Some(Some(4_611_686_018_427_387_392)),
        );
        check_date("4611686018427387904.0", None);
        check_date(
            "-4611686018427387904.0",
            Some(Some(-4_611_686_018_427_387_904)),
        );
        check_date("-4611686018427388928.0", None);
        check_date("1e300", None);
        check_date("-1e300", None);
        // Not numbers at all.
        check_date(r#""1711497600""#, None);
        check_date("true", None);
        check_date("[1711497600]", None);
    }

    #[test]
    fn negative_and_fractional_dates_meet_the_rules_at_their_edges() {
        let cases: Vec<(&str, Value, Result<(), ClaimError>)> = vec![
            (
                "negative exp",
                with(json!({"exp": -1})),
                Err(ClaimError::Expired),
            ),
            ("negative nbf", with(json!({"nbf": -1})), Ok(())),
            ("negative iat", with(json!({"iat": -NOW})), Ok(())),
            // exp floors to NOW - 60, the leeway's edge: expired.
            (
                "fractional exp at the leeway edge",
                with(json!({"exp": (NOW - 60) as f64 + 0.5})),
                Err(ClaimError::Expired),
            ),
            (
                "fractional exp within the leeway",
                with(json!({"exp": (NOW - 59) as f64 + 0.5})),
                Ok(()),
            ),
            (
                "whole exp written as a float, within the leeway",
                with(json!({"exp": (NOW - 59) as f64})),
                Ok(()),
            ),
            // nbf floors to NOW + 60: still within the leeway.
            (
                "fractional nbf at the leeway edge",
                with(json!({"nbf": (NOW + 60) as f64 + 0.5})),
                Ok(()),
            ),
            (
                "fractional nbf beyond the leeway",
                with(json!({"nbf": (NOW + 61) as f64 + 0.5})),
                Err(ClaimError::NotYetValid),
            ),
            (
                "fractional iat beyond the leeway",
                with(json!({"iat": (NOW + 61) as f64 + 0.25})),
                Err(ClaimError::IssuedInFuture),
            ),
            ("null nbf", with(json!({"nbf": null})), Ok(())),
            ("null iat", with(json!({"iat": null})), Ok(())),
        ];
        for (name, claims, expected) in cases {
            let got = validate(&claims, &ANY).map(|_| ());
            assert_eq!(got, expected, "{name}");
        }
    }

    /// `TokenClaims` is a public `Deserialize` type: read by other means
    /// than `from_json`, a wrong-typed date says what a NumericDate is.
    #[test]
    fn a_wrong_typed_date_says_what_was_expected() {
        let error = serde_json::from_slice::<TokenClaims>(br#"{"exp": "soon"}"#)
            .expect_err("a string is no date");
        assert!(
            error
                .to_string()
                .contains("expected seconds since the Unix epoch"),
            "{error}"
        );
    }

    /// The worker logs `reason()` for every refused token: a stable text,
    /// lowercase, without a trailing period and without any claim value.
    #[test]
    fn every_reason_is_a_stable_log_text() {
        let cases = [
            (ClaimError::Malformed, "malformed claims"),
            (ClaimError::MissingExpiry, "missing exp"),
            (ClaimError::Expired, "token expired"),
            (ClaimError::NotYetValid, "token not yet valid (nbf)"),
            (
                ClaimError::IssuedInFuture,
                "token issued in the future (iat)",
            ),
            (ClaimError::IssuerMismatch, "wrong issuer"),
            (ClaimError::AudienceMismatch, "wrong audience"),
            (ClaimError::MissingSubject, "missing sub"),
            (ClaimError::MissingTenant, "missing tenant_id"),
            (ClaimError::InvalidTenant, "tenant_id is not a UUID"),
            (
                ClaimError::InvalidTenants,
                "tenants holds a value that is not a UUID",
            ),
            (
                ClaimError::TenantOutOfScope,
                "token names a tenant its issuer may not speak for",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.reason(), text);
            assert_eq!(error.to_string(), text);
            assert!(!text.ends_with('.'), "{text}");
            assert!(text.starts_with(|c: char| c.is_ascii_lowercase()), "{text}");
        }
    }
}
