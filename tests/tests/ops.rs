//! Operations: key rotation end to end, the scheduled sweeps, CORS, and the
//! log staying free of secrets and tokens. Each test runs its own server,
//! because sweeps act on the whole store.
extern crate alloc;

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use coffer_tests::{
    client::{Api, Reply},
    fixtures::{tenant, token, COFFER_KEYS, KEY_ID},
    harness::Server,
};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// A second master key (base64 of 32 bytes 0x21..=0x40).
const KEY_B: &str = "test-k2:ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A=";

fn sweep(server: &Server) {
    let reply = Api::anonymous(server).get("/__scheduled?cron=*/15+*+*+*+*");
    assert_eq!(reply.status, 200, "scheduled trigger: {}", reply.text);
}

fn create(api: &Api<'_>, integration: &str, secret: &str, extra: Value) -> String {
    let mut body = json!({
        "integrationId": integration,
        "credentialName": "Ops Test",
        "credentials": {"apiKey": secret},
    });
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    let reply = api.post("/api/v1/credentials", &body);
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body["data"]["id"].as_str().expect("id").to_string()
}

fn read(api: &Api<'_>, integration: &str, id: &str) -> Reply {
    api.get(&format!(
        "/api/v1/credentials/{integration}?credentialId={id}"
    ))
}

fn bare(id: &str) -> &str {
    id.trim_start_matches("cred-")
}

/// The summaries of the first `runs` runs of `sweep`, waiting for them:
/// workerd's log lines reach wrangler's output asynchronously.
fn sweep_summaries(server: &Server, sweep: &str, runs: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + core::time::Duration::from_secs(20);
    loop {
        let summaries: Vec<Value> = server
            .log_entries()
            .into_iter()
            .filter(|entry| entry["sweep"] == sweep && entry["summary"].is_object())
            .map(|entry| entry["summary"].clone())
            .collect();
        if summaries.len() >= runs || std::time::Instant::now() > deadline {
            assert_eq!(summaries.len(), runs, "{sweep} summaries in the log");
            return summaries;
        }
        thread::sleep(core::time::Duration::from_millis(100));
    }
}

#[test]
fn master_key_rotation_rewraps_every_record_without_failing_reads() {
    let mut server = Server::start(&[]);
    let owner = tenant();
    let bearer = token(owner, "integration_admin");
    let secrets: Vec<String> = (0..12)
        .map(|n| format!("rotation-secret-{n}-{}", Uuid::new_v4()))
        .collect();
    let ids: Vec<String> = {
        let api = Api::new(&server, bearer.clone()).header("x-tenantid", owner.to_string());
        secrets
            .iter()
            .map(|s| create(&api, "rotation", s, json!({})))
            .collect()
    };
    let under_a = server.d1(&format!(
        "SELECT count(*) AS n FROM credentials WHERE kid = '{KEY_ID}'"
    ));
    assert_eq!(under_a[0]["n"], 12);

    // Step 1: the new key goes first; new writes use it, old records still open.
    let keys_b_then_a = format!("{KEY_B},{COFFER_KEYS}");
    server.restart_with(&[("COFFER_KEYS", &keys_b_then_a)]);
    let api = Api::new(&server, bearer.clone()).header("x-tenantid", owner.to_string());
    let fresh = create(&api, "rotation", "rotation-fresh-secret", json!({}));
    let kid = server.d1(&format!(
        "SELECT kid FROM credentials WHERE id = '{}'",
        bare(&fresh)
    ));
    assert_eq!(kid[0]["kid"], "test-k2");

    // Step 2: the rewrap pass, with readers running all along.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let reads = Arc::new(AtomicUsize::new(0));
    thread::scope(|scope| {
        for worker in 0..2 {
            let (stop, failures, reads, api) =
                (stop.clone(), failures.clone(), reads.clone(), api.clone());
            let (ids, secrets) = (&ids, &secrets);
            scope.spawn(move || {
                let mut n = worker;
                while !stop.load(Ordering::Relaxed) || n < worker + 12 {
                    let i = n % ids.len();
                    let reply = read(&api, "rotation", &ids[i]);
                    if reply.status != 200
                        || reply.body["data"]["credentials"]["apiKey"] != secrets[i].as_str()
                    {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                    n += 2;
                }
            });
        }
        sweep(&server);
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "reads failed during the rewrap pass"
    );
    assert!(
        reads.load(Ordering::Relaxed) >= 12,
        "every record was read during the pass"
    );
    let left = server.d1(&format!(
        "SELECT count(*) AS n FROM credentials WHERE kid = '{KEY_ID}'"
    ));
    assert_eq!(left[0]["n"], 0, "every data key moved to the active key");
    let summary = sweep_summaries(&server, "rewrap", 1);
    assert!(
        summary
            .iter()
            .any(|s| s["rewrapped"] == 12 && s["remaining"] == 0),
        "{summary:?}"
    );

    // Step 3: the old key is removed; everything still decrypts.
    server.restart_with(&[("COFFER_KEYS", KEY_B)]);
    let api = Api::new(&server, bearer).header("x-tenantid", owner.to_string());
    for (id, secret) in ids.iter().zip(&secrets) {
        let reply = read(&api, "rotation", id);
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["data"]["credentials"]["apiKey"], secret.as_str());
    }
    assert_eq!(read(&api, "rotation", &fresh).status, 200);

    // The sweep is idempotent: a second pass finds nothing to do.
    sweep(&server);
    let summaries = sweep_summaries(&server, "rewrap", 2);
    let last = summaries.last().expect("a rewrap summary");
    assert_eq!(last["rewrapped"], 0);
    assert_eq!(last["remaining"], 0);
}

#[test]
fn a_record_whose_key_is_gone_fails_opaquely_and_is_skipped_by_the_sweep() {
    let mut server = Server::start(&[]);
    let owner = tenant();
    let api_token = token(owner, "integration_admin");
    let id = {
        let api = Api::new(&server, api_token.clone()).header("x-tenantid", owner.to_string());
        create(&api, "lost-key", "lost-key-secret-value", json!({}))
    };
    // The operator removed the old key too early.
    server.restart_with(&[("COFFER_KEYS", KEY_B)]);
    let api = Api::new(&server, api_token).header("x-tenantid", owner.to_string());
    let reply = read(&api, "lost-key", &id);
    assert_eq!(reply.status, 500);
    assert_eq!(reply.body["error"]["code"], "INTERNAL_ERROR");
    assert!(!reply.text.contains("lost-key-secret-value"));
    sweep(&server);
    let summary = sweep_summaries(&server, "rewrap", 1);
    assert!(
        summary
            .iter()
            .any(|s| s["failed"] == 1 && s["remaining"] == 1),
        "{summary:?} {}",
        server
            .log()
            .lines()
            .rev()
            .take(12)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let kid = server.d1(&format!(
        "SELECT kid FROM credentials WHERE id = '{}'",
        bare(&id)
    ));
    assert_eq!(
        kid[0]["kid"], KEY_ID,
        "an undecryptable key is never rewritten"
    );
}

#[test]
fn expiry_sweep_stores_expired_and_the_secret_stays_readable() {
    let server = Server::start(&[]);
    let owner = tenant();
    let api = Api::new(&server, token(owner, "integration_admin"))
        .header("x-tenantid", owner.to_string());
    let past = create(
        &api,
        "expiry",
        "expiry-secret-one",
        json!({"expiresAt": "2020-01-01T00:00:00.000Z"}),
    );
    let future = create(
        &api,
        "expiry",
        "expiry-secret-two",
        json!({"expiresAt": "2999-01-01T00:00:00.000Z"}),
    );
    let status = |id: &str| {
        server.d1(&format!(
            "SELECT status FROM credentials WHERE id = '{}'",
            bare(id)
        ))[0]["status"]
            .clone()
    };
    assert_eq!(status(&past), "active");
    sweep(&server);
    assert_eq!(status(&past), "expired");
    assert_eq!(status(&future), "active");
    sweep(&server);
    assert_eq!(status(&past), "expired", "idempotent");
    let reply = read(&api, "expiry", &past);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["data"]["status"], "expired");
    assert_eq!(reply.body["data"]["isExpired"], true);
    // Clearing the expiry makes the record active again.
    let patched = api.patch(
        &format!("/api/v1/credentials/{past}"),
        &json!({"expiresAt": null}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["data"]["status"], "active");
    eprintln!(
        "{}",
        server.d1("SELECT id, status, expires_at FROM credentials")
    );
    let listed = api.get("/api/v1/credentials?integrationId=expiry&status=active");
    assert_eq!(
        listed.body["data"]["items"].as_array().map(Vec::len),
        Some(2),
        "{}",
        listed.text
    );
}

#[test]
fn orphan_sweep_removes_unreferenced_blobs_past_retention_only() {
    let server = Server::start(&[("COFFER_BLOB_RETENTION_SECONDS", "0")]);
    let owner = tenant();
    let api = Api::new(&server, token(owner, "integration_admin"))
        .header("x-tenantid", owner.to_string());
    let id = create(&api, "orphans", "orphan-test-live-secret", json!({}));
    let orphan = format!("secret/v1/{owner}/{}/1", Uuid::new_v4());
    let superseded = format!("secret/v1/{owner}/{}/1.0000000000000000", bare(&id));
    let keys = || -> Vec<String> {
        let out = server.wrangler_cli(&[
            "kv",
            "key",
            "list",
            "--binding",
            "SECRETS",
            "--prefix",
            &format!("secret/v1/{owner}/"),
        ]);
        let listed: Vec<Value> = serde_json::from_str(&out).expect("kv key list JSON");
        listed
            .iter()
            .filter_map(|k| k["name"].as_str().map(str::to_string))
            .collect()
    };
    let live = keys();
    assert_eq!(live.len(), 1);
    for key in [&orphan, &superseded] {
        server.wrangler_cli(&[
            "kv",
            "key",
            "put",
            "--binding",
            "SECRETS",
            key,
            "stale-bytes",
        ]);
    }
    assert_eq!(keys().len(), 3);
    sweep(&server);
    assert_eq!(keys(), live, "only the blob D1 points at is left");
    assert_eq!(read(&api, "orphans", &id).status, 200);
    sweep(&server);
    let summaries = sweep_summaries(&server, "orphans", 2);
    assert_eq!(
        summaries.first().map(|s| s["removed"].clone()),
        Some(json!(2))
    );
    assert_eq!(
        summaries.last().map(|s| s["removed"].clone()),
        Some(json!(0)),
        "idempotent"
    );
}

#[test]
fn orphan_sweep_spares_young_blobs() {
    let server = Server::start(&[]);
    let owner = tenant();
    let orphan = format!("secret/v1/{owner}/{}/1", Uuid::new_v4());
    let now_ms = coffer_tests::fixtures::now() * 1000;
    server.wrangler_cli(&[
        "kv",
        "key",
        "put",
        "--binding",
        "SECRETS",
        &orphan,
        "in-flight",
        "--metadata",
        &json!({"written_at": now_ms}).to_string(),
    ]);
    sweep(&server);
    let out = server.wrangler_cli(&[
        "kv",
        "key",
        "list",
        "--binding",
        "SECRETS",
        "--prefix",
        &orphan,
    ]);
    assert!(
        out.contains(&orphan),
        "a blob younger than the retention window stays: {out}"
    );
    let summaries = sweep_summaries(&server, "orphans", 1);
    assert_eq!(
        summaries.last().map(|s| s["kept_young"].clone()),
        Some(json!(1))
    );
}

#[test]
fn cors_exposes_responses_to_allowed_origins_only() {
    let server = Server::start(&[("CORS_ALLOWED_ORIGINS", "https://admin.example.com")]);
    let owner = tenant();
    let preflight = |origin: &str| {
        Api::anonymous(&server)
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header(
                "access-control-request-headers",
                "authorization, x-tenantid",
            )
            .send(Method::OPTIONS, "/api/v1/credentials", None)
    };
    let allowed = preflight("https://admin.example.com");
    assert_eq!(allowed.status, 204, "{}", allowed.text);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://admin.example.com")
    );
    let methods = allowed
        .header("access-control-allow-methods")
        .unwrap_or_default();
    assert!(
        methods.contains("GET") && methods.contains("POST"),
        "{methods}"
    );
    assert!(allowed
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .contains("x-tenantid"));
    assert_eq!(allowed.header("access-control-allow-credentials"), None);

    let refused = preflight("https://evil.example.com");
    assert_ne!(refused.status, 204);
    assert_eq!(refused.header("access-control-allow-origin"), None);

    let api = Api::new(&server, token(owner, "integration_admin"))
        .header("x-tenantid", owner.to_string());
    let id = create(&api, "cors", "cors-secret-value", json!({}));
    let from = |origin: &str| {
        api.clone()
            .header("origin", origin)
            .get(&format!("/api/v1/credentials/cors?credentialId={id}"))
    };
    let ok = from("https://admin.example.com");
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://admin.example.com")
    );
    assert!(ok
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .contains("etag"));
    let foreign = from("https://evil.example.com");
    assert_eq!(
        foreign.header("access-control-allow-origin"),
        None,
        "a browser withholds this response"
    );
}

#[test]
fn log_lines_are_structured_and_free_of_secrets_and_tokens() {
    let server = Server::start(&[]);
    let (owner, other) = (tenant(), tenant());
    let admin_token = token(owner, "integration_admin");
    let stranger_token = token(other, "integration_user");
    let api = Api::new(&server, admin_token.clone()).header("x-tenantid", owner.to_string());
    let secret = format!("log-scan-secret-{}", Uuid::new_v4());
    let id = create(&api, "logs", &secret, json!({}));
    assert_eq!(read(&api, "logs", &id).status, 200);
    let patched_secret = format!("log-scan-rotated-{}", Uuid::new_v4());
    let patched = api.patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"credentials": {"apiKey": patched_secret}}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(
        Api::new(&server, stranger_token.clone())
            .get(&format!("/connection/{}/credentials", bare(&id)))
            .status,
        404
    );
    assert_eq!(
        Api::new(&server, format!("{admin_token}x"))
            .get(&format!("/connection/{}/credentials", bare(&id)))
            .status,
        401
    );
    assert_eq!(
        api.post(
            "/api/v1/credentials",
            &json!({"credentials": {"apiKey": secret}})
        )
        .status,
        400
    );
    assert_eq!(
        Api::new(&server, admin_token.clone())
            .get(&format!("/connection/{}/credentials", bare(&id)))
            .status,
        200
    );

    let log = server.log();
    for needle in [
        secret.as_str(),
        patched_secret.as_str(),
        admin_token.as_str(),
        stranger_token.as_str(),
        coffer_tests::fixtures::HS256_SECRET,
        COFFER_KEYS.split(':').nth(1).unwrap_or("?"),
    ] {
        assert!(!log.contains(needle), "the log contains a secret or token");
    }
    // Token signatures alone must not appear either.
    let signature = admin_token.rsplit('.').next().unwrap_or("?");
    assert!(!log.contains(signature));

    let lines: Vec<Value> = server
        .log_entries()
        .into_iter()
        .filter(|entry| entry.get("request_id").is_some() && entry.get("status").is_some())
        .collect();
    assert!(lines.len() >= 6, "one JSON line per request: {lines:?}");
    let read_line = lines
        .iter()
        .find(|l| l["route"] == "CredentialRead")
        .expect("a line for the decrypted read");
    assert_eq!(read_line["tenant"], owner.to_string());
    assert_eq!(read_line["status"], 200);
    assert!(read_line["duration_ms"].is_number());
    let failed = lines
        .iter()
        .find(|l| l["status"] == 401)
        .expect("a line for the 401");
    assert!(failed["request_id"]
        .as_str()
        .is_some_and(|id| id.len() == 36));
}
