//! The performance budget, enforced: storage round trips per route (from
//! each request's log line, which counts every D1 and KV call, the JWKS
//! cache's included), for HS256 and realm tokens alike, and the size of the
//! built `.wasm`.
use std::{process::Command, sync::OnceLock};

use coffer_tests::{
    client::Api,
    fixtures::{tenant, token, TokenBuilder},
    harness::{self, Server},
    idp::{self, Idp, Key},
};
use serde_json::{json, Value};
use uuid::Uuid;

const REALM: &str = "budget";
const ISSUER: &str = "https://idp.test/budget";
const AUDIENCE: &str = "coffer";

/// The server of these tests (the harness's defaults plus one realm, so
/// realm tokens are measured too) and the stand-in IdP behind the realm.
struct World {
    idp: Idp,
    key: Key,
    server: Server,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let idp = Idp::start();
        let key = Key::es256("budget-1");
        // Fresh for the whole run: warm requests never refresh.
        idp.publish("/budget", &[&key], Some("max-age=3600"));
        let realm = idp::realm_entry(ISSUER, &idp.url("/budget"), AUDIENCE, json!("*"));
        let realms = json!({ REALM: realm }).to_string();
        let server = Server::start(&[("AUTH_REALMS", &realms)]);
        World { idp, key, server }
    })
}

/// A token of the realm for `tenant` with `role`.
fn realm_token(world: &World, tenant: Uuid, role: &str) -> String {
    let claims = TokenBuilder::new(tenant, role)
        .claim("iss", json!(ISSUER))
        .claim("aud", json!(AUDIENCE));
    world.key.sign(&claims.claims())
}

/// gzip -9 size budget of `worker/build/index_bg.wasm`: issue 13's 300 KB
/// (300,000 bytes), reached on 2026-12-06 at 298,864 bytes (299,038 with
/// the review's mends to that change). Raise it only
/// with a reason in the commit message (the README's "Benchmarks and the
/// performance budget" lists every step that got it here).
const WASM_GZIP_BUDGET: usize = 300_000;

/// The log line of the request with `request_id`, waiting for it: workerd's
/// logs reach wrangler's output asynchronously.
fn log_line(server: &Server, request_id: &str) -> Value {
    let deadline = std::time::Instant::now() + core::time::Duration::from_secs(20);
    loop {
        let found = server
            .log_entries()
            .into_iter()
            .find(|entry| entry["request_id"] == request_id && entry.get("d1").is_some());
        if let Some(entry) = found {
            return entry;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no log line for request {request_id}"
        );
        std::thread::sleep(core::time::Duration::from_millis(100));
    }
}

/// A request's D1 round trips and KV operations, from its log line.
fn storage_calls(server: &Server, reply: &coffer_tests::client::Reply) -> (u64, u64) {
    let request_id = reply.header("x-request-id").expect("x-request-id");
    let line = log_line(server, request_id);
    (
        line["d1"].as_u64().unwrap_or(u64::MAX),
        line["kv"].as_u64().unwrap_or(u64::MAX),
    )
}

#[test]
fn storage_round_trips_stay_within_budget() {
    let world = world();
    let server = &world.server;
    let owner = tenant();
    let hs256 = token(owner, "integration_admin");
    let realm = realm_token(world, owner, "integration_admin");
    let api = Api::new(server, hs256.clone()).header("x-tenantid", owner.to_string());
    let created = api.post(
        "/api/v1/credentials",
        &json!({"integrationId": "budget", "credentialName": "Budget", "credentials": {"k": "budget-secret"}}),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["data"]["id"].as_str().expect("id").to_string();
    let bare = id.trim_start_matches("cred-");
    let details = format!("/api/v1/credentials/budget/details?credentialId={id}");

    // The isolate's first realm token: its keys come from the IdP and go
    // to the KV cache, one KV read (a miss) and one KV write, both counted.
    let cold = Api::new(server, realm.clone())
        .header("realmname", REALM)
        .header("x-tenantid", owner.to_string())
        .get(&details);
    assert_eq!(cold.status, 200, "cold realm token: {}", cold.text);
    assert_eq!(world.idp.fetches("/budget"), 1, "the keys were fetched");
    let (d1, kv) = storage_calls(server, &cold);
    assert!(d1 <= 1, "details, cold realm token: {d1} D1 round trips");
    assert_eq!(
        kv, 2,
        "details, cold realm token: the JWKS cache's KV read and write"
    );

    // (route, path, on the credentials surface, max D1 round trips, max KV operations)
    let cases: Vec<(&str, String, bool, u64, u64)> = vec![
        (
            "decrypted read",
            format!("/api/v1/credentials/budget?credentialId={id}"),
            true,
            1,
            1,
        ),
        (
            "decrypted read by selection",
            "/api/v1/credentials/budget".into(),
            true,
            1,
            1,
        ),
        (
            "connection credentials",
            format!("/connection/{bare}/credentials"),
            false,
            1,
            1,
        ),
        ("details", details.clone(), true, 1, 0),
        (
            "details by selection",
            "/api/v1/credentials/budget/details".into(),
            true,
            1,
            0,
        ),
        ("list", "/api/v1/credentials?limit=5".into(), true, 1, 0),
        (
            "connection metadata",
            format!("/connection/{bare}"),
            false,
            1,
            0,
        ),
        ("connection list", "/connection?limit=5".into(), false, 1, 0),
        ("audit", "/api/v1/audit?limit=5".into(), true, 1, 0),
    ];
    // Once the realm's keys are in isolate memory, a realm token costs no
    // more storage than an HS256 one.
    for (verifier, token, realm) in [("HS256", &hs256, None), ("realm", &realm, Some(REALM))] {
        let mut conn = Api::new(server, token.clone());
        if let Some(realm) = realm {
            conn = conn.header("realmname", realm);
        }
        let api = conn.clone().header("x-tenantid", owner.to_string());
        for (route, path, credentials_surface, max_d1, max_kv) in &cases {
            let get = || {
                if *credentials_surface {
                    api.get(path)
                } else {
                    conn.get(path)
                }
            };
            // A decrypted read the isolate has not served before takes the
            // slow path (two D1 round trips); once served, a read of the
            // same lookup is one D1 round trip and one KV read.
            let first = get();
            assert_eq!(first.status, 200, "{route}, {verifier}: {}", first.text);
            let (d1, kv) = storage_calls(server, &first);
            assert!(
                d1 <= 2 && kv <= 1,
                "{route}, {verifier}, first: {d1} D1 round trips, {kv} KV operations"
            );
            let reply = get();
            assert_eq!(reply.status, 200, "{route}, {verifier}: {}", reply.text);
            let (d1, kv) = storage_calls(server, &reply);
            assert!(
                d1 <= *max_d1,
                "{route}, {verifier}: {d1} D1 round trips, budget {max_d1}"
            );
            assert!(
                kv <= *max_kv,
                "{route}, {verifier}: {kv} KV operations, budget {max_kv}"
            );
        }
    }
    assert_eq!(
        world.idp.fetches("/budget"),
        1,
        "warm realm tokens never asked the IdP"
    );

    // `/healthz` checks D1 and both KV namespaces, concurrently.
    let reply = Api::anonymous(server).get("/healthz");
    assert_eq!(reply.status, 200, "healthz: {}", reply.text);
    assert_eq!(
        storage_calls(server, &reply),
        (1, 2),
        "healthz: one D1 query and two KV reads"
    );
}

#[test]
fn the_wasm_bundle_stays_within_its_gzip_budget() {
    // The harness builds the worker before the first server starts.
    let _ = world();
    let wasm = harness::root().join("worker/build/index_bg.wasm");
    let output = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(&wasm)
        .output()
        .expect("run gzip");
    assert!(output.status.success(), "gzip {}", wasm.display());
    let size = output.stdout.len();
    assert!(
        size <= WASM_GZIP_BUDGET,
        "the worker's .wasm is {size} bytes gzipped, over its budget of {WASM_GZIP_BUDGET}"
    );
}

#[test]
fn a_remembered_blob_costs_no_kv_read_and_a_stale_one_serves_the_current_secret() {
    let server = &world().server;
    let owner = tenant();
    let api =
        Api::new(server, token(owner, "integration_admin")).header("x-tenantid", owner.to_string());
    let created = api.post(
        "/api/v1/credentials",
        &json!({"integrationId": "guess", "credentialName": "Guess", "credentials": {"k": "guess-old-secret"}}),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["data"]["id"].as_str().expect("id").to_string();
    let path = format!("/api/v1/credentials/guess?credentialId={id}");
    // The first read teaches the isolate which blob serves this lookup, and
    // keeps the blob (its KV key is never written twice).
    let first = api.get(&path);
    assert_eq!(first.body["data"]["credentials"]["k"], "guess-old-secret");
    assert_eq!(
        storage_calls(server, &first).1,
        1,
        "the first read fetches the blob"
    );
    let warm = api.get(&path);
    assert_eq!(warm.body["data"]["credentials"]["k"], "guess-old-secret");
    assert_eq!(
        storage_calls(server, &warm),
        (1, 0),
        "a remembered secret write: the one D1 statement that counts, no KV read"
    );

    let patched = api.patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"credentials": {"k": "guess-new-secret"}}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    // The remembered blob is the old secret's: D1 refuses to count it, and
    // the slow path serves (and then remembers) the new one.
    let read = api.get(&path);
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.body["data"]["credentials"]["k"], "guess-new-secret");
    assert_eq!(
        storage_calls(server, &read).1,
        1,
        "the stale guess costs no KV read; the current blob one"
    );
    let again = api.get(&path);
    assert_eq!(again.body["data"]["credentials"]["k"], "guess-new-secret");
    assert_eq!(storage_calls(server, &again), (1, 0));
    let count = api.get(&format!(
        "/api/v1/credentials/guess/details?credentialId={id}"
    ));
    assert_eq!(count.body["data"]["accessCount"], 4, "{}", count.text);
}
