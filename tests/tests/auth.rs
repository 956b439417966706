//! Authentication through a real `wrangler dev`: HS256, realms backed by a
//! stand-in IdP's JWKS (RS256, ES256, EdDSA), the attacks that must fail,
//! key rotation, and the JWKS cache through an IdP outage.
//!
//! Every scenario has its own realm (its own JWKS path), so the tests run
//! in parallel against one server without seeing each other's cache state.
//! Two routes tell accepted from refused without storing anything:
//! `GET /connection/{random}/credentials` answers 404 for a good token, and
//! `GET /api/v1/credentials/some-integration/details` answers 404
//! `CREDENTIAL_NOT_FOUND` for a good token.
use core::time::Duration;
use std::{
    sync::{Mutex, OnceLock},
    thread,
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use coffer_tests::{
    client::{Api, Reply},
    fixtures::{self, TokenBuilder},
    harness::Server,
    idp::{Idp, Key},
};
use jwt_compact::{
    alg::{Hs256, Hs256Key},
    AlgorithmExt as _, Claims, Header,
};
use serde_json::{json, Value};
use uuid::Uuid;

const UNAUTHENTICATED: &str = "Authentication header is missing, or token is invalid/expired.";
const HS256_ISSUER: &str = "https://coffer.test/hs256";
const AUDIENCE: &str = "coffer";

/// The stand-in IdPs, their keys, and the server configured with their realms.
struct World {
    idp: Idp,
    outage_idp: Mutex<Idp>,
    main: [Key; 3],
    other: Key,
    rotation: [Key; 2],
    unknown_kid: Key,
    outage: Key,
    server: Server,
}

fn issuer(realm: &str) -> String {
    format!("https://idp.test/{realm}")
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let idp = Idp::start();
        let outage_idp = Idp::start();
        let main = [Key::rsa("main-rsa", 0), Key::es256("main-ec"), Key::eddsa("main-ed")];
        let other = Key::rsa("other-rsa", 1);
        let rotation = [Key::es256("rot-1"), Key::eddsa("rot-2")];
        let unknown_kid = Key::eddsa("uk-1");
        let outage = Key::eddsa("out-1");
        idp.publish("/main", &[&main[0], &main[1], &main[2]], Some("max-age=600"));
        idp.publish("/other", &[&other], None);
        idp.publish("/rotation", &[&rotation[0]], None);
        idp.publish("/unknown-kid", &[&unknown_kid], None);
        // Asks for 1 s; the worker clamps it to its 10 s minimum.
        outage_idp.publish("/outage", &[&outage], Some("public, max-age=1"));

        let realm = |name: &str, url: String| {
            json!({"issuer": issuer(name), "jwks_url": url, "audience": AUDIENCE})
        };
        let realms = json!({
            "main": realm("main", idp.url("/main")),
            "other": realm("other", idp.url("/other")),
            "rotation": realm("rotation", idp.url("/rotation")),
            "unknown-kid": realm("unknown-kid", idp.url("/unknown-kid")),
            "outage": realm("outage", outage_idp.url("/outage")),
        })
        .to_string();
        let server = Server::start(&[
            ("AUTH_REALMS", &realms),
            ("AUTH_ISSUER", HS256_ISSUER),
            ("AUTH_AUDIENCE", AUDIENCE),
        ]);
        World {
            idp,
            outage_idp: Mutex::new(outage_idp),
            main,
            other,
            rotation,
            unknown_kid,
            outage,
            server,
        }
    })
}

/// Valid claims for a realm's tokens.
fn realm_claims(realm: &str, tenant: Uuid) -> TokenBuilder {
    TokenBuilder::new(tenant, "integration_viewer")
        .claim("iss", json!(issuer(realm)))
        .claim("aud", json!([AUDIENCE, "account"]))
}

/// Valid claims for HS256 tokens on the main server.
fn hs_claims(tenant: Uuid) -> TokenBuilder {
    TokenBuilder::new(tenant, "integration_viewer")
        .claim("iss", json!(HS256_ISSUER))
        .claim("aud", json!(AUDIENCE))
}

fn b64(json: &Value) -> String {
    URL_SAFE_NO_PAD.encode(json.to_string())
}

fn api<'s>(server: &'s Server, token: Option<&str>, realm: Option<&str>) -> Api<'s> {
    let mut api = Api::anonymous(server);
    if let Some(token) = token {
        api = api.token(token);
    }
    if let Some(realm) = realm {
        api = api.header("realmname", realm);
    }
    api
}

fn connection(server: &Server, token: Option<&str>, realm: Option<&str>) -> Reply {
    api(server, token, realm).get(&format!("/connection/{}/credentials", Uuid::new_v4()))
}

fn details(server: &Server, token: Option<&str>, realm: Option<&str>, tenant: Uuid) -> Reply {
    api(server, token, realm)
        .header("x-tenantid", tenant.to_string())
        .get("/api/v1/credentials/some-integration/details")
}

/// Both surfaces accept the token.
#[track_caller]
fn assert_accepted(server: &Server, token: &str, realm: Option<&str>, tenant: Uuid, case: &str) {
    let reply = connection(server, Some(token), realm);
    assert_eq!(
        reply.status, 404,
        "{case}: connection surface: {}",
        reply.text
    );
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .is_some_and(|message| message.starts_with("Connection with ID")),
        "{case}: {}",
        reply.text
    );
    let reply = details(server, Some(token), realm, tenant);
    assert_eq!(
        reply.status, 404,
        "{case}: credentials surface: {}",
        reply.text
    );
    assert_eq!(
        reply.body["error"]["code"], "CREDENTIAL_NOT_FOUND",
        "{case}"
    );
}

/// Both surfaces refuse the token: 401 (or 400 `Invalid JWT format` on the
/// connection surface when `not_a_jwt`), 401 `AUTHENTICATION_FAILED` on the
/// credentials surface.
#[track_caller]
fn assert_refused(
    server: &Server,
    token: Option<&str>,
    realm: Option<&str>,
    not_a_jwt: bool,
    case: &str,
) {
    let reply = connection(server, token, realm);
    let (status, message) = if not_a_jwt {
        (400, "Invalid JWT format")
    } else {
        (401, UNAUTHENTICATED)
    };
    assert_eq!(
        reply.status, status,
        "{case}: connection surface: {}",
        reply.text
    );
    assert_eq!(
        reply.body,
        json!({"error": {"code": status, "message": message}}),
        "{case}"
    );
    let reply = details(server, token, realm, Uuid::new_v4());
    assert_eq!(
        reply.status, 401,
        "{case}: credentials surface: {}",
        reply.text
    );
    assert_eq!(
        reply.body["error"]["code"], "AUTHENTICATION_FAILED",
        "{case}"
    );
}

#[test]
fn every_algorithm_is_accepted_with_its_key() {
    let world = world();
    let tenant = fixtures::tenant();
    for key in &world.main {
        let token = key.sign(&realm_claims("main", tenant).claims());
        assert_accepted(&world.server, &token, Some("main"), tenant, key.algorithm());
    }
    let token = hs_claims(tenant).sign();
    assert_accepted(&world.server, &token, None, tenant, "HS256");
    // Keycloak's roles and claims that other IdPs add are fine too.
    let keycloak = realm_claims("main", tenant)
        .without("roles")
        .claim(
            "realm_access",
            json!({"roles": ["offline_access", "integration_user"]}),
        )
        .claim("azp", json!("coffer-cli"))
        .claim("exp", json!(fixtures::now() as f64 + 300.5));
    let token = world.main[0].sign(&keycloak.claims());
    assert_accepted(
        &world.server,
        &token,
        Some("main"),
        tenant,
        "Keycloak-shaped token",
    );
}

#[test]
fn attacks_are_refused() {
    let world = world();
    let server = &world.server;
    let tenant = fixtures::tenant();
    let now = fixtures::now();
    let [rsa, ec, ed] = &world.main;
    let realm = |claims: TokenBuilder| ec.sign(&claims.claims());
    let good = realm_claims("main", tenant);

    // The HS/RS confusion: an HS256 token whose HMAC key is the realm's
    // public key as published, naming the realm's RSA kid.
    let confused = Hs256
        .token(
            &Header::empty().with_key_id("main-rsa"),
            &Claims::new(good.claims()),
            &Hs256Key::new(rsa.public_jwk().to_string().as_bytes()),
        )
        .expect("sign");
    let mut altered: Vec<String> = rsa
        .sign(&good.claims())
        .split('.')
        .map(str::to_owned)
        .collect();
    altered[1] = b64(&good
        .clone()
        .claim("tenant_id", json!(Uuid::new_v4().to_string()))
        .claims());
    let altered = altered.join(".");
    let none_header = b64(&json!({"alg": "none", "typ": "JWT"}));
    let none_payload = b64(&good.claims());

    let cases: Vec<(&str, Option<String>, Option<&str>, bool)> = vec![
        ("no Authorization header", None, None, false),
        (
            "expired HS256",
            Some(hs_claims(tenant).claim("exp", json!(now - 3600)).sign()),
            None,
            false,
        ),
        (
            "expired realm token",
            Some(realm(good.clone().claim("exp", json!(now - 3600)))),
            Some("main"),
            false,
        ),
        (
            "nbf in the future",
            Some(realm(good.clone().claim("nbf", json!(now + 3600)))),
            Some("main"),
            false,
        ),
        (
            "iat in the future",
            Some(realm(good.clone().claim("iat", json!(now + 3600)))),
            Some("main"),
            false,
        ),
        (
            "wrong HS256 secret",
            Some(hs_claims(tenant).sign_with("not-the-secret-not-the-secret-0000")),
            None,
            false,
        ),
        (
            "alg none, empty signature",
            Some(format!("{none_header}.{none_payload}.")),
            None,
            true,
        ),
        (
            "alg none, empty signature, realm",
            Some(format!("{none_header}.{none_payload}.")),
            Some("main"),
            true,
        ),
        (
            "alg none with a signature",
            Some(format!("{none_header}.{none_payload}.AAAA")),
            None,
            false,
        ),
        (
            "alg none with a signature, realm",
            Some(format!("{none_header}.{none_payload}.AAAA")),
            Some("main"),
            false,
        ),
        (
            "HS256 keyed with the realm's public key",
            Some(confused.clone()),
            Some("main"),
            false,
        ),
        (
            "HS256 keyed with the realm's public key, no realm",
            Some(confused),
            None,
            false,
        ),
        ("altered payload", Some(altered), Some("main"), false),
        (
            "missing exp",
            Some(realm(good.clone().without("exp"))),
            Some("main"),
            false,
        ),
        (
            "missing sub",
            Some(realm(good.clone().without("sub"))),
            Some("main"),
            false,
        ),
        (
            "missing tenant_id",
            Some(realm(good.clone().without("tenant_id"))),
            Some("main"),
            false,
        ),
        (
            "tenant_id not a UUID",
            Some(realm(good.clone().claim("tenant_id", json!("acme")))),
            Some("main"),
            false,
        ),
        (
            "tenants with junk",
            Some(realm(good.clone().claim("tenants", json!(["junk"])))),
            Some("main"),
            false,
        ),
        (
            "wrong iss",
            Some(realm(good.clone().claim("iss", json!(issuer("other"))))),
            Some("main"),
            false,
        ),
        (
            "missing iss",
            Some(realm(good.clone().without("iss"))),
            Some("main"),
            false,
        ),
        (
            "wrong aud",
            Some(realm(good.clone().claim("aud", json!("someone-else")))),
            Some("main"),
            false,
        ),
        (
            "HS256 wrong iss",
            Some(
                hs_claims(tenant)
                    .claim("iss", json!("https://evil.test"))
                    .sign(),
            ),
            None,
            false,
        ),
        (
            "HS256 wrong aud",
            Some(hs_claims(tenant).claim("aud", json!(["evil"])).sign()),
            None,
            false,
        ),
        (
            "unknown kid",
            Some(ed.sign_as("ghost", &good.claims())),
            Some("main"),
            false,
        ),
        (
            "kid of another realm",
            Some(world.other.sign(&realm_claims("main", tenant).claims())),
            Some("main"),
            false,
        ),
        (
            "another realm's key under this realm's kid",
            Some(world.other.sign_as("main-rsa", &good.claims())),
            Some("main"),
            false,
        ),
        (
            "realm token without kid",
            Some(rsa.sign_without_kid(&good.claims())),
            Some("main"),
            false,
        ),
        (
            "realm token with an empty kid",
            Some(rsa.sign_as("", &good.claims())),
            Some("main"),
            false,
        ),
        (
            "unknown realm",
            Some(realm(good.clone())),
            Some("nope"),
            false,
        ),
        (
            "realm token without realmname",
            Some(realm(good.clone())),
            None,
            false,
        ),
        (
            "HS256 token with a realm",
            Some(hs_claims(tenant).sign()),
            Some("main"),
            false,
        ),
        ("not a JWT", Some("definitely-not-a-jwt".into()), None, true),
        (
            "two segments",
            Some(format!("{none_header}.{none_payload}")),
            None,
            true,
        ),
        (
            "header not an object",
            Some(format!("{}.{none_payload}.AAAA", b64(&json!(["RS256"])))),
            None,
            true,
        ),
        (
            "padding in a segment",
            Some(format!("{none_header}.{none_payload}.AAAA==")),
            None,
            true,
        ),
    ];
    let mut tokens = Vec::new();
    for (case, token, realm, not_a_jwt) in &cases {
        assert_refused(server, token.as_deref(), *realm, *not_a_jwt, case);
        tokens.extend(token.clone());
    }
    // The same tenant's good token still works: the refusals were about the tokens.
    assert_accepted(
        server,
        &realm(good.clone()),
        Some("main"),
        tenant,
        "control",
    );

    // Each refusal was for its own reason (the reasons go to the log only).
    let log = server.log();
    for reason in [
        "token expired",
        "token not yet valid (nbf)",
        "token issued in the future (iat)",
        "bad signature",
        "token alg does not match the key's algorithm",
        "alg not accepted for realm tokens",
        "missing exp",
        "missing sub",
        "missing tenant_id",
        "tenant_id is not a UUID",
        "tenants holds a value that is not a UUID",
        "wrong issuer",
        "wrong audience",
        "unknown kid",
        "realm token without kid",
        "unknown realm",
    ] {
        assert!(log.contains(reason), "no refusal logged as {reason:?}");
    }
    for token in tokens.iter().filter(|token| token.len() > 40) {
        let signature = token.rsplit('.').next().unwrap_or(token);
        assert!(
            signature.len() < 8 || !log.contains(signature),
            "the server log holds a token"
        );
    }
}

#[test]
fn key_rotation_at_the_idp_is_picked_up_without_a_restart() {
    let world = world();
    let tenant = fixtures::tenant();
    let claims = realm_claims("rotation", tenant).claims();
    let [old, new] = &world.rotation;

    assert_accepted(
        &world.server,
        &old.sign(&claims),
        Some("rotation"),
        tenant,
        "old key",
    );
    assert_eq!(world.idp.fetches("/rotation"), 1);

    // The IdP publishes a new key; the first token naming it triggers this
    // realm's first unknown-kid refetch.
    world.idp.publish("/rotation", &[old, new], None);
    assert_accepted(
        &world.server,
        &new.sign(&claims),
        Some("rotation"),
        tenant,
        "new key",
    );
    assert_eq!(world.idp.fetches("/rotation"), 2);
    assert_accepted(
        &world.server,
        &old.sign(&claims),
        Some("rotation"),
        tenant,
        "old key after rotation",
    );
    assert_eq!(
        world.idp.fetches("/rotation"),
        2,
        "known kids need no fetch"
    );
}

#[test]
fn unknown_kids_refetch_at_most_once_a_minute() {
    let world = world();
    let tenant = fixtures::tenant();
    let claims = realm_claims("unknown-kid", tenant).claims();
    let key = &world.unknown_kid;
    let ghost = key.sign_as("ghost", &claims);
    for attempt in 0..3 {
        assert_refused(
            &world.server,
            Some(&ghost),
            Some("unknown-kid"),
            false,
            &format!("ghost #{attempt}"),
        );
    }
    // The first fetch filled the cache; the second was the one refetch for
    // an unknown kid; every later one waits for the minute to pass.
    assert_eq!(world.idp.fetches("/unknown-kid"), 2);

    let late = Key::eddsa("late");
    world.idp.publish("/unknown-kid", &[key, &late], None);
    assert_refused(
        &world.server,
        Some(&late.sign(&claims)),
        Some("unknown-kid"),
        false,
        "published too late",
    );
    assert_eq!(world.idp.fetches("/unknown-kid"), 2);
    assert_accepted(
        &world.server,
        &key.sign(&claims),
        Some("unknown-kid"),
        tenant,
        "known kid",
    );
}

#[test]
fn cached_keys_outlive_an_idp_outage() {
    let world = world();
    let tenant = fixtures::tenant();
    let claims = realm_claims("outage", tenant).claims();
    let token = world.outage.sign(&claims);

    assert_accepted(
        &world.server,
        &token,
        Some("outage"),
        tenant,
        "before the outage",
    );
    let mut idp = world.outage_idp.lock().expect("outage idp");
    assert_eq!(idp.fetches("/outage"), 1);
    idp.stop();

    assert_accepted(
        &world.server,
        &token,
        Some("outage"),
        tenant,
        "fresh cache, IdP down",
    );
    let ghost = world.outage.sign_as("ghost", &claims);
    assert_refused(
        &world.server,
        Some(&ghost),
        Some("outage"),
        false,
        "refetch fails",
    );
    assert_accepted(
        &world.server,
        &token,
        Some("outage"),
        tenant,
        "after a failed refetch",
    );

    // Past the 10 s freshness floor (and the failure back-off), the refresh
    // fails and the stale keys keep verifying.
    thread::sleep(Duration::from_secs(11));
    assert_accepted(
        &world.server,
        &token,
        Some("outage"),
        tenant,
        "stale cache, IdP down",
    );
}

#[test]
fn default_realm_applies_and_kv_keeps_keys_across_a_restart() {
    let mut idp = Idp::start();
    let key = Key::es256("kv-1");
    idp.publish("/kv", &[&key], None);
    let realms = json!({"kv": {"jwks_url": idp.url("/kv"), "issuer": issuer("kv")}}).to_string();
    let mut server = Server::start(&[("AUTH_REALMS", &realms), ("AUTH_DEFAULT_REALM", "kv")]);
    let tenant = fixtures::tenant();
    let token = key.sign(&realm_claims("kv", tenant).claims());

    assert_accepted(&server, &token, None, tenant, "default realm");
    assert_accepted(&server, &token, Some("kv"), tenant, "named realm");
    assert_refused(
        &server,
        Some(&fixtures::token(tenant, "integration_admin")),
        None,
        false,
        "HS256 when a default realm is set",
    );
    assert_refused(&server, Some(&token), Some("nope"), false, "unknown realm");

    // A new isolate (empty memory) with the IdP down reads the keys from KV.
    idp.stop();
    server.restart();
    assert_accepted(&server, &token, None, tenant, "keys from KV");
    assert_eq!(idp.fetches("/kv"), 1);
}

#[test]
fn hs256_is_refused_without_a_secret() {
    let server = Server::start(&[("AUTH_HS256_SECRET", "")]);
    let tenant = fixtures::tenant();
    assert_refused(
        &server,
        Some(&fixtures::token(tenant, "integration_admin")),
        None,
        false,
        "HS256 unset",
    );
    let unsigned_secret = TokenBuilder::new(tenant, "integration_admin").sign_with("");
    assert_refused(
        &server,
        Some(&unsigned_secret),
        None,
        false,
        "HS256 under the empty key",
    );
}

#[test]
fn a_broken_realm_configuration_is_a_server_error() {
    let server = Server::start(&[("AUTH_REALMS", "{not json")]);
    let tenant = fixtures::tenant();
    let token = fixtures::token(tenant, "integration_admin");
    let reply = connection(&server, Some(&token), None);
    assert_eq!(reply.status, 500, "{}", reply.text);
    let reply = details(&server, Some(&token), None, tenant);
    assert_eq!(reply.status, 500, "{}", reply.text);
    assert_eq!(reply.body["error"]["code"], "INTERNAL_ERROR");
    assert!(
        !reply.text.contains("AUTH_REALMS"),
        "the reason stays in the log"
    );
}
