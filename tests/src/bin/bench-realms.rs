//! `make bench-realms`: requests per second of the details route with HS256,
//! RS256, ES256 and EdDSA tokens (the three from the loopback IdP), for one
//! or more builds of the Worker, alternating the builds round by round so
//! the noisy machine's drift falls on all of them alike.
//!
//! `BENCH_BUILDS` is a comma-separated list of built Worker directories
//! (default: `worker/build`), `BENCH_ROUNDS` the rounds (default 3),
//! `BENCH_SECONDS` each `wrk` run (default 10, one connection). Each cell
//! is also given as a ratio to HS256 in the same server, whose verification
//! (HMAC in the Worker) is the same in every build.
//!
//! With `BENCH_REFUSED=1` the tokens are expired: each request still
//! verifies the signature (claims are judged after it) but is then answered
//! 401 without any D1 or KV call, so the signature check is a visible share
//! of the request rather than hidden behind storage round trips.
//!
//! Besides req/s (wall clock, at the mercy of whatever else the machine
//! runs), each cell gives the CPU time workerd spent per request (its
//! `utime + stime` from `/proc` over the run, divided by the requests `wrk`
//! made): far less sensitive to other load, and what the signature check
//! actually costs.
extern crate alloc;

use alloc::collections::BTreeMap;
use std::process::Command;

use coffer_tests::{
    client::Api,
    fixtures::{tenant, token, TokenBuilder},
    harness::Server,
    idp::{self, Idp, Key},
    procstat::{cpu_seconds, workerd_pid},
};
use serde_json::json;

const REALM: &str = "bench";
const ISSUER: &str = "https://idp.test/bench";
const AUDIENCE: &str = "coffer";

fn env_or<T: core::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Requests per second and requests made by one `wrk` run at one connection.
fn wrk(url: &str, seconds: u32, headers: &[(String, String)], refused: bool) -> (f64, f64) {
    let mut command = Command::new("wrk");
    command.args(["-c1", "-t1", &format!("-d{seconds}s")]);
    for (name, value) in headers {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    let output = command
        .arg(url)
        .output()
        .expect("run wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        refused || !text.contains("Non-2xx"),
        "wrk saw non-2xx responses on {url}\n{text}"
    );
    let rps = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Requests/sec:"))
        .and_then(|rps| rps.trim().parse().ok())
        .unwrap_or(0.0);
    let requests = text
        .lines()
        .find_map(|line| line.trim().split_once(" requests in "))
        .and_then(|(count, _)| count.trim().parse().ok())
        .unwrap_or(0.0);
    (rps, requests)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let seconds: u32 = env_or("BENCH_SECONDS", 10);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let refused = env_or("BENCH_REFUSED", 0) == 1;
    let builds: Vec<String> = std::env::var("BENCH_BUILDS")
        .unwrap_or_default()
        .split(',')
        .filter(|dir| !dir.is_empty())
        .map(str::to_owned)
        .collect();
    let builds = if builds.is_empty() {
        vec![String::new()]
    } else {
        builds
    };

    let idp = Idp::start();
    let keys = [
        Key::rsa("bench-rsa", 0),
        Key::es256("bench-ec"),
        Key::eddsa("bench-ed"),
    ];
    idp.publish(
        "/bench",
        &[&keys[0], &keys[1], &keys[2]],
        Some("max-age=86400"),
    );
    let realm = idp::realm_entry(ISSUER, &idp.url("/bench"), AUDIENCE, json!("*"));
    let realms = json!({ REALM: realm }).to_string();

    // (build, algorithm) → req/s per round, and the ratio to HS256.
    let mut rps: BTreeMap<(usize, &str), Vec<f64>> = BTreeMap::new();
    let mut to_hs: BTreeMap<(usize, &str), Vec<f64>> = BTreeMap::new();
    let mut cpu_ms: BTreeMap<(usize, &str), Vec<f64>> = BTreeMap::new();
    for round in 1..=rounds {
        for (index, build) in builds.iter().enumerate() {
            // Read by the harness when it writes the server's config.
            std::env::set_var("COFFER_WORKER_BUILD", build);
            let server = Server::start(&[("AUTH_REALMS", &realms)]);
            let owner = tenant();
            // Long-lived tokens: a run lasts minutes.
            let exp = if refused { -3600 } else { 3600 };
            let claims = |role: &str| {
                TokenBuilder::new(owner, role)
                    .claim("iat", json!(coffer_tests::fixtures::now() - 7200))
                    .claim("exp", json!(coffer_tests::fixtures::now() + exp))
            };
            let api = Api::new(&server, token(owner, "integration_admin"))
                .header("x-tenantid", owner.to_string());
            let created = api.post(
                "/api/v1/credentials",
                &json!({
                    "integrationId": "bench-integration",
                    "credentialName": "Bench",
                    "credentials": {"accessToken": "bench-access-token"},
                }),
            );
            assert_eq!(created.status, 201, "{}", created.text);
            let realm_claims = claims("integration_admin")
                .claim("iss", json!(ISSUER))
                .claim("aud", json!(AUDIENCE))
                .claims();
            let tokens = [
                ("HS256", claims("integration_admin").sign(), false),
                ("RS256", keys[0].sign(&realm_claims), true),
                ("ES256", keys[1].sign(&realm_claims), true),
                ("EdDSA", keys[2].sign(&realm_claims), true),
            ];
            let url = server.url("/api/v1/credentials/bench-integration/details");
            let workerd = workerd_pid(server.port()).expect("workerd of the server");
            let mut hs = 0.0;
            for (algorithm, bearer, is_realm) in &tokens {
                let mut headers = vec![
                    ("authorization".to_owned(), format!("Bearer {bearer}")),
                    ("x-tenantid".to_owned(), owner.to_string()),
                ];
                if *is_realm {
                    headers.push(("realmname".to_owned(), REALM.to_owned()));
                }
                // Warm up: the JWKS fetch and the key import happen here.
                wrk(&url, 1, &headers, refused);
                let cpu_before = cpu_seconds(workerd);
                let (cell, requests) = wrk(&url, seconds, &headers, refused);
                let per_request_ms =
                    (cpu_seconds(workerd) - cpu_before) * 1000.0 / requests.max(1.0);
                cpu_ms
                    .entry((index, algorithm))
                    .or_default()
                    .push(per_request_ms);
                if *algorithm == "HS256" {
                    hs = cell;
                }
                println!(
                    "round {round} build {index} {algorithm}: {cell:.0} req/s, \
                     workerd {per_request_ms:.3} ms CPU per request"
                );
                rps.entry((index, algorithm)).or_default().push(cell);
                to_hs
                    .entry((index, algorithm))
                    .or_default()
                    .push(if hs > 0.0 { cell / hs } else { 0.0 });
            }
            drop(server);
        }
    }

    println!();
    println!(
        "| build | alg | req/s (median of {rounds}) | ratio to HS256 (median) | workerd CPU ms/request (median) |"
    );
    println!("|---|---|---|---|---|");
    for ((index, algorithm), values) in &mut rps {
        let ratio = to_hs
            .get_mut(&(*index, *algorithm))
            .map_or(0.0, |ratios| median(ratios));
        let build = builds
            .get(*index)
            .filter(|dir| !dir.is_empty())
            .map_or("worker/build", String::as_str);
        let cpu = cpu_ms
            .get_mut(&(*index, *algorithm))
            .map_or(0.0, |values| median(values));
        println!(
            "| {build} | {algorithm} | {:.0} | {ratio:.2} | {cpu:.3} |",
            median(values)
        );
    }
}
