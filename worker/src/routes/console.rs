//! The Coffer Console's page and its sign-in configuration. The console's
//! scripts and styles are Workers static assets (`console/dist`, with the
//! headers of `console/_headers`); its page is answered here because its
//! `Content-Security-Policy` names the origins of the identity providers
//! that `AUTH_REALMS` configures for console sign-in (`console_client_id`),
//! which only the Worker knows at run time.
use serde_json::json;
use worker::Url;

use crate::{
    auth,
    context::{Ctx, Reply},
    error::ApiError,
};

/// The page: a shell that loads `/console/app.js` (no inline script).
const PAGE: &str = include_str!("../../../console/index.html");

/// The policy of the page, before `connect-src`'s identity providers.
/// `form-action 'none'`: the console's forms are handled by its script and
/// never submitted; the IdP is reached by a top-level navigation.
const POLICY: [&str; 7] = [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
];

/// A realm that offers console sign-in.
struct ConsoleRealm {
    name: String,
    issuer: String,
    /// The issuer's origin (`scheme://host[:port]`): the console fetches
    /// the discovery document and the token endpoint from it.
    origin: String,
    client_id: String,
    audience: String,
}

/// The realms whose entry names a `console_client_id`, in name order. A
/// broken `AUTH_REALMS` offers none (the API answers 500 to every
/// authenticated request and logs why).
fn console_realms(ctx: &Ctx) -> Vec<ConsoleRealm> {
    let Ok(realms) = auth::realms(&ctx.env) else {
        return Vec::new();
    };
    realms
        .sorted()
        .into_iter()
        .filter_map(|(name, realm)| {
            let client_id = realm.console_client_id.clone()?;
            let origin = Url::parse(&realm.issuer)
                .ok()?
                .origin()
                .ascii_serialization();
            Some(ConsoleRealm {
                name: name.to_owned(),
                issuer: realm.issuer.clone(),
                origin,
                client_id,
                audience: realm.audience.clone(),
            })
        })
        .collect()
}

/// The page's `Content-Security-Policy`: [`POLICY`] with `connect-src`
/// naming the page's own origin and the console realms' issuers.
fn policy(realms: &[ConsoleRealm]) -> String {
    let mut connect = vec!["'self'"];
    for realm in realms {
        if !connect.contains(&realm.origin.as_str()) {
            connect.push(&realm.origin);
        }
    }
    let mut directives: Vec<String> = POLICY.iter().map(|d| (*d).to_owned()).collect();
    directives.insert(4, format!("connect-src {}", connect.join(" ")));
    directives.join("; ")
}

/// `GET /console/`: the console's page.
pub(crate) fn page(ctx: &Ctx) -> Result<Reply, ApiError> {
    Ok(Reply::page(PAGE)
        .header("content-security-policy", policy(&console_realms(ctx)))
        .header("x-content-type-options", "nosniff".into())
        .header("referrer-policy", "no-referrer".into())
        .header("x-frame-options", "DENY".into()))
}

/// `GET /console`: to the page, whose relative URLs need the slash.
pub(crate) fn redirect() -> Result<Reply, ApiError> {
    Ok(Reply::no_content()
        .status(308)
        .header("location", "/console/".into()))
}

/// `GET /console/config.json`: the realms that offer console sign-in, with
/// what a public OpenID Connect client needs and nothing secret.
pub(crate) fn config(ctx: &Ctx) -> Result<Reply, ApiError> {
    let realms: Vec<_> = console_realms(ctx)
        .into_iter()
        .map(|realm| {
            json!({
                "name": realm.name,
                "issuer": realm.issuer,
                "clientId": realm.client_id,
                "audience": realm.audience,
            })
        })
        .collect();
    Ok(Reply::ok(json!({ "realms": realms })))
}

#[cfg(test)]
mod tests {
    use super::{policy, ConsoleRealm, PAGE, POLICY};

    fn realm(name: &str, origin: &str) -> ConsoleRealm {
        ConsoleRealm {
            name: name.into(),
            issuer: format!("{origin}/realms/{name}"),
            origin: origin.into(),
            client_id: "coffer-console".into(),
            audience: "coffer".into(),
        }
    }

    #[test]
    fn connect_src_names_each_issuer_origin_once() {
        assert_eq!(
            policy(&[]),
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        );
        let realms = [
            realm("a", "https://idp.example.com"),
            realm("b", "https://idp.example.com"),
            realm("c", "http://127.0.0.1:9000"),
        ];
        assert!(policy(&realms)
            .contains("connect-src 'self' https://idp.example.com http://127.0.0.1:9000;"));
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        assert!(PAGE.contains(r#"<script type="module" src="/console/app.js"></script>"#));
        assert_eq!(PAGE.matches("<script").count(), 1);
        assert!(!PAGE.contains("<style"));
        assert!(!PAGE.contains(" style="));
        assert!(!PAGE.contains("onload=") && !PAGE.contains("onerror="));
    }

    #[test]
    fn the_policy_allows_no_inline_script_and_no_framing() {
        assert!(POLICY.contains(&"script-src 'self'"));
        assert!(POLICY.contains(&"frame-ancestors 'none'"));
        assert!(!POLICY.iter().any(|d| d.contains("unsafe")));
    }
}
