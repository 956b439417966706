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

/// What one wrk run measured.
#[derive(Debug, PartialEq)]
struct Cell {
    rps: f64,
    p50: String,
    p99: String,
}

/// Reads wrk's report (`--latency`), refusing any run that was not clean:
/// figures from a run with socket errors, timeouts or error statuses would
/// measure the failures, not the route.
///
/// # Errors
///
/// A message naming what went wrong: no requests completed, socket errors
/// (connect, read, write, timeout), non-2xx/3xx answers, or a report
/// without the expected figures.
fn parse_wrk(report: &str) -> Result<Cell, String> {
    let field = |prefix: &str| {
        report.lines().find_map(|line| {
            line.trim()
                .strip_prefix(prefix)
                .map(|rest| rest.trim().to_string())
        })
    };
    // "  2000 requests in 10.00s, 300.00KB read"
    let completed: u64 = report
        .lines()
        .find_map(|line| {
            let (count, rest) = line.trim().split_once(' ')?;
            rest.starts_with("requests in ")
                .then(|| count.parse().ok())?
        })
        .ok_or("no \"N requests in\" line")?;
    if completed == 0 {
        return Err("no request completed".into());
    }
    // "  Socket errors: connect 0, read 0, write 0, timeout 5"
    if let Some(errors) = field("Socket errors:") {
        let total: u64 = errors
            .split(',')
            .map(|part| {
                part.split_whitespace()
                    .last()
                    .and_then(|count| count.parse::<u64>().ok())
                    .ok_or_else(|| format!("unreadable socket errors {errors:?}"))
            })
            .sum::<Result<u64, String>>()?;
        if total > 0 {
            return Err(format!("socket errors: {errors}"));
        }
    }
    // "  Non-2xx or 3xx responses: 12"
    if let Some(count) = field("Non-2xx or 3xx responses:") {
        return Err(format!(
            "{count} of {completed} answers were not 2xx or 3xx"
        ));
    }
    let rps: f64 = field("Requests/sec:")
        .ok_or("no Requests/sec line")?
        .parse()
        .map_err(|error| format!("unreadable Requests/sec: {error}"))?;
    if rps <= 0.0 {
        return Err(format!("{rps} requests per second"));
    }
    Ok(Cell {
        rps,
        p50: field("50%").ok_or("no 50% latency (run wrk with --latency)")?,
        p99: field("99%").ok_or("no 99% latency (run wrk with --latency)")?,
    })
}

/// Runs wrk against `url`; a run that fails or is not clean ends the bench.
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
    let report = String::from_utf8_lossy(&output.stdout);
    let refuse = |why: &str| -> ! {
        eprintln!(
            "bench: the run against {url} at {connections} connections is not clean: {why}\n\
             --- wrk stdout ---\n{report}\n--- wrk stderr ---\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::process::exit(1);
    };
    if !output.status.success() {
        refuse(&format!("wrk exited with {}", output.status));
    }
    parse_wrk(&report).unwrap_or_else(|why| refuse(&why))
}

/// Fails the bench unless `path` answers 2xx once with `headers`, before
/// wrk measures it: a misrouted or refused request is fast and would make a
/// fine-looking figure.
fn check_route(server: &Server, path: &str, headers: &[(String, String)]) {
    let mut api = Api::anonymous(server);
    for (name, value) in headers {
        api = api.header(name, value.clone());
    }
    let reply = api.get(path);
    if !(200..300).contains(&reply.status) {
        eprintln!(
            "bench: GET {path} answers {} before the run: {}",
            reply.status, reply.text
        );
        std::process::exit(1);
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
    let routes: Vec<(&str, &str, Headers)> = vec![
        ("GET /healthz", "/healthz", Vec::new()),
        (
            "GET details",
            "/api/v1/credentials/bench-integration/details",
            auth.clone(),
        ),
        (
            "GET decrypted read",
            "/api/v1/credentials/bench-integration",
            auth.clone(),
        ),
    ];
    for (_, path, headers) in &routes {
        check_route(&server, path, headers);
    }
    let size = std::fs::metadata(coffer_tests::harness::root().join("worker/build/index_bg.wasm"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!("worker .wasm: {size} bytes raw");
    println!("| route | conns | req/s | ratio to /healthz | p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    for connections in [1, 8] {
        let mut baseline = None;
        for (name, path, headers) in &routes {
            let cell = wrk(&server.url(path), connections, seconds, headers);
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

#[cfg(test)]
mod tests {
    use super::{parse_wrk, Cell};

    /// A clean `wrk --latency` report, as wrk 4.2 prints it.
    const CLEAN: &str = "Running 10s test @ http://127.0.0.1:8787/healthz
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.60ms    1.02ms  20.00ms   90.00%
    Req/Sec   200.00     20.00   250.00     80.00%
  Latency Distribution
     50%    4.60ms
     75%    5.00ms
     90%    5.50ms
     99%    8.00ms
  2000 requests in 10.00s, 300.00KB read
Requests/sec:    199.80
Transfer/sec:     30.00KB
";

    fn with(extra: &str) -> String {
        CLEAN.replace("Requests/sec:", &format!("{extra}\nRequests/sec:"))
    }

    fn check(report: &str, expected: Result<(), &str>) {
        let parsed = parse_wrk(report);
        match expected {
            Ok(()) => assert!(parsed.is_ok(), "{parsed:?}"),
            Err(needle) => {
                let error = parsed.expect_err("the run must be refused");
                assert!(
                    error.contains(needle),
                    "{error:?} should mention {needle:?}"
                );
            }
        }
    }

    #[test]
    fn a_clean_run_gives_its_figures() {
        assert_eq!(
            parse_wrk(CLEAN),
            Ok(Cell {
                rps: 199.8,
                p50: "4.60ms".into(),
                p99: "8.00ms".into(),
            })
        );
        check(
            &with("  Socket errors: connect 0, read 0, write 0, timeout 0"),
            Ok(()),
        );
    }

    #[test]
    fn unclean_runs_are_refused() {
        check(
            &with("  Socket errors: connect 0, read 0, write 0, timeout 5"),
            Err("timeout 5"),
        );
        check(
            &with("  Socket errors: connect 3, read 0, write 0, timeout 0"),
            Err("connect 3"),
        );
        check(
            &with("  Socket errors: connect 0, read 1, write 0, timeout 0"),
            Err("socket errors"),
        );
        check(
            &with("  Non-2xx or 3xx responses: 2000"),
            Err("2000 of 2000"),
        );
        check(
            &CLEAN.replace("2000 requests in", "0 requests in"),
            Err("no request completed"),
        );
        check(
            &CLEAN.replace("Requests/sec:    199.80\n", ""),
            Err("Requests/sec"),
        );
        check(
            "unable to connect to 127.0.0.1:1 Connection refused\n",
            Err("requests in"),
        );
        check(&CLEAN.replace("     99%    8.00ms\n", ""), Err("99%"));
    }
}
