//! The deployment's identity configuration and which verifier a request
//! gets. Pure: the caller reads the variables and headers.
//!
//! Which verifier applies:
//!
//! | `realmname` header | `AUTH_DEFAULT_REALM` | verifier                          |
//! |--------------------|----------------------|-----------------------------------|
//! | any                | an unknown realm     | none: 500 (misconfigured)         |
//! | a configured realm | empty or a realm     | that realm's JWKS                 |
//! | an unknown realm   | empty or a realm     | none: 401                         |
//! | absent or empty    | a configured realm   | that realm's JWKS                 |
//! | absent or empty    | empty                | HS256 with `AUTH_HS256_SECRET`    |
//!
//! A realm never falls back to HS256, and HS256 never falls back to a
//! realm: the configuration, not the token, picks the key.
//!
//! Nothing unsafe is left to a default. Each realm states its `issuer`, its
//! `audience` and the tenants it may speak for (`"tenants": [<uuid>, ...]`
//! or, explicitly, `"*"`); its `jwks_url` is `https` (plain `http` only on
//! a loopback host, for local identity providers); the HS256 secret, when
//! set, has at least [`MIN_HS256_SECRET_BYTES`]. A configuration that
//! breaks any of these fails every authenticated request (a logged reason,
//! a generic 500) rather than quietly accepting more than it says.
use std::collections::HashMap;

use coffer_core::{TenantId, TenantScope};
use serde::Deserialize;
use serde_json::Value;

/// RFC 7518 §3.2: "A key of the same size as the hash output (for instance,
/// 256 bits for "HS256") or larger MUST be used with this algorithm." The
/// HMAC key is the secret's UTF-8 bytes, so this counts bytes, not
/// characters.
pub(crate) const MIN_HS256_SECRET_BYTES: usize = 32;

/// Hosts whose `jwks_url` may be plain `http`: the key set never leaves the
/// machine. Compared with the URL's normalized host.
const LOOPBACK_HOSTS: [&str; 3] = ["127.0.0.1", "localhost", "[::1]"];

/// One identity provider's realm, as configured in `AUTH_REALMS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Realm {
    /// The `iss` its tokens must carry.
    pub(crate) issuer: String,
    /// Where its JWKS is published (`https`, or `http` on a loopback host).
    pub(crate) jwks_url: String,
    /// An audience its tokens' `aud` must name.
    pub(crate) audience: String,
    /// The tenants its tokens may name.
    pub(crate) tenants: TenantScope,
    /// The OpenID Connect client id of the Coffer Console (a public client
    /// using the authorization code flow with PKCE): when set, the console
    /// offers "Sign in with <realm>".
    pub(crate) console_client_id: Option<String>,
}

/// A realm entry as written, before its fields are checked. Every field is
/// optional here so that a missing one gets a reason naming it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RealmEntry {
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    jwks_url: Option<String>,
    #[serde(default)]
    audience: Option<String>,
    #[serde(default)]
    tenants: Option<Value>,
    #[serde(default)]
    console_client_id: Option<String>,
}

/// `AUTH_REALMS`: realm name → realm, in name order. A deployment has a
/// handful, so a list searched in order is all the map it needs (and a
/// hash table's code per value type is not in the `.wasm`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Realms(Vec<(String, Realm)>);

impl Realms {
    /// Parses `AUTH_REALMS`; an empty value means no realms.
    ///
    /// # Errors
    ///
    /// A reason for the log (naming the realm and field, never a value
    /// beyond the realm's name) when the JSON is malformed or a realm
    /// breaks a rule of the module documentation.
    pub(crate) fn parse(json: &str) -> Result<Self, String> {
        if json.trim().is_empty() {
            return Ok(Self::default());
        }
        let entries: HashMap<String, RealmEntry> = serde_json::from_str(json).map_err(|_| {
            "AUTH_REALMS is not a JSON object of realms {issuer, jwks_url, audience, tenants}"
                .to_owned()
        })?;
        let mut realms = entries
            .into_iter()
            .map(|(name, entry)| {
                let realm = realm(entry)
                    .map_err(|problem| format!("AUTH_REALMS realm {name:?}: {problem}"))?;
                Ok((name, realm))
            })
            .collect::<Result<Vec<_>, String>>()?;
        realms.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self(realms))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Realm> {
        self.0
            .iter()
            .find_map(|(realm_name, realm)| (realm_name == name).then_some(realm))
    }

    /// Every realm with its name, in name order.
    pub(crate) fn sorted(&self) -> Vec<(&str, &Realm)> {
        self.0
            .iter()
            .map(|(name, realm)| (name.as_str(), realm))
            .collect()
    }
}

/// Checks one realm entry; `Err` says what is wrong with it.
fn realm(entry: RealmEntry) -> Result<Realm, &'static str> {
    let required = |value: Option<String>, missing: &'static str| {
        value
            .filter(|value| !value.trim().is_empty())
            .ok_or(missing)
    };
    let issuer = required(entry.issuer, "issuer is required")?;
    let audience = required(
        entry.audience,
        "audience is required (tokens the IdP signs for other applications would pass)",
    )?;
    let jwks_url = required(entry.jwks_url, "jwks_url is required")?;
    check_jwks_url(&jwks_url)?;
    let tenants = tenants(entry.tenants.as_ref())?;
    let console_client_id = match entry.console_client_id {
        None => None,
        Some(id) if id.trim().is_empty() => return Err("console_client_id must not be empty"),
        Some(id) => Some(id),
    };
    // The console discovers the realm's endpoints from its issuer, and the
    // page's Content-Security-Policy names the issuer's origin.
    if console_client_id.is_some() {
        check_issuer_for_console(&issuer)?;
    }
    Ok(Realm {
        issuer,
        jwks_url,
        audience,
        tenants,
        console_client_id,
    })
}

/// A console realm's issuer: the console fetches its discovery document, so
/// `https` (or `http` on a loopback host) like `jwks_url`.
fn check_issuer_for_console(issuer: &str) -> Result<(), &'static str> {
    check_jwks_url(issuer).map_err(|_| {
        "issuer must be an https URL (plain http only on a loopback host) when console_client_id is set"
    })
}

/// `https`, or `http` on a loopback host.
fn check_jwks_url(url: &str) -> Result<(), &'static str> {
    let url = crate::web_url::parse(url).ok_or("jwks_url is not a URL")?;
    match url.scheme.as_str() {
        "https" => Ok(()),
        "http" if LOOPBACK_HOSTS.contains(&url.host.as_str()) => Ok(()),
        "http" => Err("jwks_url must be https (plain http only on 127.0.0.1, localhost or [::1])"),
        _ => Err("jwks_url is not an https URL"),
    }
}

/// `"tenants": "*"` or a non-empty list of tenant UUIDs.
fn tenants(value: Option<&Value>) -> Result<TenantScope, &'static str> {
    const EXPECTED: &str = r#"tenants must be a non-empty list of tenant UUIDs, or "*" for all"#;
    match value {
        None => Err(r#"tenants is required (a list of tenant UUIDs, or "*" for all)"#),
        Some(Value::String(all)) if all == "*" => Ok(TenantScope::Any),
        Some(Value::Array(list)) if !list.is_empty() => {
            let mut tenants: Vec<TenantId> = Vec::with_capacity(list.len());
            for item in list {
                let tenant = item
                    .as_str()
                    .and_then(|text| TenantId::parse(text).ok())
                    .ok_or(EXPECTED)?;
                if !tenants.contains(&tenant) {
                    tenants.push(tenant);
                }
            }
            Ok(TenantScope::Only(tenants))
        }
        Some(_) => Err(EXPECTED),
    }
}

/// The HS256 secret, when HS256 is enabled: unset or empty disables it.
///
/// # Errors
///
/// A reason for the log when the secret is shorter than
/// [`MIN_HS256_SECRET_BYTES`] (its UTF-8 bytes).
pub(crate) fn hs256_secret(secret: Option<&str>) -> Result<Option<&str>, &'static str> {
    match secret {
        None | Some("") => Ok(None),
        Some(secret) if secret.len() < MIN_HS256_SECRET_BYTES => {
            Err("AUTH_HS256_SECRET is shorter than 32 bytes")
        }
        Some(secret) => Ok(Some(secret)),
    }
}

/// The verifier a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verifier<'a> {
    /// HS256 with the deployment's secret.
    Hs256,
    /// The named realm's JWKS.
    Realm(&'a str, &'a Realm),
}

/// Why no verifier applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SelectError {
    /// The `realmname` header names no configured realm (a 401).
    UnknownRealm,
    /// `AUTH_DEFAULT_REALM` names no configured realm (a 500, whatever
    /// the request).
    UnknownDefaultRealm,
}

/// Picks the verifier for a request; see the module table.
pub(crate) fn select<'a>(
    realm_header: Option<&'a str>,
    default_realm: &'a str,
    realms: &'a Realms,
) -> Result<Verifier<'a>, SelectError> {
    let default_name = default_realm.trim();
    if !default_name.is_empty() && realms.get(default_name).is_none() {
        return Err(SelectError::UnknownDefaultRealm);
    }
    match realm_header.map(str::trim).filter(|name| !name.is_empty()) {
        Some(name) => realms
            .get(name)
            .map(|realm| Verifier::Realm(name, realm))
            .ok_or(SelectError::UnknownRealm),
        None if default_name.is_empty() => Ok(Verifier::Hs256),
        None => realms
            .get(default_name)
            .map(|realm| Verifier::Realm(default_name, realm))
            .ok_or(SelectError::UnknownDefaultRealm),
    }
}

#[cfg(test)]
mod tests {
    use coffer_core::{TenantId, TenantScope};

    use super::{hs256_secret, select, Realms, SelectError, Verifier};

    const ACME_TENANT: &str = "550e8400-e29b-41d4-a716-446655440001";
    const BETA_TENANT: &str = "550e8400-e29b-41d4-a716-446655440002";

    const REALMS: &str = r#"{
        "acme": {"issuer": "https://idp.example.com/realms/acme", "jwks_url": "https://idp.example.com/realms/acme/protocol/openid-connect/certs", "audience": "coffer", "tenants": ["550e8400-e29b-41d4-a716-446655440001", "550E8400-E29B-41D4-A716-446655440001"]},
        "beta": {"jwks_url": "http://127.0.0.1:9/jwks", "issuer": "https://beta.example.com", "audience": "coffer", "tenants": "*"}
    }"#;

    fn tenant(text: &str) -> TenantId {
        TenantId::parse(text).expect("uuid")
    }

    #[test]
    fn realms_are_listed_in_name_order_whatever_the_json_order() {
        let entry = r#"{"issuer": "https://idp.example.com", "jwks_url": "https://idp.example.com/jwks", "audience": "coffer", "tenants": "*"}"#;
        let json = format!(r#"{{"zeta": {entry}, "acme": {entry}, "mid": {entry}}}"#);
        let realms = Realms::parse(&json).expect("valid realms");
        let names: Vec<&str> = realms.sorted().into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["acme", "mid", "zeta"]);
        assert!(realms.get("mid").is_some());
        assert!(realms.get("other").is_none());
    }

    #[test]
    fn realms_parse() {
        let realms = Realms::parse(REALMS).expect("valid realms");
        let acme = realms.get("acme").expect("acme");
        assert_eq!(acme.audience, "coffer");
        assert_eq!(acme.tenants, TenantScope::Only(vec![tenant(ACME_TENANT)]));
        assert!(!acme.tenants.permits(tenant(BETA_TENANT)));
        let beta = realms.get("beta").expect("beta");
        assert_eq!(beta.issuer, "https://beta.example.com");
        assert_eq!(beta.tenants, TenantScope::Any);
        assert_eq!(Realms::parse("").expect("empty"), Realms::default());
        assert_eq!(
            Realms::parse("{}").expect("empty object"),
            Realms::default()
        );
    }

    /// One realm `{"r": <entry>}` per row: the field a rule is about, and
    /// whether the entry is accepted.
    #[test]
    fn realm_rules() {
        const URL: &str = r#""jwks_url": "https://idp.example.com/jwks""#;
        const REST: &str = r#""issuer": "https://idp.example.com", "audience": "coffer""#;
        const ALL: &str = r#""tenants": "*""#;
        let entry = |fields: &[&str]| format!(r#"{{"r": {{{}}}}}"#, fields.join(", "));
        let with_url = |url: &str| entry(&[&format!(r#""jwks_url": "{url}""#), REST, ALL]);
        let with_tenants = |tenants: &str| entry(&[URL, REST, &format!(r#""tenants": {tenants}"#)]);
        let cases: Vec<(&str, String, Result<(), &str>)> = vec![
            ("complete", entry(&[URL, REST, ALL]), Ok(())),
            (
                "no tenants",
                entry(&[URL, REST]),
                Err("tenants is required"),
            ),
            (
                "null tenants",
                with_tenants("null"),
                Err("tenants is required"),
            ),
            ("empty tenants", with_tenants("[]"), Err("tenants must be")),
            (
                "tenants not UUIDs",
                with_tenants(r#"["acme"]"#),
                Err("tenants must be"),
            ),
            (
                "tenants mixed",
                with_tenants(&format!(r#"["{ACME_TENANT}", 7]"#)),
                Err("tenants must be"),
            ),
            (
                "tenants a UUID, not a list",
                with_tenants(&format!(r#""{ACME_TENANT}""#)),
                Err("tenants must be"),
            ),
            (
                "tenants some other word",
                with_tenants(r#""all""#),
                Err("tenants must be"),
            ),
            (
                "tenants a list holding *",
                with_tenants(r#"["*"]"#),
                Err("tenants must be"),
            ),
            (
                "tenants listed",
                with_tenants(&format!(r#"["{ACME_TENANT}", "{BETA_TENANT}"]"#)),
                Ok(()),
            ),
            (
                "no audience",
                entry(&[URL, r#""issuer": "https://idp.example.com""#, ALL]),
                Err("audience is required"),
            ),
            (
                "empty audience",
                entry(&[
                    URL,
                    r#""issuer": "https://idp.example.com", "audience": """#,
                    ALL,
                ]),
                Err("audience is required"),
            ),
            (
                "no issuer",
                entry(&[URL, r#""audience": "coffer""#, ALL]),
                Err("issuer is required"),
            ),
            (
                "blank issuer",
                entry(&[URL, r#""issuer": " ", "audience": "coffer""#, ALL]),
                Err("issuer is required"),
            ),
            (
                "no jwks_url",
                entry(&[REST, ALL]),
                Err("jwks_url is required"),
            ),
            (
                "http on 127.0.0.1",
                with_url("http://127.0.0.1:8080/jwks"),
                Ok(()),
            ),
            (
                "http on localhost",
                with_url("http://localhost/jwks"),
                Ok(()),
            ),
            (
                "http on LOCALHOST",
                with_url("http://LOCALHOST:9/jwks"),
                Ok(()),
            ),
            ("http on [::1]", with_url("http://[::1]:9/jwks"), Ok(())),
            (
                "http elsewhere",
                with_url("http://idp.example.com/jwks"),
                Err("jwks_url must be https"),
            ),
            (
                "http on 127.0.0.2",
                with_url("http://127.0.0.2/jwks"),
                Err("jwks_url must be https"),
            ),
            (
                "http on localhost.example.com",
                with_url("http://localhost.example.com/jwks"),
                Err("jwks_url must be https"),
            ),
            (
                "http on 0.0.0.0",
                with_url("http://0.0.0.0/jwks"),
                Err("jwks_url must be https"),
            ),
            (
                "not a URL",
                with_url("not a url"),
                Err("jwks_url is not a URL"),
            ),
            (
                "file URL",
                with_url("file:///etc/passwd"),
                Err("jwks_url is not an https URL"),
            ),
            (
                "ftp URL",
                with_url("ftp://idp.example.com/jwks"),
                Err("jwks_url is not an https URL"),
            ),
            (
                "unknown field",
                entry(&[URL, REST, ALL, r#""jwks_uri": "typo""#]),
                Err("not a JSON object"),
            ),
            (
                "an issuer alone",
                r#"{"a": {"issuer": "x"}}"#.to_owned(),
                Err("is required"),
            ),
            (
                "a console client",
                entry(&[URL, REST, ALL, r#""console_client_id": "coffer-console""#]),
                Ok(()),
            ),
            (
                "an empty console client",
                entry(&[URL, REST, ALL, r#""console_client_id": " ""#]),
                Err("console_client_id must not be empty"),
            ),
            (
                "a console client of a plain-http issuer",
                entry(&[
                    URL,
                    r#""issuer": "http://idp.example.com", "audience": "coffer""#,
                    ALL,
                    r#""console_client_id": "coffer-console""#,
                ]),
                Err("issuer must be an https URL"),
            ),
            (
                "a console client of a loopback issuer",
                entry(&[
                    URL,
                    r#""issuer": "http://127.0.0.1:9/realms/a", "audience": "coffer""#,
                    ALL,
                    r#""console_client_id": "coffer-console""#,
                ]),
                Ok(()),
            ),
            ("not json", "not json".to_owned(), Err("not a JSON object")),
            ("an array", "[]".to_owned(), Err("not a JSON object")),
        ];
        for (case, json, expected) in cases {
            match (Realms::parse(&json), expected) {
                (Ok(_), Ok(())) => {}
                (Err(reason), Err(wanted)) => {
                    assert!(
                        reason.contains(wanted),
                        "{case}: {reason:?} should say {wanted:?}"
                    );
                }
                (got, _) => panic!("{case}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn a_broken_realm_is_named_in_the_reason() {
        let reason = Realms::parse(r#"{"partner-idp": {"jwks_url": "https://idp.example.com/jwks", "issuer": "i", "audience": "a"}}"#)
            .expect_err("no tenants");
        assert_eq!(
            reason,
            r#"AUTH_REALMS realm "partner-idp": tenants is required (a list of tenant UUIDs, or "*" for all)"#
        );
    }

    /// RFC 7518 §3.2: at least 32 bytes, counted as the UTF-8 bytes of the
    /// value (the HMAC key).
    #[test]
    fn hs256_secrets_shorter_than_32_bytes_are_refused() {
        let thirty_one = "a".repeat(31);
        let thirty_two = "a".repeat(32);
        // 16 characters, 32 bytes; 15 characters, 30 bytes.
        let wide = "é".repeat(16);
        let narrow = "é".repeat(15);
        type Expected<'a> = Result<Option<&'a str>, ()>;
        let cases: Vec<(Option<&str>, Expected<'_>)> = vec![
            (None, Ok(None)),
            (Some(""), Ok(None)),
            (Some("short"), Err(())),
            (Some(&thirty_one), Err(())),
            (Some(&thirty_two), Ok(Some(&thirty_two))),
            (Some(&wide), Ok(Some(&wide))),
            (Some(&narrow), Err(())),
        ];
        for (secret, expected) in cases {
            assert_eq!(hs256_secret(secret).map_err(|_| ()), expected, "{secret:?}");
        }
    }

    #[test]
    fn verifier_selection() {
        let realms = Realms::parse(REALMS).expect("valid realms");
        let acme = realms.get("acme").expect("acme");
        let beta = realms.get("beta").expect("beta");
        let cases = [
            (None, "", Ok(Verifier::Hs256)),
            (Some(""), "", Ok(Verifier::Hs256)),
            (Some("acme"), "", Ok(Verifier::Realm("acme", acme))),
            (Some("acme"), "beta", Ok(Verifier::Realm("acme", acme))),
            (None, "beta", Ok(Verifier::Realm("beta", beta))),
            (Some("nope"), "", Err(SelectError::UnknownRealm)),
            (Some("nope"), "beta", Err(SelectError::UnknownRealm)),
            (None, "nope", Err(SelectError::UnknownDefaultRealm)),
            // A broken default fails every request, not only those without
            // a realm header.
            (Some("acme"), "nope", Err(SelectError::UnknownDefaultRealm)),
            (Some("nope"), "nope", Err(SelectError::UnknownDefaultRealm)),
        ];
        for (header, default, expected) in cases {
            assert_eq!(
                select(header, default, &realms),
                expected,
                "{header:?} / {default:?}"
            );
        }
    }
}
