//! OAuth2 token refresh (issue 14), black-box: a real `wrangler dev` whose
//! records name a loopback token endpoint (`coffer_tests::oauth`), read
//! concurrently on both surfaces, forced, swept, raced by `PATCH`, killed
//! mid-flight, and scanned for leaked tokens.
//!
//! The tests never write what the Worker should write: records are made
//! through the API, refreshes happen because reads, the forced route or
//! the sweep cause them, and outcomes are checked through the API, the
//! token endpoint's own record of its calls, the audit log and the logs.
extern crate alloc;

use alloc::sync::Arc;
use core::time::Duration;
use std::{
    sync::{Barrier, OnceLock},
    thread,
    time::Instant,
};

use coffer_tests::{
    assertions::{assert_connection_error, assert_error, assert_not_logged, assert_timestamp},
    client::{Api, Reply},
    fixtures::{
        api_for, create_credential, now, run_sweeps, tenant, token, CONNECTION_API_VERSION,
    },
    harness::Server,
    oauth::{Behavior, TokenEndpoint, TokenServer},
};
use rand_chacha::{
    rand_core::{RngCore as _, SeedableRng as _},
    ChaCha8Rng,
};
use serde_json::{json, Value};
use uuid::Uuid;

/// The variables of this binary's server: loopback `http` endpoints allowed.
const VARS: [(&str, &str); 1] = [("COFFER_REFRESH_ALLOW_LOOPBACK_HTTP", "true")];

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| Server::start(&VARS))
}

fn tokens() -> &'static TokenServer {
    static TOKENS: OnceLock<TokenServer> = OnceLock::new();
    TOKENS.get_or_init(TokenServer::start)
}

/// A client secret every refreshing record here carries (never to leak).
const CLIENT_SECRET: &str = "cs-never-leak-7f1e2d";

/// An `oauth2_bearer` record whose token endpoint is `endpoint`, with
/// `secret` and `expires_at` (RFC 3339, or null); returns its bare id.
fn create_bearer(
    server: &Server,
    owner: Uuid,
    endpoint: &str,
    secret: Value,
    expires_at: Value,
) -> String {
    let editor = api_for(server, owner, "integration_editor");
    create_credential(
        &editor,
        &json!({
            "integrationId": "salesforce",
            "credentialName": "Salesforce",
            "authType": "oauth2_bearer",
            "scopes": ["api"],
            "tokenEndpoint": endpoint,
            "expiresAt": expires_at,
            "credentials": secret,
        }),
    )
}

fn bearer_secret(refresh: &str) -> Value {
    json!({"accessToken": "at-original", "refreshToken": refresh,
           "clientId": "coffer-client", "clientSecret": CLIENT_SECRET, "n": 1.50})
}

/// An RFC 3339 time `seconds` from now.
fn in_seconds(seconds: i64) -> Value {
    let ms = (now() + seconds) * 1000;
    json!(rfc3339(ms))
}

fn rfc3339(ms: i64) -> String {
    // Days to civil date (H. Hinnant), proleptic Gregorian.
    let days = ms.div_euclid(86_400_000);
    let rest = ms.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

const EXPIRED: &str = "2020-01-01T00:00:00.000Z";

fn read_credentials(api: &Api<'_>, id: &str) -> Reply {
    api.get(&format!("/api/v1/credentials/salesforce?credentialId={id}"))
}

fn read_connection(api: &Api<'_>, id: &str) -> Reply {
    api.get(&format!("/connection/{id}/credentials"))
}

fn details(server: &Server, owner: Uuid, id: &str) -> Value {
    let reply = api_for(server, owner, "integration_viewer").get(&format!(
        "/api/v1/credentials/salesforce/details?credentialId={id}"
    ));
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["data"].clone()
}

fn force(server: &Server, owner: Uuid, id: &str) -> Reply {
    api_for(server, owner, "integration_editor").send(
        reqwest::Method::POST,
        &format!("/api/v1/credentials/{id}/refresh"),
        None,
    )
}

fn served_access_token(reply: &Reply) -> String {
    let credentials = if reply.body["data"]["credentials"].is_object() {
        &reply.body["data"]["credentials"]
    } else {
        &reply.body["data"]
    };
    credentials["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("no accessToken in {}", reply.text))
        .to_string()
}

/// `n` concurrent reads of `id` (alternating surfaces), each thread with
/// its own HTTP client when `clients` > 1 (connections of their own), all
/// released at once. Returns the replies.
fn concurrent_reads(
    server: &Server,
    owner: Uuid,
    id: &str,
    n: usize,
    clients: usize,
) -> Vec<Reply> {
    let user = token(owner, "integration_user");
    let barrier = Arc::new(Barrier::new(n));
    let pools: Vec<reqwest::blocking::Client> = (0..clients.max(1))
        .map(|_| {
            reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(0)
                .build()
                .expect("client")
        })
        .collect();
    thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let barrier = Arc::clone(&barrier);
                let client = pools[i % pools.len()].clone();
                let user = user.clone();
                let path = if i % 2 == 0 {
                    format!("/api/v1/credentials/salesforce?credentialId={id}")
                } else {
                    format!("/connection/{id}/credentials")
                };
                let url = server.url(&path);
                scope.spawn(move || {
                    barrier.wait();
                    let response = client
                        .get(url)
                        .bearer_auth(user)
                        .header("x-tenantid", owner.to_string())
                        .send()
                        .expect("send read");
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    let text = response.text().expect("read body");
                    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
                    Reply {
                        status,
                        headers,
                        text,
                        body,
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("reader thread"))
            .collect()
    })
}

fn assert_one_refresh_for_all(replies: &[Reply], endpoint: &TokenEndpoint<'_>, what: &str) {
    for reply in replies {
        assert_eq!(reply.status, 200, "{what}: {}", reply.text);
    }
    let served: Vec<String> = replies.iter().map(served_access_token).collect();
    let issued = endpoint.issued();
    println!(
        "{what}: {} concurrent reads, {} token-endpoint call(s), {} distinct token(s) served",
        replies.len(),
        endpoint.call_count(),
        served
            .iter()
            .collect::<alloc::collections::BTreeSet<_>>()
            .len()
    );
    assert_eq!(endpoint.call_count(), 1, "{what}: endpoint calls");
    assert_eq!(issued.len(), 1, "{what}: tokens issued");
    for token in &served {
        assert_eq!(
            token, &issued[0],
            "{what}: every read serves the one new token"
        );
    }
}

#[test]
fn twenty_concurrent_reads_of_an_expired_token_call_the_endpoint_once() {
    let server = server();
    for round in 0..3 {
        let endpoint = tokens().endpoint();
        let owner = tenant();
        let id = create_bearer(
            server,
            owner,
            &endpoint.url(),
            bearer_secret("rt-concurrent-1"),
            json!(EXPIRED),
        );
        let replies = concurrent_reads(server, owner, &id, 20, 1);
        assert_one_refresh_for_all(&replies, &endpoint, &format!("round {round}"));
        // What the endpoint was sent: the refresh_token grant, Basic client
        // authentication (RFC 6749 §2.3.1, §6).
        let call = &endpoint.calls()[0];
        assert_eq!(call.field("grant_type"), Some("refresh_token"));
        assert_eq!(call.field("refresh_token"), Some("rt-concurrent-1"));
        assert_eq!(call.field("client_secret"), None);
        assert_eq!(
            call.authorization.as_deref(),
            Some("Basic Y29mZmVyLWNsaWVudDpjcy1uZXZlci1sZWFrLTdmMWUyZA==")
        );
        assert_eq!(
            call.content_type.as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        // Stored: expiry now + 3600 s, status active, other members exact.
        let data = details(server, owner, &id);
        let expires = assert_timestamp(&data["expiresAt"], "expiresAt");
        let expected = (now() + 3600) * 1000;
        assert!((expires - expected).abs() < 120_000, "{data}");
        assert_eq!(data["status"], "active", "{data}");
        assert_eq!(data["isExpired"], false);
        assert_eq!(
            data["updatedBy"],
            json!({"id": "coffer", "name": "Coffer token refresh", "email": null})
        );
        assert_eq!(data["refresh"]["failures"], 0);
        assert_eq!(data["refresh"]["lastError"], Value::Null);
        assert_timestamp(&data["refresh"]["lastRefreshedAt"], "lastRefreshedAt");
        let again = read_credentials(&api_for(server, owner, "integration_user"), &id);
        assert_eq!(
            again.body["data"]["credentials"],
            json!({"accessToken": endpoint.issued()[0], "refreshToken": "rt-concurrent-1",
                   "clientId": "coffer-client", "clientSecret": CLIENT_SECRET, "n": 1.50}),
            "{}",
            again.text
        );

        assert_eq!(
            endpoint.call_count(),
            1,
            "a fresh token is not refreshed again"
        );
    }
}

#[test]
fn concurrent_reads_over_two_clients_connections_call_the_endpoint_once() {
    let server = server();
    let endpoint = tokens().endpoint();
    let owner = tenant();
    let id = create_bearer(
        server,
        owner,
        &endpoint.url(),
        bearer_secret("rt-two-pools"),
        json!(EXPIRED),
    );
    // Two connection pools, no connection reused: every read arrives on a
    // connection of its own, as reads from two isolates' clients would.
    let replies = concurrent_reads(server, owner, &id, 20, 2);
    assert_one_refresh_for_all(&replies, &endpoint, "two clients");
}

#[test]
fn rotation_stores_the_new_refresh_token_and_never_sends_the_old_one() {
    let server = server();
    let endpoint = tokens().endpoint();
    endpoint.rotate_from("rt-rotate-0");
    let owner = tenant();
    let id = create_bearer(
        server,
        owner,
        &endpoint.url(),
        bearer_secret("rt-rotate-0"),
        json!(EXPIRED),
    );
    let user = api_for(server, owner, "integration_user");
    // An expired read refreshes; then three forced refreshes.
    assert_eq!(read_connection(&user, &id).status, 200);
    for _ in 0..3 {
        let forced = force(server, owner, &id);
        assert_eq!(forced.status, 200, "{}", forced.text);
        assert!(
            !forced.text.contains("rt-"),
            "details never carry the secret: {}",
            forced.text
        );
    }
    let calls = endpoint.calls();
    let issued = endpoint.issued_refresh();
    assert_eq!(calls.len(), 4);
    assert_eq!(
        endpoint.reuses(),
        0,
        "an invalidated refresh token was sent again"
    );
    let sent: Vec<&str> = calls
        .iter()
        .filter_map(|c| c.field("refresh_token"))
        .collect();
    assert_eq!(sent[0], "rt-rotate-0");
    for (i, token) in sent.iter().enumerate().skip(1) {
        assert_eq!(
            *token,
            issued[i - 1],
            "call {i} sends the last issued refresh token"
        );
    }
    let read = read_credentials(&user, &id);
    assert_eq!(read.body["data"]["credentials"]["refreshToken"], issued[3]);
    assert_eq!(
        read.body["data"]["credentials"]["accessToken"],
        endpoint.issued()[3]
    );
}

#[test]
fn invalid_grant_fails_expired_reads_and_stops_refreshing_until_a_patch() {
    let server = server();
    let endpoint = tokens().endpoint();
    endpoint.set_behavior(Behavior::OAuthError {
        status: 400,
        code: "invalid_grant".into(),
        description: "refresh token rt-dead-42 was revoked by the user".into(),
    });
    let owner = tenant();
    let id = create_bearer(
        server,
        owner,
        &endpoint.url(),
        bearer_secret("rt-dead-42"),
        json!(EXPIRED),
    );
    let user = api_for(server, owner, "integration_user");
    let failed = read_credentials(&user, &id);
    assert_error(&failed, 502, "REFRESH_FAILED");
    assert!(!failed.text.contains("at-original"), "{}", failed.text);
    let connection = Api::new(server, token(owner, "integration_user"))
        .header("x-api-version", CONNECTION_API_VERSION);
    let failed = read_connection(&connection, &id);
    assert_connection_error(
        &failed,
        502,
        &format!("Token refresh failed for connection {id}"),
    );
    assert_eq!(endpoint.call_count(), 1, "no retry after invalid_grant");
    let data = details(server, owner, &id);
    let refresh = &data["refresh"];
    assert_eq!(refresh["lastError"]["code"], "invalid_grant", "{data}");
    assert_eq!(
        refresh["lastError"]["message"],
        "refresh token [redacted] was revoked by the user"
    );
    assert_timestamp(&refresh["lastError"]["at"], "lastError.at");
    assert_eq!(refresh["failures"], 1);
    assert_eq!(
        refresh["nextAttemptAt"],
        Value::Null,
        "halted: no next attempt"
    );
    assert_eq!(refresh["lastRefreshedAt"], Value::Null);
    // The sweep leaves it alone too.
    run_sweeps(server);
    run_sweeps(server);
    assert_eq!(read_credentials(&user, &id).status, 502);
    assert_eq!(endpoint.call_count(), 1, "no call until a PATCH");
    // The connection surface shows the same state in snake case.
    let meta = connection.get(&format!("/connection/{id}"));
    assert_eq!(
        meta.body["data"]["refresh"]["last_error"]["code"],
        "invalid_grant"
    );
    assert_eq!(meta.body["data"]["refresh"]["failures"], 1);
    // A new secret by PATCH: refreshing resumes.
    endpoint.set_behavior(Behavior::Issue);
    let editor = api_for(server, owner, "integration_editor");
    let patched = editor.patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"credentials": bearer_secret("rt-new-43")}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["data"]["refresh"]["failures"], 0);
    let read = read_credentials(&user, &id);
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(served_access_token(&read), endpoint.issued()[0]);
    assert_eq!(endpoint.call_count(), 2);
    assert_eq!(
        endpoint.calls()[1].field("refresh_token"),
        Some("rt-new-43")
    );
    // Every attempt was audited.
    let audit = api_for(server, owner, "integration_admin")
        .get(&format!("/api/v1/audit?credentialId={id}"));
    let outcomes: Vec<&str> = audit.body["data"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["action"] == "credential.refresh")
        .map(|e| e["outcome"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(outcomes, ["success", "failure"], "{}", audit.text);
}

#[test]
fn each_failure_is_recorded_and_nothing_is_written_to_the_secret() {
    let server = server();
    let cases: Vec<(Behavior, &str)> = vec![
        (
            Behavior::OAuthError {
                status: 400,
                code: "invalid_client".into(),
                description: format!("bad secret {CLIENT_SECRET}"),
            },
            "invalid_client",
        ),
        (
            Behavior::OAuthError {
                status: 400,
                code: "invalid_scope".into(),
                description: "x".repeat(500),
            },
            "invalid_scope",
        ),
        (Behavior::Status(503), "http_503"),
        (Behavior::NotJson, "invalid_response"),
        (Behavior::NoAccessToken, "invalid_response"),
        (Behavior::TooLarge, "invalid_response"),
    ];
    for (behavior, code) in cases {
        let endpoint = tokens().endpoint();
        endpoint.set_behavior(behavior.clone());
        let owner = tenant();
        // Valid for 30 s more: inside the 60 s skew, so reads refresh, but
        // still servable when the refresh fails.
        let id = create_bearer(
            server,
            owner,
            &endpoint.url(),
            bearer_secret("rt-fail-1"),
            in_seconds(30),
        );
        let user = api_for(server, owner, "integration_user");
        let read = read_credentials(&user, &id);
        assert_eq!(
            read.status, 200,
            "{behavior:?}: a valid token is served: {}",
            read.text
        );
        assert_eq!(served_access_token(&read), "at-original", "{behavior:?}");
        assert_eq!(endpoint.call_count(), 1, "{behavior:?}");
        let data = details(server, owner, &id);
        assert_eq!(
            data["refresh"]["lastError"]["code"], code,
            "{behavior:?}: {data}"
        );
        let message = data["refresh"]["lastError"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.chars().count() <= 200, "{behavior:?}: {message}");
        assert!(!message.contains(CLIENT_SECRET), "{behavior:?}: {message}");
        assert_eq!(data["refresh"]["failures"], 1, "{behavior:?}");
        assert_eq!(
            data["version"], 1,
            "{behavior:?}: nothing written to the secret"
        );
        // Backing off (or halted): the next read does not call again.
        let read = read_credentials(&user, &id);
        assert_eq!(read.status, 200, "{behavior:?}");
        assert_eq!(endpoint.call_count(), 1, "{behavior:?}: backoff");
        let halted = code == "invalid_client";
        assert_eq!(
            data["refresh"]["nextAttemptAt"].is_null(),
            halted,
            "{behavior:?}: {data}"
        );
        if !halted {
            let next = assert_timestamp(&data["refresh"]["nextAttemptAt"], "nextAttemptAt");
            let expected = (now() + 30) * 1000;
            assert!(
                (next - expected).abs() < 60_000,
                "{behavior:?}: 30 s backoff: {data}"
            );
        }
        // A forced refresh ignores the backoff and answers 502.
        let forced = force(server, owner, &id);
        assert_error(&forced, 502, "REFRESH_FAILED");
        assert_eq!(endpoint.call_count(), 2, "{behavior:?}");
        assert_eq!(details(server, owner, &id)["refresh"]["failures"], 2);
    }
}

#[test]
fn client_credentials_use_the_records_scopes_and_client_secret_post() {
    let server = server();
    let endpoint = tokens().endpoint();
    endpoint.set_expires_in(None);
    let owner = tenant();
    let editor = api_for(server, owner, "integration_editor");
    let id = create_credential(
        &editor,
        &json!({
            "integrationId": "salesforce",
            "credentialName": "Machine",
            "authType": "oauth2_client_credentials",
            "scopes": ["read:all", "write"],
            "tokenEndpoint": endpoint.url(),
            "metadata": {"tokenEndpointAuthMethod": "client_secret_post"},
            "expiresAt": EXPIRED,
            "credentials": {"clientId": "machine-1", "clientSecret": CLIENT_SECRET},
        }),
    );
    let user = api_for(server, owner, "integration_user");
    let read = read_credentials(&user, &id);
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(
        read.body["data"]["credentials"],
        json!({"clientId": "machine-1", "clientSecret": CLIENT_SECRET,
               "accessToken": endpoint.issued()[0]})
    );
    let call = &endpoint.calls()[0];
    assert_eq!(
        call.form,
        vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("scope".to_string(), "read:all write".to_string()),
            ("client_id".to_string(), "machine-1".to_string()),
            ("client_secret".to_string(), CLIENT_SECRET.to_string()),
        ]
    );
    assert_eq!(call.authorization, None);
    // No expires_in: expiresAt null, and no automatic refresh from now on.
    let data = details(server, owner, &id);
    assert_eq!(data["expiresAt"], Value::Null, "{data}");
    assert_eq!(data["refresh"]["nextAttemptAt"], Value::Null, "{data}");
    run_sweeps(server);
    assert_eq!(read_credentials(&user, &id).status, 200);
    assert_eq!(endpoint.call_count(), 1);
    // Forced: by the caller, audited as the caller.
    let forced = force(server, owner, &id);
    assert_eq!(forced.status, 200, "{}", forced.text);
    assert_eq!(endpoint.call_count(), 2);
    assert_eq!(forced.body["data"]["updatedBy"]["name"], "Ada Example");
}

#[test]
fn slow_endpoint_against_the_wait_bound_and_the_timeout() {
    let mut own = Server::start(&[
        ("COFFER_REFRESH_ALLOW_LOOPBACK_HTTP", "true"),
        ("COFFER_REFRESH_WAIT_MS", "1000"),
    ]);
    let server = &own;
    let endpoint = tokens().endpoint();
    endpoint.set_delay(Duration::from_secs(3));
    let owner = tenant();
    let id = create_bearer(
        server,
        owner,
        &endpoint.url(),
        bearer_secret("rt-slow-1"),
        json!(EXPIRED),
    );
    let user_token = token(owner, "integration_user");
    let url = server.url(&format!("/api/v1/credentials/salesforce?credentialId={id}"));
    let refresher = {
        let (url, user_token) = (url.clone(), user_token.clone());
        thread::spawn(move || {
            let started = Instant::now();
            let response = reqwest::blocking::Client::new()
                .get(url)
                .bearer_auth(user_token)
                .header("x-tenantid", owner.to_string())
                .send()
                .expect("read");
            let status = response.status().as_u16();
            let text = response.text().expect("body");
            (status, text, started.elapsed())
        })
    };
    assert!(
        endpoint.wait_for_calls(1, Duration::from_secs(20)),
        "the refresher called"
    );
    // A second reader: the token is expired and the refresher holds the
    // lease; it waits at most COFFER_REFRESH_WAIT_MS (1 s), then 502.
    let started = Instant::now();
    let waiter = Api::new(server, user_token.clone())
        .header("x-tenantid", owner.to_string())
        .get(&format!("/api/v1/credentials/salesforce?credentialId={id}"));
    let waited = started.elapsed();
    assert_error(&waiter, 502, "REFRESH_FAILED");
    assert!(waited >= Duration::from_millis(900), "waited {waited:?}");
    assert!(
        waited < Duration::from_millis(2900),
        "waited {waited:?}, past the bound"
    );
    let (status, text, took) = refresher.join().expect("refresher");
    assert_eq!(status, 200, "{text}");
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert!(text.contains(&endpoint.issued()[0]), "{text}");
    assert_eq!(endpoint.call_count(), 1);
    // An endpoint that never answers: the attempt ends at 10 s.
    let hanging = tokens().endpoint();
    hanging.set_behavior(Behavior::Hang);
    let id = create_bearer(
        server,
        owner,
        &hanging.url(),
        bearer_secret("rt-hang-1"),
        json!(EXPIRED),
    );
    let started = Instant::now();
    let forced = force(server, owner, &id);
    let took = started.elapsed();
    assert_error(&forced, 502, "REFRESH_FAILED");
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(20),
        "{took:?}"
    );
    let data = details(server, owner, &id);
    assert_eq!(data["refresh"]["lastError"]["code"], "timeout", "{data}");
    own.stop();
}

#[test]
fn a_refresher_killed_mid_flight_is_replaced_once_its_lease_ends() {
    let mut own = Server::start(&[
        ("COFFER_REFRESH_ALLOW_LOOPBACK_HTTP", "true"),
        ("COFFER_REFRESH_WAIT_MS", "30000"),
    ]);
    let endpoint = tokens().endpoint();
    endpoint.set_behavior(Behavior::Hang);
    let owner = tenant();
    let id = create_bearer(
        &own,
        owner,
        &endpoint.url(),
        bearer_secret("rt-killed-1"),
        json!(EXPIRED),
    );
    let user_token = token(owner, "integration_user");
    let url = own.url(&format!("/connection/{id}/credentials"));
    let doomed = {
        let user_token = user_token.clone();
        thread::spawn(move || {
            // The server dies under this read: any outcome but a token.
            reqwest::blocking::Client::new()
                .get(url)
                .bearer_auth(user_token)
                .send()
                .ok()
                .map(|r| r.status().as_u16())
        })
    };
    assert!(
        endpoint.wait_for_calls(1, Duration::from_secs(20)),
        "the refresher called"
    );
    let leased_at = Instant::now();
    own.stop_with(true);
    let _ = doomed.join();
    own.restart();
    endpoint.set_behavior(Behavior::Issue);
    // The dead refresher's lease (15 s) still stands: this read waits for
    // it to end, takes over and refreshes.
    let read = Api::new(&own, user_token).get(&format!("/connection/{id}/credentials"));
    assert_eq!(read.status, 200, "{}", read.text);
    assert!(
        leased_at.elapsed() >= Duration::from_secs(12),
        "taken over only after the lease ended ({:?})",
        leased_at.elapsed()
    );
    assert_eq!(endpoint.call_count(), 2);
    assert_eq!(served_access_token(&read), endpoint.issued()[0]);
    own.stop();
}

#[test]
fn a_patch_racing_a_refresh_wins() {
    let server = server();
    let seed = std::env::var("REFRESH_RACE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::from(rand_chacha::rand_core::OsRng.next_u32()));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut superseded = 0;
    for round in 0..8 {
        let endpoint = tokens().endpoint();
        let delay = 100 + rng.next_u64() % 400;
        let offset = rng.next_u64() % 500;
        endpoint.set_delay(Duration::from_millis(delay));
        let owner = tenant();
        let id = create_bearer(
            server,
            owner,
            &endpoint.url(),
            bearer_secret("rt-race-1"),
            json!(EXPIRED),
        );
        let patched_secret = json!({"accessToken": format!("at-patched-{round}"),
                                    "refreshToken": "rt-patched", "clientId": "c"});
        let editor = api_for(server, owner, "integration_editor");
        let user = api_for(server, owner, "integration_user");
        let (read, patch) = thread::scope(|scope| {
            let reader = scope.spawn(|| read_credentials(&user, &id));
            let patcher = scope.spawn(|| {
                thread::sleep(Duration::from_millis(offset));
                editor.patch(
                    &format!("/api/v1/credentials/{id}"),
                    &json!({"credentials": patched_secret, "expiresAt": "2999-01-01T00:00:00.000Z"}),
                )
            });
            (
                reader.join().expect("reader"),
                patcher.join().expect("patcher"),
            )
        });
        let context =
            format!("seed {seed} round {round} (delay {delay} ms, PATCH after {offset} ms)");
        assert_eq!(patch.status, 200, "{context}: {}", patch.text);
        assert!(read.status == 200, "{context}: {}", read.text);
        let after = read_credentials(&user, &id);
        assert_eq!(
            after.body["data"]["credentials"], patched_secret,
            "{context}: the PATCH's secret must win over the refresh"
        );
        if endpoint.call_count() == 1
            && details(server, owner, &id)["refresh"]["lastRefreshedAt"].is_null()
        {
            superseded += 1;
        }
    }
    println!("PATCH-vs-refresh race: seed {seed}, {superseded} of 8 refreshes discarded");
}

#[test]
fn the_sweep_refreshes_ahead_of_expiry() {
    let server = server();
    let endpoint = tokens().endpoint();
    let owner = tenant();
    // Expires in 5 minutes: past the read skew (60 s), inside the sweep's
    // window (600 s).
    let id = create_bearer(
        server,
        owner,
        &endpoint.url(),
        bearer_secret("rt-sweep-1"),
        in_seconds(300),
    );
    let user = api_for(server, owner, "integration_user");
    assert_eq!(
        served_access_token(&read_credentials(&user, &id)),
        "at-original"
    );
    assert_eq!(endpoint.call_count(), 0, "not due for a read yet");
    run_sweeps(server);
    let deadline = Instant::now() + Duration::from_secs(20);
    while endpoint.call_count() == 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(endpoint.call_count(), 1);
    let data = details(server, owner, &id);
    assert_timestamp(&data["refresh"]["lastRefreshedAt"], "lastRefreshedAt");
    let expires = assert_timestamp(&data["expiresAt"], "expiresAt");
    assert!(expires > (now() + 3000) * 1000, "{data}");
    assert_eq!(
        served_access_token(&read_credentials(&user, &id)),
        endpoint.issued()[0]
    );
    run_sweeps(server);
    assert_eq!(endpoint.call_count(), 1, "a fresh token is not swept again");
    let audit = api_for(server, owner, "integration_admin")
        .get(&format!("/api/v1/audit?credentialId={id}"));
    let refresh = audit.body["data"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["action"] == "credential.refresh")
        .cloned()
        .unwrap_or_default();
    assert_eq!(refresh["outcome"], "success", "{}", audit.text);
    assert_eq!(refresh["actor"]["id"], "coffer");
    assert_eq!(refresh["actor"]["name"], "Coffer token refresh");
}

#[test]
fn status_endpoint_rules_and_roles() {
    let server = server();
    let endpoint = tokens().endpoint();
    let owner = tenant();
    let editor = api_for(server, owner, "integration_editor");
    // Inactive: 409 without refreshing.
    let id = create_bearer(
        server,
        owner,
        &endpoint.url(),
        bearer_secret("rt-status-1"),
        json!(EXPIRED),
    );
    let off = editor.patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"status": "inactive"}),
    );
    assert_eq!(off.status, 200, "{}", off.text);
    let user = api_for(server, owner, "integration_user");
    assert_error(&read_credentials(&user, &id), 409, "CREDENTIAL_NOT_ACTIVE");
    assert_error(&force(server, owner, &id), 409, "CREDENTIAL_NOT_ACTIVE");
    assert_eq!(endpoint.call_count(), 0);
    // A record that does not refresh: `refresh` null, forced 409.
    let plain = create_credential(
        &editor,
        &json!({"integrationId": "salesforce", "credentialName": "Key",
                "authType": "api_key", "tokenEndpoint": endpoint.url(),
                "credentials": {"refreshToken": "rt-not-oauth"}}),
    );
    assert_eq!(details(server, owner, &plain)["refresh"], Value::Null);
    assert_error(
        &force(server, owner, &plain),
        409,
        "CREDENTIAL_NOT_REFRESHABLE",
    );
    // Roles and tenancy of the forced route.
    let id = create_bearer(
        server,
        owner,
        &endpoint.url(),
        bearer_secret("rt-status-2"),
        in_seconds(3600),
    );
    let path = format!("/api/v1/credentials/{id}/refresh");
    for role in ["integration_viewer", "integration_user"] {
        let reply = api_for(server, owner, role).send(reqwest::Method::POST, &path, None);
        assert_error(&reply, 403, "INSUFFICIENT_PERMISSIONS");
    }
    let stranger =
        api_for(server, tenant(), "integration_admin").send(reqwest::Method::POST, &path, None);
    assert_error(&stranger, 404, "CREDENTIAL_NOT_FOUND");
    let anonymous = Api::anonymous(server).send(reqwest::Method::POST, &path, None);
    assert_eq!(anonymous.status, 401);
    let other = tenant();
    coffer_tests::fixtures::share(server, owner, &id, other);
    let shared =
        api_for(server, other, "integration_admin").send(reqwest::Method::POST, &path, None);
    assert_error(&shared, 403, "INSUFFICIENT_PERMISSIONS");
    assert_eq!(endpoint.call_count(), 0);
    // Plain http off loopback is never called.
    let insecure = create_bearer(
        server,
        owner,
        "http://example.com/token",
        bearer_secret("rt-insecure"),
        json!(EXPIRED),
    );
    assert_error(&read_credentials(&user, &insecure), 502, "REFRESH_FAILED");
    assert_eq!(
        details(server, owner, &insecure)["refresh"]["lastError"]["code"],
        "invalid_endpoint"
    );
    // A stored `expired` status becomes active after a refresh.
    let stale = create_bearer(
        server,
        owner,
        &endpoint.url(),
        bearer_secret("rt-status-3"),
        json!(EXPIRED),
    );
    run_sweeps(server); // marks it expired in storage, and refreshes it
    let data = details(server, owner, &stale);
    assert_eq!(data["status"], "active", "{data}");
    let listed =
        api_for(server, owner, "integration_viewer").get("/api/v1/credentials?status=active");
    assert!(listed.text.contains(&stale), "{}", listed.text);
}

#[test]
fn loopback_http_is_refused_unless_allowed() {
    // The default test server does not set COFFER_REFRESH_ALLOW_LOOPBACK_HTTP.
    let server = coffer_tests::harness::shared();
    let endpoint = tokens().endpoint();
    let owner = tenant();
    let id = create_bearer(
        server,
        owner,
        &endpoint.url(),
        bearer_secret("rt-loopback"),
        json!(EXPIRED),
    );
    let user = api_for(server, owner, "integration_user");
    assert_error(&read_credentials(&user, &id), 502, "REFRESH_FAILED");
    assert_eq!(endpoint.call_count(), 0);
    assert_eq!(
        details(server, owner, &id)["refresh"]["lastError"]["code"],
        "invalid_endpoint"
    );
}

#[test]
fn no_token_refresh_token_or_client_secret_leaks() {
    let server = server();
    let endpoint = tokens().endpoint();
    endpoint.rotate_from("rt-leak-0");
    let owner = tenant();
    let id = create_bearer(
        server,
        owner,
        &endpoint.url(),
        bearer_secret("rt-leak-0"),
        json!(EXPIRED),
    );
    let user = api_for(server, owner, "integration_user");
    assert_eq!(read_credentials(&user, &id).status, 200);
    assert_eq!(force(server, owner, &id).status, 200);
    endpoint.set_behavior(Behavior::OAuthError {
        status: 400,
        code: "invalid_grant".into(),
        description: format!(
            "{} {} {}",
            endpoint.issued_refresh()[1],
            endpoint.issued()[1],
            CLIENT_SECRET
        ),
    });
    let mut replies = vec![force(server, owner, &id)];
    replies.push(api_for(server, owner, "integration_viewer").get(&format!(
        "/api/v1/credentials/salesforce/details?credentialId={id}"
    )));
    replies.push(api_for(server, owner, "integration_viewer").get("/api/v1/credentials"));
    replies.push(
        Api::new(server, token(owner, "integration_viewer")).get(&format!("/connection/{id}")),
    );
    replies.push(Api::new(server, token(owner, "integration_viewer")).get("/connection"));
    replies.push(api_for(server, owner, "integration_admin").get("/api/v1/audit"));
    let mut secrets: Vec<String> = endpoint.issued();
    secrets.extend(endpoint.issued_refresh());
    secrets.extend([
        "rt-leak-0".to_string(),
        CLIENT_SECRET.to_string(),
        "at-original".to_string(),
    ]);
    for reply in &replies {
        for secret in &secrets {
            assert!(
                !reply.text.contains(secret.as_str()),
                "{secret} in {}",
                reply.text
            );
        }
    }
    assert!(
        replies[1].text.contains("[redacted]"),
        "{}",
        replies[1].text
    );
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_not_logged(server, &secrets);
}

#[test]
fn a_remembered_token_is_never_served_past_its_expiry() {
    let server = server();
    let endpoint = tokens().endpoint();
    let owner = tenant();
    let id = create_bearer(
        server,
        owner,
        &endpoint.url(),
        bearer_secret("rt-fast-1"),
        json!("2999-01-01T00:00:00.000Z"),
    );
    let user = api_for(server, owner, "integration_user");
    let connection = Api::new(server, token(owner, "integration_user"));
    // Served twice on each surface: the isolate now remembers the secret
    // write, and the next reads take the one-round-trip fast path.
    for _ in 0..2 {
        assert_eq!(
            served_access_token(&read_credentials(&user, &id)),
            "at-original"
        );
        assert_eq!(
            served_access_token(&read_connection(&connection, &id)),
            "at-original"
        );
    }
    assert_eq!(endpoint.call_count(), 0);
    // The expiry moves into the past without a new secret: the remembered
    // write is still the current one, yet its token must not be served.
    let editor = api_for(server, owner, "integration_editor");
    let patched = editor.patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"expiresAt": EXPIRED}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    let read = read_connection(&connection, &id);
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(endpoint.call_count(), 1, "the due token was refreshed");
    assert_eq!(served_access_token(&read), endpoint.issued()[0]);
    let read = read_credentials(&user, &id);
    assert_eq!(served_access_token(&read), endpoint.issued()[0]);
}

/// A version of `id` (the credentials surface), by number.
fn read_version(api: &Api<'_>, id: &str, version: u64) -> Reply {
    api.get(&format!(
        "/api/v1/credentials/salesforce?credentialId={id}&secretVersion={version}"
    ))
}

/// The secret versions of `id`, newest first: (number, current).
fn versions_of(server: &Server, owner: Uuid, id: &str) -> Vec<(u64, bool)> {
    let reply = api_for(server, owner, "integration_viewer")
        .get(&format!("/api/v1/credentials/{id}/versions"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["data"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            (
                item["secretVersion"].as_u64().expect("secretVersion"),
                item["current"].as_bool().expect("current"),
            )
        })
        .collect()
}

/// Issue 16 with issue 14: a refreshed token is written as every other
/// secret write is, as a new secret version sealed under the tenant's key,
/// the replaced one kept and readable; and once the tenant is deleted
/// (crypto-shredded), the sweep never calls the token endpoint for its
/// records, nor does the forced route, while another tenant's due record
/// is refreshed by the same runs.
#[test]
fn a_refresh_is_a_new_secret_version_under_the_tenant_key_and_shredded_tenants_never_refresh() {
    let server = server();
    let endpoint = tokens().endpoint();
    let owner = tenant();
    let id = create_bearer(
        server,
        owner,
        &endpoint.url(),
        bearer_secret("rt-versions-1"),
        json!(EXPIRED),
    );
    assert_eq!(versions_of(server, owner, &id), vec![(1, true)]);

    // The read refreshes the expired token, then serves the new one.
    let user = api_for(server, owner, "integration_user");
    let reply = read_credentials(&user, &id);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(endpoint.call_count(), 1);
    let fresh = endpoint.issued()[0].clone();
    assert_eq!(served_access_token(&reply), fresh);

    // A new secret version; the replaced one kept, and it still opens.
    let listed = versions_of(server, owner, &id);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let (current, earlier) = (listed[0], listed[1]);
    assert!(current.1 && !earlier.1, "{listed:?}");
    assert!(current.0 > earlier.0, "{listed:?}");
    assert_eq!(earlier.0, 1, "{listed:?}");
    let old = read_version(&user, &id, earlier.0);
    assert_eq!(old.status, 200, "{}", old.text);
    assert_eq!(old.body["data"]["secretVersion"], earlier.0, "{}", old.text);
    assert_eq!(served_access_token(&old), "at-original");
    let now_read = read_version(&user, &id, current.0);
    assert_eq!(now_read.status, 200, "{}", now_read.text);
    assert_eq!(served_access_token(&now_read), fresh);

    // Both data keys are under the tenant key: a tenant-key rotation moves
    // exactly these two (a data key sealed under the master key directly
    // would not be under it), and both versions open after it.
    let admin = api_for(server, owner, "integration_admin");
    let rotated = admin.post("/api/v1/tenant/keys/rotate", &json!({}));
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_eq!(rotated.body["data"]["rewrapped"], 2, "{}", rotated.text);
    assert_eq!(rotated.body["data"]["complete"], true, "{}", rotated.text);
    assert_eq!(
        served_access_token(&read_version(&user, &id, earlier.0)),
        "at-original"
    );
    assert_eq!(served_access_token(&read_credentials(&user, &id)), fresh);
    assert_eq!(
        endpoint.call_count(),
        1,
        "the fresh token is not refreshed again"
    );

    // A record of the same tenant, due for the sweep (inside its 600 s
    // window, outside the read skew), on an endpoint of its own; and the
    // control: another tenant's record, due a little later, so a sweep
    // that did not skip the deleted tenant would reach the doomed record
    // first (soonest first).
    let doomed_endpoint = tokens().endpoint();
    let doomed = create_bearer(
        server,
        owner,
        &doomed_endpoint.url(),
        bearer_secret("rt-doomed-1"),
        in_seconds(200),
    );
    let control_endpoint = tokens().endpoint();
    let other = tenant();
    let control = create_bearer(
        server,
        other,
        &control_endpoint.url(),
        bearer_secret("rt-control-1"),
        in_seconds(300),
    );
    let deleted = admin
        .clone()
        .header("x-confirm-tenant-deletion", owner.to_string())
        .delete("/api/v1/tenant");
    assert_eq!(deleted.status, 202, "{}", deleted.text);

    // The forced route answers as every record route does for a deleted
    // tenant's record: 404, no call.
    let forced = force(server, owner, &doomed);
    assert_error(&forced, 404, "CREDENTIAL_NOT_FOUND");
    run_sweeps(server);
    assert!(
        control_endpoint.wait_for_calls(1, Duration::from_secs(20)),
        "the control record was not refreshed by the sweep"
    );
    run_sweeps(server);
    assert_eq!(
        doomed_endpoint.call_count(),
        0,
        "a deleted tenant's record reached its token endpoint"
    );
    assert_eq!(endpoint.call_count(), 1);
    assert_eq!(
        details(server, other, &control)["refresh"]["failures"],
        0,
        "the control refreshed"
    );
}

/// A deleted tenant too big for one shred run: its earlier secret versions
/// (removed first, at most 1,000 rows a run) outlast the run, so its
/// records, one of them due for a refresh, are still in D1 when the same
/// run's refresh step looks for due records. The step skips them: no
/// token-endpoint call, and another tenant's record, due later, is still
/// refreshed by that run (a deleted tenant's record would otherwise come
/// first, and its secret, shredded, cannot be opened).
#[test]
fn the_sweep_skips_a_deleted_tenant_whose_shred_is_not_done() {
    let server = server();
    let owner = tenant();
    let editor = api_for(server, owner, "integration_editor");
    // 115 records × 9 earlier versions: 1,035 versions, over the 1,000
    // rows one shred run removes (`COFFER_SECRET_VERSIONS_KEPT` is 10).
    const RECORDS: usize = 115;
    const WRITERS: usize = 5;
    thread::scope(|scope| {
        for writer in 0..WRITERS {
            let editor = editor.clone();
            scope.spawn(move || {
                for n in (writer..RECORDS).step_by(WRITERS) {
                    let id = create_credential(
                        &editor,
                        &json!({"integrationId": "bulk", "credentialName": "Bulk",
                                "credentials": {"apiKey": format!("bulk-{n}-0")}}),
                    );
                    for version in 1..10 {
                        let reply = editor.patch(
                            &format!("/api/v1/credentials/{id}"),
                            &json!({"credentials": {"apiKey": format!("bulk-{n}-{version}")}}),
                        );
                        assert_eq!(reply.status, 200, "{}", reply.text);
                    }
                }
            });
        }
    });
    let doomed_endpoint = tokens().endpoint();
    let doomed = create_bearer(
        server,
        owner,
        &doomed_endpoint.url(),
        bearer_secret("rt-big-doomed-1"),
        in_seconds(200),
    );
    let control_endpoint = tokens().endpoint();
    let other = tenant();
    let control = create_bearer(
        server,
        other,
        &control_endpoint.url(),
        bearer_secret("rt-big-control-1"),
        in_seconds(300),
    );
    let deleted = api_for(server, owner, "integration_admin")
        .header("x-confirm-tenant-deletion", owner.to_string())
        .delete("/api/v1/tenant");
    assert_eq!(deleted.status, 202, "{}", deleted.text);
    run_sweeps(server);
    assert!(
        control_endpoint.wait_for_calls(1, Duration::from_secs(20)),
        "the control record was not refreshed by the sweep run"
    );
    assert_eq!(
        doomed_endpoint.call_count(),
        0,
        "a deleted tenant's record reached its token endpoint"
    );
    assert_eq!(details(server, other, &control)["refresh"]["failures"], 0);
    // The shred finishes over the next runs; still no call.
    run_sweeps(server);
    run_sweeps(server);
    assert_eq!(doomed_endpoint.call_count(), 0);
    let gone = api_for(server, owner, "integration_viewer").get(&format!(
        "/api/v1/credentials/salesforce/details?credentialId={doomed}"
    ));
    assert_eq!(gone.status, 404, "{}", gone.text);
}
