//! `make bench`: requests per second and latency of the main routes under
//! one `wrangler dev`, each as a ratio of `/healthz` measured in the same
//! run (the machine is noisy; ratios are what compare across runs).
//!
//! Uses `wrk` (Debian's package) at 1 and 8 connections, `BENCH_SECONDS`
//! per cell (default 10).
use std::process::Command;

use coffer_tests::{
    client::Api,
    fixtures::{tenant, token},
    harness::Server,
};
use serde_json::json;

/// Request headers as name/value pairs.
type Headers = Vec<(String, String)>;

struct Cell {
    rps: f64,
    p50: String,
    p99: String,
}

fn wrk(url: &str, connections: u32, seconds: u32, headers: &[(String, String)]) -> Cell {
    let mut command = Command::new("wrk");
    command
        .arg(format!("-c{connections}"))
        .arg(format!("-t{}", connections.min(2)))
        .arg(format!("-d{seconds}s"))
        .arg("--latency");
    for (name, value) in headers {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    let output = command
        .arg(url)
        .output()
        .expect("run wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |prefix: &str| {
        text.lines()
            .find_map(|line| {
                line.trim()
                    .strip_prefix(prefix)
                    .map(|rest| rest.trim().to_string())
            })
            .unwrap_or_else(|| "?".into())
    };
    let non_2xx = field("Non-2xx or 3xx responses:");
    assert!(
        non_2xx == "?",
        "wrk saw non-2xx responses on {url}: {non_2xx}\n{text}"
    );
    Cell {
        rps: field("Requests/sec:").parse().unwrap_or(0.0),
        p50: field("50%"),
        p99: field("99%"),
    }
}

fn main() {
    let seconds: u32 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let server = Server::start(&[]);
    let owner = tenant();
    let bearer = token(owner, "integration_admin");
    let api = Api::new(&server, bearer.clone()).header("x-tenantid", owner.to_string());
    let created = api.post(
        "/api/v1/credentials",
        &json!({
            "integrationId": "bench-integration",
            "credentialName": "Bench",
            "credentials": {"accessToken": "bench-access-token", "refreshToken": "bench-refresh"},
        }),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let auth = vec![
        ("authorization".to_string(), format!("Bearer {bearer}")),
        ("x-tenantid".to_string(), owner.to_string()),
    ];
    let routes: Vec<(&str, String, Headers)> = vec![
        ("GET /healthz", server.url("/healthz"), Vec::new()),
        (
            "GET details",
            server.url("/api/v1/credentials/bench-integration/details"),
            auth.clone(),
        ),
        (
            "GET decrypted read",
            server.url("/api/v1/credentials/bench-integration"),
            auth.clone(),
        ),
    ];
    let size = std::fs::metadata(coffer_tests::harness::root().join("worker/build/index_bg.wasm"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!("worker .wasm: {size} bytes raw");
    println!("| route | conns | req/s | ratio to /healthz | p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    for connections in [1, 8] {
        let mut baseline = None;
        for (name, url, headers) in &routes {
            let cell = wrk(url, connections, seconds, headers);
            let base = *baseline.get_or_insert(cell.rps);
            println!(
                "| {name} | {connections} | {:.0} | {:.2} | {} | {} |",
                cell.rps,
                if base > 0.0 { cell.rps / base } else { 0.0 },
                cell.p50,
                cell.p99
            );
        }
    }
}
