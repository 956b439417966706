//! The deployment's identity configuration and which verifier a request
//! gets. Pure: the caller reads the variables and headers.
//!
//! Which verifier applies:
//!
//! | `realmname` header | `AUTH_DEFAULT_REALM` | verifier                          |
//! |--------------------|----------------------|-----------------------------------|
//! | a configured realm | any                  | that realm's JWKS                 |
//! | an unknown realm   | any                  | none: 401                         |
//! | absent or empty    | a configured realm   | that realm's JWKS                 |
//! | absent or empty    | empty                | HS256 with `AUTH_HS256_SECRET`    |
//! | absent or empty    | an unknown realm     | none: 500 (misconfigured)         |
//!
//! A realm never falls back to HS256, and HS256 never falls back to a
//! realm: the configuration, not the token, picks the key.
use std::collections::HashMap;

use serde::Deserialize;

/// One identity provider's realm, as configured in `AUTH_REALMS`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Realm {
    /// The `iss` its tokens must carry; unchecked when absent or empty.
    #[serde(default)]
    pub(crate) issuer: Option<String>,
    /// Where its JWKS is published (`http` or `https`).
    pub(crate) jwks_url: String,
    /// An audience its tokens' `aud` must name; unchecked when absent or empty.
    #[serde(default)]
    pub(crate) audience: Option<String>,
}

/// `AUTH_REALMS`: realm name → realm.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Realms(HashMap<String, Realm>);

impl Realms {
    /// Parses `AUTH_REALMS`; an empty value means no realms.
    pub(crate) fn parse(json: &str) -> Result<Self, &'static str> {
        if json.trim().is_empty() {
            return Ok(Self::default());
        }
        let realms: HashMap<String, Realm> = serde_json::from_str(json).map_err(|_| {
            "AUTH_REALMS is not a JSON object of realms {issuer, jwks_url, audience}"
        })?;
        for realm in realms.values() {
            let url = worker::Url::parse(&realm.jwks_url)
                .map_err(|_| "AUTH_REALMS has a jwks_url that is not a URL")?;
            if !matches!(url.scheme(), "https" | "http") {
                return Err("AUTH_REALMS has a jwks_url that is not http(s)");
            }
        }
        let realms = realms
            .into_iter()
            .map(|(name, realm)| {
                let realm = Realm {
                    issuer: realm.issuer.filter(|issuer| !issuer.is_empty()),
                    audience: realm.audience.filter(|audience| !audience.is_empty()),
                    ..realm
                };
                (name, realm)
            })
            .collect();
        Ok(Self(realms))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Realm> {
        self.0.get(name)
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
    /// `AUTH_DEFAULT_REALM` names no configured realm (a 500).
    UnknownDefaultRealm,
}

/// Picks the verifier for a request; see the module table.
pub(crate) fn select<'a>(
    realm_header: Option<&'a str>,
    default_realm: &'a str,
    realms: &'a Realms,
) -> Result<Verifier<'a>, SelectError> {
    match realm_header.map(str::trim).filter(|name| !name.is_empty()) {
        Some(name) => realms
            .get(name)
            .map(|realm| Verifier::Realm(name, realm))
            .ok_or(SelectError::UnknownRealm),
        None if default_realm.trim().is_empty() => Ok(Verifier::Hs256),
        None => {
            let name = default_realm.trim();
            realms
                .get(name)
                .map(|realm| Verifier::Realm(name, realm))
                .ok_or(SelectError::UnknownDefaultRealm)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{select, Realms, SelectError, Verifier};

    const REALMS: &str = r#"{
        "acme": {"issuer": "https://idp.example.com/realms/acme", "jwks_url": "https://idp.example.com/realms/acme/protocol/openid-connect/certs", "audience": "coffer"},
        "beta": {"jwks_url": "http://127.0.0.1:9/jwks", "issuer": ""}
    }"#;

    #[test]
    fn realms_parse_and_empty_strings_mean_unchecked() {
        let realms = Realms::parse(REALMS).expect("valid realms");
        let beta = realms.get("beta").expect("beta");
        assert_eq!(beta.issuer, None);
        assert_eq!(beta.audience, None);
        assert_eq!(
            realms.get("acme").and_then(|r| r.audience.as_deref()),
            Some("coffer")
        );
        assert_eq!(Realms::parse("").expect("empty"), Realms::default());
        assert_eq!(
            Realms::parse("{}").expect("empty object"),
            Realms::default()
        );
    }

    #[test]
    fn broken_realm_configs_are_refused() {
        for broken in [
            "not json",
            "[]",
            r#"{"a": {"issuer": "x"}}"#,
            r#"{"a": {"jwks_url": "not a url"}}"#,
            r#"{"a": {"jwks_url": "file:///etc/passwd"}}"#,
            r#"{"a": {"jwks_url": "https://x.example.com", "jwks_uri": "typo"}}"#,
        ] {
            assert!(Realms::parse(broken).is_err(), "{broken}");
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
