//! Authentication through a real `wrangler dev`: HS256, realms backed by a
//! stand-in IdP's JWKS (RS256, ES256, EdDSA), the attacks that must fail,
//! realms bound to their tenants, configurations refused as unsafe, key
//! rotation, and the JWKS cache through an IdP outage.
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
    assertions,
    client::{Api, Reply},
    fixtures::{self, TokenBuilder},
    harness::Server,
    idp::{self, Idp, Key},
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
    /// Two identity providers side by side, each bound to its tenants.
    acme: Key,
    globex: Key,
    acme_tenants: [Uuid; 2],
    globex_tenant: Uuid,
    /// Published only behind a redirect.
    redirected: Key,
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
        let acme = Key::es256("acme-1");
        let globex = Key::eddsa("globex-1");
        let acme_tenants = [fixtures::tenant(), fixtures::tenant()];
        let globex_tenant = fixtures::tenant();
        idp.publish("/main", &[&main[0], &main[1], &main[2]], Some("max-age=600"));
        idp.publish("/acme", &[&acme], None);
        idp.publish("/globex", &[&globex], None);
        let redirected = Key::eddsa("redir-1");
        idp.publish("/redirect-target", &[&redirected], None);
        idp.redirect("/redirect", &idp.url("/redirect-target"));
        idp.publish("/other", &[&other], None);
        idp.publish("/rotation", &[&rotation[0]], None);
        idp.publish("/unknown-kid", &[&unknown_kid], None);
        // Asks for 1 s; the worker clamps it to its 10 s minimum.
        outage_idp.publish("/outage", &[&outage], Some("public, max-age=1"));

        // The scenario realms speak for any tenant (each test makes up its
        // own); acme and globex are bound to theirs.
        let realm = |name: &str, url: String| realm_config(name, &url, json!("*"));
        let realms = json!({
            "main": realm("main", idp.url("/main")),
            "other": realm("other", idp.url("/other")),
            "rotation": realm("rotation", idp.url("/rotation")),
            "unknown-kid": realm("unknown-kid", idp.url("/unknown-kid")),
            "outage": realm("outage", outage_idp.url("/outage")),
            "acme": realm_config("acme", &idp.url("/acme"), json!(acme_tenants.map(|t| t.to_string()))),
            "globex": realm_config("globex", &idp.url("/globex"), json!([globex_tenant.to_string()])),
            "redirect": realm("redirect", idp.url("/redirect")),
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
            acme,
            globex,
            acme_tenants,
            globex_tenant,
            redirected,
            server,
        }
    })
}

/// One realm of `AUTH_REALMS`, with every field the Worker requires.
fn realm_config(name: &str, jwks_url: &str, tenants: Value) -> Value {
    idp::realm_entry(&issuer(name), jwks_url, AUDIENCE, tenants)
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
/// credentials surface. Returns the two replies' request ids.
#[track_caller]
fn assert_refused(
    server: &Server,
    token: Option<&str>,
    realm: Option<&str>,
    not_a_jwt: bool,
    case: &str,
) -> [String; 2] {
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
    let connection_id = request_id(&reply);
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
    [connection_id, request_id(&reply)]
}

#[track_caller]
fn request_id(reply: &Reply) -> String {
    reply
        .header("x-request-id")
        .unwrap_or_else(|| panic!("no x-request-id on {}", reply.text))
        .to_owned()
}

/// The reason logged for the refused request `request_id` (the `error` of
/// its request line), waiting for it: workerd's logs reach wrangler's
/// output asynchronously.
fn refusal_reason(server: &Server, request_id: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = server
            .log_entries()
            .into_iter()
            .find(|entry| entry["request_id"] == request_id && entry.get("status").is_some());
        if let Some(entry) = found {
            return entry["error"].as_str().unwrap_or_default().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no request line for request {request_id}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// The request log line of `request_id`, waiting for it.
fn request_line(server: &Server, request_id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = server
            .log_entries()
            .into_iter()
            .find(|entry| entry["request_id"] == request_id && entry.get("status").is_some());
        if let Some(entry) = found {
            return entry;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no log line for request {request_id}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Both surfaces refuse the token, each refusal logged under its own
/// request id with `reason`.
#[track_caller]
fn assert_refused_for(server: &Server, token: &str, realm: Option<&str>, reason: &str, case: &str) {
    for id in assert_refused(server, Some(token), realm, false, case) {
        assert_eq!(refusal_reason(server, &id), reason, "{case}: request {id}");
    }
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

    const EXPIRED: &str = "token expired";
    const BAD_SIGNATURE: &str = "bad signature";
    const ALG_MISMATCH: &str = "token alg does not match the key's algorithm";
    const NOT_REALM_ALG: &str = "alg not accepted for realm tokens";
    const NOT_A_JWT: &str = "not a JWT";
    const WRONG_ISSUER: &str = "wrong issuer";
    const WRONG_AUDIENCE: &str = "wrong audience";
    const UNKNOWN_KID: &str = "unknown kid";

    // (case, token, realmname, not a JWT at all, the reason logged)
    type Attack<'a> = (&'a str, Option<String>, Option<&'a str>, bool, &'a str);
    let cases: Vec<Attack<'_>> = vec![
        (
            "no Authorization header",
            None,
            None,
            false,
            "missing bearer token",
        ),
        (
            "expired HS256",
            Some(hs_claims(tenant).claim("exp", json!(now - 3600)).sign()),
            None,
            false,
            EXPIRED,
        ),
        (
            "expired realm token",
            Some(realm(good.clone().claim("exp", json!(now - 3600)))),
            Some("main"),
            false,
            EXPIRED,
        ),
        (
            "nbf in the future",
            Some(realm(good.clone().claim("nbf", json!(now + 3600)))),
            Some("main"),
            false,
            "token not yet valid (nbf)",
        ),
        (
            "iat in the future",
            Some(realm(good.clone().claim("iat", json!(now + 3600)))),
            Some("main"),
            false,
            "token issued in the future (iat)",
        ),
        (
            "wrong HS256 secret",
            Some(hs_claims(tenant).sign_with("not-the-secret-not-the-secret-0000")),
            None,
            false,
            BAD_SIGNATURE,
        ),
        (
            "alg none, empty signature",
            Some(format!("{none_header}.{none_payload}.")),
            None,
            true,
            NOT_A_JWT,
        ),
        (
            "alg none, empty signature, realm",
            Some(format!("{none_header}.{none_payload}.")),
            Some("main"),
            true,
            NOT_A_JWT,
        ),
        (
            "alg none with a signature",
            Some(format!("{none_header}.{none_payload}.AAAA")),
            None,
            false,
            ALG_MISMATCH,
        ),
        (
            "alg none with a signature, realm",
            Some(format!("{none_header}.{none_payload}.AAAA")),
            Some("main"),
            false,
            NOT_REALM_ALG,
        ),
        (
            "HS256 keyed with the realm's public key",
            Some(confused.clone()),
            Some("main"),
            false,
            NOT_REALM_ALG,
        ),
        (
            "HS256 keyed with the realm's public key, no realm",
            Some(confused),
            None,
            false,
            BAD_SIGNATURE,
        ),
        (
            "altered payload",
            Some(altered),
            Some("main"),
            false,
            BAD_SIGNATURE,
        ),
        (
            "missing exp",
            Some(realm(good.clone().without("exp"))),
            Some("main"),
            false,
            "missing exp",
        ),
        (
            "missing sub",
            Some(realm(good.clone().without("sub"))),
            Some("main"),
            false,
            "missing sub",
        ),
        (
            "missing tenant_id",
            Some(realm(good.clone().without("tenant_id"))),
            Some("main"),
            false,
            "missing tenant_id",
        ),
        (
            "tenant_id not a UUID",
            Some(realm(good.clone().claim("tenant_id", json!("acme")))),
            Some("main"),
            false,
            "tenant_id is not a UUID",
        ),
        (
            "tenants with junk",
            Some(realm(good.clone().claim("tenants", json!(["junk"])))),
            Some("main"),
            false,
            "tenants holds a value that is not a UUID",
        ),
        (
            "wrong iss",
            Some(realm(good.clone().claim("iss", json!(issuer("other"))))),
            Some("main"),
            false,
            WRONG_ISSUER,
        ),
        (
            "missing iss",
            Some(realm(good.clone().without("iss"))),
            Some("main"),
            false,
            WRONG_ISSUER,
        ),
        (
            "wrong aud",
            Some(realm(good.clone().claim("aud", json!("someone-else")))),
            Some("main"),
            false,
            WRONG_AUDIENCE,
        ),
        (
            "missing aud",
            Some(realm(good.clone().without("aud"))),
            Some("main"),
            false,
            WRONG_AUDIENCE,
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
            WRONG_ISSUER,
        ),
        (
            "HS256 wrong aud",
            Some(hs_claims(tenant).claim("aud", json!(["evil"])).sign()),
            None,
            false,
            WRONG_AUDIENCE,
        ),
        (
            "unknown kid",
            Some(ed.sign_as("ghost", &good.claims())),
            Some("main"),
            false,
            UNKNOWN_KID,
        ),
        (
            "kid of another realm",
            Some(world.other.sign(&realm_claims("main", tenant).claims())),
            Some("main"),
            false,
            UNKNOWN_KID,
        ),
        (
            "another realm's key under this realm's kid",
            Some(world.other.sign_as("main-rsa", &good.claims())),
            Some("main"),
            false,
            BAD_SIGNATURE,
        ),
        (
            "realm token without kid",
            Some(rsa.sign_without_kid(&good.claims())),
            Some("main"),
            false,
            "realm token without kid",
        ),
        (
            "realm token with an empty kid",
            Some(rsa.sign_as("", &good.claims())),
            Some("main"),
            false,
            UNKNOWN_KID,
        ),
        (
            "unknown realm",
            Some(realm(good.clone())),
            Some("nope"),
            false,
            "unknown realm",
        ),
        (
            "realm token without realmname",
            Some(realm(good.clone())),
            None,
            false,
            ALG_MISMATCH,
        ),
        (
            "HS256 token with a realm",
            Some(hs_claims(tenant).sign()),
            Some("main"),
            false,
            NOT_REALM_ALG,
        ),
        (
            "not a JWT",
            Some("definitely-not-a-jwt".into()),
            None,
            true,
            NOT_A_JWT,
        ),
        (
            "two segments",
            Some(format!("{none_header}.{none_payload}")),
            None,
            true,
            NOT_A_JWT,
        ),
        (
            "header not an object",
            Some(format!("{}.{none_payload}.AAAA", b64(&json!(["RS256"])))),
            None,
            true,
            NOT_A_JWT,
        ),
        (
            "padding in a segment",
            Some(format!("{none_header}.{none_payload}.AAAA==")),
            None,
            true,
            NOT_A_JWT,
        ),
    ];
    let mut tokens = Vec::new();
    let mut refusals = Vec::new();
    for (case, token, realm, not_a_jwt, reason) in &cases {
        let ids = assert_refused(server, token.as_deref(), *realm, *not_a_jwt, case);
        refusals.extend(ids.map(|id| (*case, id, *reason)));
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

    // Each refusal was for its own reason: the line logged under its
    // request id (the reasons go to the log only, never to the client).
    for (case, request_id, reason) in &refusals {
        assert_eq!(
            refusal_reason(server, request_id),
            *reason,
            "{case}: request {request_id}"
        );
    }
    let log = server.log();
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
    let server = &world.server;
    let tenant = fixtures::tenant();
    let claims = realm_claims("outage", tenant).claims();
    let token = world.outage.sign(&claims);
    let idp = world.outage_idp.lock().expect("outage idp");
    let fetches = || idp.fetches("/outage");
    let accepted = |case: &str| assert_accepted(server, &token, Some("outage"), tenant, case);
    // The Worker logs each failed fetch (a warning without a request id,
    // so they are counted; only this test uses the realm).
    let failed = |expected: usize, case: &str| {
        const FAILED: &str = "JWKS fetch for realm outage failed: status 503";
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let logged = server.log().matches(FAILED).count();
            if logged == expected || std::time::Instant::now() > deadline {
                assert_eq!(logged, expected, "{case}: failed fetches logged");
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    };

    accepted("before the outage");
    assert_eq!(fetches(), 1, "the first request fetched the keys");

    // The IdP fails from now on; it still counts every fetch Coffer tries.
    idp.set_down(true);
    accepted("fresh cache, IdP down");
    assert_eq!(fetches(), 1, "fresh keys are used without asking the IdP");

    // An unknown kid makes Coffer try the IdP once; the fetch fails.
    let ghost = world.outage.sign_as("ghost", &claims);
    assert_refused_for(
        server,
        &ghost,
        Some("outage"),
        "unknown kid",
        "refetch fails",
    );
    assert_eq!(
        fetches(),
        2,
        "one refetch for the unknown kid, which failed"
    );
    failed(1, "the refetch for the unknown kid");
    accepted("after a failed refetch");
    assert_eq!(fetches(), 2, "the cached keys verified, without a fetch");

    // Past the 10 s freshness floor (the JWKS asked for 1 s) and the 10 s
    // failure back-off: the first request tries a refresh, which fails,
    // and the stale keys verify; the next one backs off.
    thread::sleep(Duration::from_secs(11));
    accepted("stale cache, IdP down");
    assert_eq!(
        fetches(),
        3,
        "the stale cache made one refresh attempt, which failed"
    );
    failed(2, "the refresh of the stale cache");
    accepted("stale cache, backing off");
    assert_eq!(fetches(), 3, "no fetch within the failure back-off");

    // Once the IdP is back and the back-off is over, keys are fresh again.
    idp.set_down(false);
    thread::sleep(Duration::from_secs(11));
    accepted("IdP back");
    assert_eq!(fetches(), 4, "the refresh after the outage succeeded");
    accepted("fresh again");
    assert_eq!(fetches(), 4, "fresh keys need no fetch");
    failed(2, "after the outage");
}

#[test]
fn default_realm_applies_and_kv_keeps_keys_across_a_restart() {
    let mut idp = Idp::start();
    let key = Key::es256("kv-1");
    idp.publish("/kv", &[&key], None);
    let realms = json!({"kv": realm_config("kv", &idp.url("/kv"), json!("*"))}).to_string();
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

/// Issue 11 item 4: two identity providers side by side, each bound to its
/// tenants. The admin of one cannot read the other's tenant, through
/// `tenant_id` or `tenants`, on either surface; the operator's HS256 key
/// speaks for any tenant.
#[test]
fn a_realm_speaks_only_for_its_tenants() {
    let world = world();
    let server = &world.server;
    let [acme, acme_second] = world.acme_tenants;
    let globex = world.globex_tenant;
    let sign = |key: &Key, realm: &str, tenant: Uuid, tenants: &[Uuid]| {
        let mut claims = realm_claims(realm, tenant).claim("roles", json!(["integration_admin"]));
        if !tenants.is_empty() {
            let tenants: Vec<String> = tenants.iter().map(Uuid::to_string).collect();
            claims = claims.claim("tenants", json!(tenants));
        }
        key.sign(&claims.claims())
    };
    let acme_token = |tenant: Uuid, tenants: &[Uuid]| sign(&world.acme, "acme", tenant, tenants);
    let globex_token =
        |tenant: Uuid, tenants: &[Uuid]| sign(&world.globex, "globex", tenant, tenants);

    // Acme's admin stores a secret for acme's tenant.
    let secret = "acme-scoped-secret-4711";
    let as_acme = Api::new(server, acme_token(acme, &[]))
        .header("realmname", "acme")
        .header("x-tenantid", acme.to_string());
    let id = fixtures::create_credential(
        &as_acme,
        &fixtures::credential_body("scoped", "Scoped", json!({"apiKey": secret})),
    );
    let read_credentials = |api: &Api<'_>| {
        api.clone()
            .header("x-tenantid", acme.to_string())
            .get(&format!("/api/v1/credentials/scoped?credentialId={id}"))
    };
    let read_connection = |api: &Api<'_>| {
        api.clone()
            .header("x-tenantid", acme.to_string())
            .get(&format!("/connection/{id}/credentials"))
    };

    // Tokens that name only tenants of their realm read it on both surfaces.
    let allowed = [
        ("acme, tenant_id", acme_token(acme, &[]), "acme"),
        (
            "acme, the other acme tenant with acme in tenants",
            acme_token(acme_second, &[acme]),
            "acme",
        ),
    ];
    for (case, token, realm) in &allowed {
        let api = Api::new(server, token.clone()).header("realmname", *realm);
        let reply = read_credentials(&api);
        assert_eq!(reply.status, 200, "{case}: {}", reply.text);
        assert_eq!(
            reply.body["data"]["credentials"]["apiKey"], secret,
            "{case}"
        );
        let reply = read_connection(&api);
        assert_eq!(reply.status, 200, "{case}: {}", reply.text);
        assert_eq!(
            reply.body["data"]["credentials"]["apiKey"], secret,
            "{case}"
        );
    }
    // HS256 is the operator's own key: it speaks for any tenant.
    let operator = Api::new(
        server,
        hs_claims(acme)
            .claim("roles", json!(["integration_user"]))
            .sign(),
    );
    let reply = read_credentials(&operator);
    assert_eq!(reply.status, 200, "HS256: {}", reply.text);
    // Globex's own tenant is fine for globex.
    assert_accepted(
        server,
        &globex_token(globex, &[]),
        Some("globex"),
        globex,
        "globex for its own tenant",
    );

    // A token naming a tenant outside its realm's list is a 401 on both
    // surfaces, in each surface's format, whatever else it names.
    const OUT_OF_SCOPE: &str = "token names a tenant its issuer may not speak for";
    let refused = [
        (
            "globex naming acme in tenant_id",
            globex_token(acme, &[]),
            "globex",
        ),
        (
            "globex naming acme in tenants",
            globex_token(globex, &[acme]),
            "globex",
        ),
        (
            "acme naming a globex tenant beside its own",
            acme_token(acme, &[globex]),
            "acme",
        ),
        (
            "acme naming globex's tenant in tenant_id",
            acme_token(globex, &[acme]),
            "acme",
        ),
    ];
    for (case, token, realm) in &refused {
        let api = Api::new(server, token.clone()).header("realmname", *realm);
        let reply = read_credentials(&api);
        assertions::assert_error(&reply, 401, "AUTHENTICATION_FAILED");
        assert!(!reply.text.contains(secret), "{case}");
        assert_eq!(
            refusal_reason(server, &request_id(&reply)),
            OUT_OF_SCOPE,
            "{case}: credentials surface"
        );
        let reply = read_connection(&api);
        assertions::assert_connection_error(&reply, 401, UNAUTHENTICATED);
        assert_eq!(
            refusal_reason(server, &request_id(&reply)),
            OUT_OF_SCOPE,
            "{case}: connection surface"
        );
    }
    assertions::assert_not_logged(server, &[secret]);
}

/// Issue 11 item 4: configurations that would accept more than they say
/// fail every authenticated request (both verifiers, both surfaces) with
/// a logged reason and a generic 500, like a malformed `AUTH_REALMS`.
#[test]
fn unsafe_auth_configurations_fail_every_authenticated_request() {
    let idp = Idp::start();
    let key = Key::es256("cfg-1");
    idp.publish("/cfg", &[&key], None);
    let good = realm_config("good", &idp.url("/cfg"), json!("*"));
    let only_good = json!({ "good": good }).to_string();
    let partner = |edit: &dyn Fn(&mut Value)| {
        let mut partner = realm_config(
            "partner",
            "https://idp.example.com/jwks",
            json!([fixtures::tenant().to_string()]),
        );
        edit(&mut partner);
        json!({ "good": good, "partner": partner }).to_string()
    };
    let short_secret = "coffer-test-secret-of-31-bytes!";
    assert_eq!(short_secret.len(), 31);

    // (case, variables, the reason logged, the HS256 secret tokens use)
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "a realm without tenants",
            vec![(
                "AUTH_REALMS",
                partner(&|realm| {
                    realm.as_object_mut().map(|r| r.remove("tenants"));
                }),
            )],
            r#"AUTH_REALMS realm "partner": tenants is required"#,
            fixtures::HS256_SECRET,
        ),
        (
            "a realm without audience",
            vec![(
                "AUTH_REALMS",
                partner(&|realm| {
                    realm.as_object_mut().map(|r| r.remove("audience"));
                }),
            )],
            r#"AUTH_REALMS realm "partner": audience is required"#,
            fixtures::HS256_SECRET,
        ),
        (
            "a realm with an empty audience",
            vec![(
                "AUTH_REALMS",
                partner(&|realm| realm["audience"] = json!("")),
            )],
            r#"AUTH_REALMS realm "partner": audience is required"#,
            fixtures::HS256_SECRET,
        ),
        (
            "a jwks_url over plain http to another host",
            vec![(
                "AUTH_REALMS",
                partner(&|realm| realm["jwks_url"] = json!("http://idp.example.com/jwks")),
            )],
            r#"AUTH_REALMS realm "partner": jwks_url must be https"#,
            fixtures::HS256_SECRET,
        ),
        (
            "an HS256 secret of 31 bytes",
            vec![
                ("AUTH_REALMS", only_good.clone()),
                ("AUTH_HS256_SECRET", short_secret.to_owned()),
            ],
            "AUTH_HS256_SECRET is shorter than 32 bytes",
            short_secret,
        ),
        (
            "a default realm that is not configured",
            vec![
                ("AUTH_REALMS", only_good.clone()),
                ("AUTH_DEFAULT_REALM", "nope".to_owned()),
            ],
            "AUTH_DEFAULT_REALM names no realm of AUTH_REALMS",
            fixtures::HS256_SECRET,
        ),
        (
            "AUTH_REALMS not JSON",
            vec![("AUTH_REALMS", "{not json".to_owned())],
            "AUTH_REALMS is not a JSON object",
            fixtures::HS256_SECRET,
        ),
    ];

    let tenant = fixtures::tenant();
    let realm_token = key.sign(&realm_claims("good", tenant).claims());
    let mut server = Server::start(&[("AUTH_REALMS", &only_good)]);
    // The control: this configuration is sound and both verifiers work.
    assert_accepted(
        &server,
        &realm_token,
        Some("good"),
        tenant,
        "control, realm",
    );
    let hs256 = |secret: &str| TokenBuilder::new(tenant, "integration_viewer").sign_with(secret);
    assert_accepted(
        &server,
        &hs256(fixtures::HS256_SECRET),
        None,
        tenant,
        "control, HS256",
    );

    // Every case is tried before the test fails, so one run shows each
    // configuration that is not refused.
    let mut accepted = Vec::new();
    for (case, vars, reason, secret) in &cases {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        server.restart_with(&vars);
        let hs_token = hs256(secret);
        for (verifier, token, realm) in [
            ("HS256", &hs_token, None),
            ("realm", &realm_token, Some("good")),
        ] {
            let replies = [
                connection(&server, Some(token), realm),
                details(&server, Some(token), realm, tenant),
            ];
            for (surface, reply) in ["connection", "credentials"].iter().zip(&replies) {
                let what = format!("{case}, {verifier} token, {surface} surface");
                if reply.status != 500 {
                    accepted.push(format!("{what}: {} {}", reply.status, reply.text));
                    continue;
                }
                let line = request_line(&server, &request_id(reply));
                let logged = line["error"].as_str().unwrap_or_default();
                assert!(
                    logged.starts_with(reason),
                    "{what}: logged {logged:?}, expected {reason:?}"
                );
                assert!(
                    !reply.text.contains("AUTH_"),
                    "{what}: the reason stays in the log: {}",
                    reply.text
                );
            }
            if replies[0].status == 500 {
                assert_eq!(
                    replies[0].body,
                    json!({"error": {"code": 500, "message": "Internal server error"}}),
                    "{case}"
                );
            }
            if replies[1].status == 500 {
                assertions::assert_error(&replies[1], 500, "INTERNAL_ERROR");
            }
        }
    }
    assert!(
        accepted.is_empty(),
        "unsafe configurations that still served requests:\n{}",
        accepted.join("\n")
    );
    assertions::assert_not_logged(&server, &[short_secret]);
}

/// `AUTH_REALMS` may also be written as an object in `wrangler.toml`'s
/// `[vars]` rather than as a JSON string: the Worker reads it as the
/// runtime's `JSON.stringify` writes it, with the same rules.
#[test]
fn realms_written_as_an_object_var_apply() {
    let idp = Idp::start();
    let key = Key::es256("object-1");
    idp.publish("/object", &[&key], None);
    let tenant = fixtures::tenant();
    let realm = realm_config("object", &idp.url("/object"), json!("*"));
    let as_object_var = |realms: Value| {
        move |config: &mut toml::Table| {
            let realms = toml::Value::try_from(realms).expect("AUTH_REALMS as TOML");
            let vars = config
                .entry("vars")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(vars) = vars {
                vars.insert("AUTH_REALMS".into(), realms);
            }
        }
    };
    let mut server = Server::start(&[]);
    server.restart_with_config(&[], as_object_var(json!({ "object": realm })));
    let token = key.sign(&realm_claims("object", tenant).claims());
    assert_accepted(
        &server,
        &token,
        Some("object"),
        tenant,
        "realm in an object var",
    );

    // The object is checked as the string is: a realm without an audience
    // fails every authenticated request, with the reason in the log.
    let mut without_audience = realm;
    without_audience
        .as_object_mut()
        .map(|r| r.remove("audience"));
    server.restart_with_config(&[], as_object_var(json!({ "object": without_audience })));
    let reply = details(&server, Some(&token), Some("object"), tenant);
    assertions::assert_error(&reply, 500, "INTERNAL_ERROR");
    let line = request_line(&server, &request_id(&reply));
    assert_eq!(
        line["error"],
        r#"AUTH_REALMS realm "object": audience is required (tokens the IdP signs for other applications would pass)"#,
        "{line}"
    );
}

/// The JWKS comes from the configured URL only: a redirect (which could
/// lead to plain http anywhere, past the `https` rule) is a failed fetch.
#[test]
fn a_jwks_redirect_is_not_followed() {
    let world = world();
    let tenant = fixtures::tenant();
    let token = world
        .redirected
        .sign(&realm_claims("redirect", tenant).claims());
    assert_refused_for(
        &world.server,
        &token,
        Some("redirect"),
        "realm JWKS unavailable",
        "JWKS behind a redirect",
    );
    assert_eq!(
        world.idp.fetches("/redirect"),
        1,
        "one try, then the back-off"
    );
    assert_eq!(
        world.idp.fetches("/redirect-target"),
        0,
        "the redirect was not followed"
    );
}
