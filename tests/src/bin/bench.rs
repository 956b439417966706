//! `make bench`: requests per second and latency of the main routes under
//! one `wrangler dev`, each as a ratio of `/healthz` measured in the same
//! run (the machine is noisy; ratios are what compare across runs).
//!
//! Uses `wrk` (Debian's package) at 1 and 8 connections, `BENCH_SECONDS`
//! per cell (default 10).
//!
//! `PEER=<dir of a wrangler project>` (`make bench PEER=../shared/peers/ts-worker`)
//! instead measures Coffer against that Worker side by side: both served by
//! `wrangler dev --local --log-level warn` on this machine (Coffer, like the
//! peer, without `--test-scheduled`, whose middleware parses every
//! request's URL; the tests' servers have it), each route run
//! on the two servers alternately, `BENCH_ROUNDS` times (default 3; the
//! first server of each round alternates too), and the ratio of the summed
//! requests per second printed per route and connection count. Before
//! its rounds, each route runs `BENCH_WARMUP` seconds (default 3) on each
//! server, not counted: a long-lived isolate has compiled its hot code
//! with the optimizing tier (TurboFan for both the wasm and the peer's
//! JavaScript), and a cold one measures the baseline compilers instead.
//!
//! `BENCH_IDEAL=1` adds a third server on the details routes: a copy of the
//! peer whose served details take the least work a JavaScript Worker can do
//! for the same answer (`tests/bench/ideal-details.ts`), alternated with the
//! other two (each goes first in turn, so `BENCH_ROUNDS` a multiple of 3
//! gives each the first turn equally), and prints its ratio to the peer and
//! its `workerd` CPU per request: how far any Worker with one D1 round trip
//! gets ahead of the peer under `wrangler dev`.
use std::{path::Path, process::Command};

use coffer_tests::{
    client::Api,
    fixtures::{now, tenant, token, TokenBuilder},
    harness::Server,
    peer::Peer,
    procstat::{cpu_seconds_of, workerd_group},
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
///
/// With `error_status`, the route is measured for its error answer (a 404,
/// a 401: routes that touch no storage), so non-2xx answers are expected
/// and only socket errors and the rest refuse the run.
fn parse_wrk_expecting(report: &str, error_status: bool) -> Result<Cell, String> {
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
    if let Some(count) = field("Non-2xx or 3xx responses:").filter(|_| !error_status) {
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
    wrk_run(&Load::get(url, headers), connections, seconds)
}

/// One route's request as wrk sends it.
struct Load<'a> {
    url: String,
    headers: &'a [(String, String)],
    /// A wrk Lua script (a POST and its body).
    script: Option<&'a Path>,
    /// Measured for an error answer (see [`parse_wrk_expecting`]).
    error_status: bool,
}

impl<'a> Load<'a> {
    fn get(url: &str, headers: &'a [(String, String)]) -> Self {
        Self {
            url: url.to_string(),
            headers,
            script: None,
            error_status: false,
        }
    }
}

fn wrk_run(load: &Load<'_>, connections: u32, seconds: u32) -> Cell {
    let (url, headers) = (load.url.as_str(), load.headers);
    let mut command = Command::new("wrk");
    command
        .arg(format!("-c{connections}"))
        .arg(format!("-t{}", connections.min(2)))
        .arg(format!("-d{seconds}s"))
        // A loaded 2-core machine can hold a request past wrk's default 2 s;
        // a timeout would refuse the whole run.
        .args(["--timeout", "10s"])
        .arg("--latency");
    if let Some(script) = load.script {
        command.arg("-s").arg(script);
    }
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
    parse_wrk_expecting(&report, load.error_status).unwrap_or_else(|why| refuse(&why))
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
    // The API Worker alone, unless `BENCH_ASSETS=1`: with the console's
    // static assets, `wrangler dev` puts a router worker in front of every
    // request (see `harness::write_config`).
    if std::env::var("BENCH_ASSETS").as_deref() != Ok("1") {
        std::env::set_var("COFFER_SERVE_WITHOUT_ASSETS", "1");
    }
    let seconds: u32 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    if let Some(peer) = std::env::var_os("PEER").filter(|p| !p.is_empty()) {
        let rounds = std::env::var("BENCH_ROUNDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3);
        let warmup = std::env::var("BENCH_WARMUP")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3);
        compare(Path::new(&peer), seconds, rounds, warmup);
        return;
    }
    let log_level = request_log_level();
    let server =
        Server::start_without_test_scheduled(&[("COFFER_REQUEST_LOG", log_level.as_str())]);
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

/// `COFFER_REQUEST_LOG` for the measured server: the environment's, else
/// empty, which is the Worker's own default (the test servers log `all`).
fn request_log_level() -> String {
    std::env::var("COFFER_REQUEST_LOG").unwrap_or_default()
}

/// A server under comparison: its base URL and its workerd processes.
struct Side {
    base: String,
    workerd: Vec<u32>,
}

impl Side {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A `POST` of `path` when `method` is "POST", else a `GET`, with `headers`
    /// and, if any, a JSON `body`.
    fn request(
        &self,
        client: &reqwest::blocking::Client,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Option<&str>,
    ) -> reqwest::blocking::RequestBuilder {
        let mut request = match method {
            "POST" => client.post(self.url(path)),
            _ => client.get(self.url(path)),
        };
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        request
    }

    /// Sends one request and returns its status and body, ending the bench
    /// unless the status is `expected`.
    fn check(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Option<&str>,
        expected: u16,
    ) -> serde_json::Value {
        let client = reqwest::blocking::Client::new();
        let request = self.request(&client, method, path, headers, body);
        let response = request.send().unwrap_or_else(|error| {
            eprintln!("bench: {method} {} failed: {error}", self.url(path));
            std::process::exit(1)
        });
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        if status != expected {
            eprintln!(
                "bench: {method} {} answered {status}, expected {expected}: {text}",
                self.url(path)
            );
            std::process::exit(1);
        }
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    /// Ends the bench unless the ideal peer's own details path (not the
    /// peer's router it falls back to) answers `path` with 200.
    fn check_ideal(&self, path: &str, headers: &[(String, String)]) {
        let client = reqwest::blocking::Client::new();
        let request = self.request(&client, "GET", path, headers, None);
        let served = request.send().is_ok_and(|response| {
            response.status().as_u16() == 200
                && response
                    .headers()
                    .get("x-bench-path")
                    .is_some_and(|value| value == "ideal")
        });
        if !served {
            eprintln!("bench: the ideal peer did not serve {path} by its own path");
            std::process::exit(1);
        }
    }

    /// POSTs `body` to `path` `count` times, each answered 201.
    fn post_many(&self, path: &str, headers: &[(String, String)], body: &str, count: usize) {
        let client = reqwest::blocking::Client::new();
        for _ in 0..count {
            let status = self
                .request(&client, "POST", path, headers, Some(body))
                .send()
                .map(|response| response.status().as_u16())
                .unwrap_or(0);
            if status != 201 {
                eprintln!("bench: seeding POST {} answered {status}", self.url(path));
                std::process::exit(1);
            }
        }
    }
}

/// Records the "2,000 records" details route finds in its integration.
const MANY_RECORDS: usize = 2_000;

/// One compared route: what Coffer serves and what the peer serves for it.
struct Compared {
    name: &'static str,
    coffer: (String, u16),
    peer: (String, u16),
    /// What the ideal peer serves, on the routes it is measured on.
    ideal: Option<(String, u16)>,
    post: bool,
}

/// The peer's source file the ideal variant changes, and the line it
/// replaces with `tests/bench/ideal-details.ts`.
const IDEAL_SOURCE: &str = "src/index.ts";
const IDEAL_REPLACES: &str = "export default app;";

/// Turns a copy of the peer into its ideal variant (`BENCH_IDEAL=1`).
fn patch_ideal(dir: &Path) {
    let path = dir.join(IDEAL_SOURCE);
    let source = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        eprintln!("bench: BENCH_IDEAL reads the peer's {IDEAL_SOURCE}: {error}");
        std::process::exit(1)
    });
    if source.matches(IDEAL_REPLACES).count() != 1 {
        eprintln!(
            "bench: BENCH_IDEAL needs exactly one `{IDEAL_REPLACES}` in the peer's {IDEAL_SOURCE}"
        );
        std::process::exit(1);
    }
    let ideal = include_str!("../../bench/ideal-details.ts");
    std::fs::write(&path, source.replace(IDEAL_REPLACES, ideal))
        .expect("write the ideal peer's source");
}

/// `make bench PEER=<dir>`: each route on Coffer and on the peer, alternating.
///
/// `BENCH_ROUTES` (comma-separated words) keeps only the routes whose name
/// contains one of them, `BENCH_CONNS` (e.g. `1` or `1,8`) picks the
/// connection counts, and `COFFER_REQUEST_LOG` sets Coffer's log level
/// (unset: the Worker's default, as deployed). `BENCH_ASSETS=1` serves
/// Coffer with the console's static assets, as `make dev` does.
fn compare(peer_dir: &Path, seconds: u32, rounds: usize, warmup: u32) {
    let log_level = request_log_level();
    let server =
        Server::start_without_test_scheduled(&[("COFFER_REQUEST_LOG", log_level.as_str())]);
    eprintln!("bench: starting the peer from {}", peer_dir.display());
    let peer = Peer::start(peer_dir);
    let ideal_peer = (std::env::var("BENCH_IDEAL").as_deref() == Ok("1")).then(|| {
        eprintln!("bench: starting the ideal variant of the peer");
        Peer::start_patched(peer_dir, patch_ideal)
    });
    let coffer = Side {
        base: server.url(""),
        workerd: workerd_group(server.port()),
    };
    let other = Side {
        base: peer.url(""),
        workerd: workerd_group(peer.port()),
    };
    let ideal = ideal_peer.as_ref().map(|ideal| Side {
        base: ideal.url(""),
        workerd: workerd_group(ideal.port()),
    });
    eprintln!(
        "bench: workerd processes measured: Coffer {:?}, peer {:?}",
        coffer.workerd, other.workerd
    );
    let owner = tenant();
    // Both verify HS256 under the test servers' secret; two hours to live.
    let bearer = TokenBuilder::new(owner, "integration_admin")
        .claim("exp", json!(now() + 7200))
        .sign();
    let headers = vec![
        ("authorization".to_string(), format!("Bearer {bearer}")),
        ("x-tenantid".to_string(), owner.to_string()),
    ];
    let body = json!({
        "integrationId": "bench-integration",
        "credentialName": "Bench",
        "authType": "oauth2_bearer",
        "scopes": ["read", "write"],
        "metadata": {"environment": "production"},
        "credentials": {"accessToken": "at-0123456789abcdef0123456789abcdef",
                        "refreshToken": "rt-0123456789abcdef0123456789abcdef"},
    })
    .to_string();
    let created = |side: &Side| -> String {
        let reply = side.check("POST", "/api/v1/credentials", &headers, Some(&body), 201);
        reply["data"]["id"]
            .as_str()
            .map(|id| id.trim_start_matches("cred-").to_string())
            .unwrap_or_else(|| {
                eprintln!("bench: no id in the create answer {reply}");
                std::process::exit(1)
            })
    };
    let (coffer_id, peer_id) = (created(&coffer), created(&other));
    let ideal_id = ideal.as_ref().map(created).unwrap_or_default();
    // The create route writes to an integration of its own: the details
    // routes then read the same records on both sides, however many each
    // side's create run added.
    let in_integration = |integration: &str| body.replace("bench-integration", integration);
    let writes_body = in_integration("bench-writes");
    let script =
        std::env::temp_dir().join(format!("coffer-bench-create-{}.lua", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{}'\nwrk.headers[\"content-type\"] = \"application/json\"\n",
            writes_body.replace('\'', "\\'")
        ),
    )
    .expect("write the wrk script");
    let details = "/api/v1/credentials/bench-integration/details".to_string();
    let many_details = "/api/v1/credentials/bench-many/details".to_string();
    let routes = vec![
        Compared {
            name: "no storage: 404 (peer: healthz)",
            coffer: ("/no/such/route".into(), 404),
            peer: ("/healthz".into(), 200),
            ideal: None,
            post: false,
        },
        Compared {
            name: "no storage: 401 (peer: healthz)",
            coffer: (details.clone(), 401),
            peer: ("/healthz".into(), 200),
            ideal: None,
            post: false,
        },
        Compared {
            name: "healthz",
            coffer: ("/healthz".into(), 200),
            peer: ("/healthz".into(), 200),
            ideal: None,
            post: false,
        },
        Compared {
            name: "details",
            coffer: (details.clone(), 200),
            peer: (details.clone(), 200),
            ideal: Some((details.clone(), 200)),
            post: false,
        },
        Compared {
            name: "details by id (`?credentialId=`)",
            coffer: (format!("{details}?credentialId=cred-{coffer_id}"), 200),
            peer: (format!("{details}?credentialId=cred-{peer_id}"), 200),
            ideal: Some((format!("{details}?credentialId=cred-{ideal_id}"), 200)),
            post: false,
        },
        Compared {
            name: "details, 2,000 records in the integration",
            coffer: (many_details.clone(), 200),
            peer: (many_details.clone(), 200),
            ideal: Some((many_details.clone(), 200)),
            post: false,
        },
        Compared {
            name: "decrypted read, connection surface",
            coffer: (format!("/connection/{coffer_id}/credentials"), 200),
            peer: (format!("/connection/{peer_id}/credentials"), 200),
            ideal: None,
            post: false,
        },
        Compared {
            name: "decrypted read, credentials surface (peer: connection)",
            coffer: (
                format!("/api/v1/credentials/bench-integration?credentialId=cred-{coffer_id}"),
                200,
            ),
            peer: (format!("/connection/{peer_id}/credentials"), 200),
            ideal: None,
            post: false,
        },
        Compared {
            name: "create",
            coffer: ("/api/v1/credentials".into(), 201),
            peer: ("/api/v1/credentials".into(), 201),
            ideal: None,
            post: true,
        },
    ];
    let wanted = std::env::var("BENCH_ROUTES").unwrap_or_default();
    let routes: Vec<Compared> = routes
        .into_iter()
        .filter(|route| {
            wanted.is_empty()
                || wanted
                    .split(',')
                    .any(|word| !word.is_empty() && route.name.contains(word))
        })
        .collect();
    let connection_counts: Vec<u32> = std::env::var("BENCH_CONNS")
        .ok()
        .map(|text| {
            text.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .filter(|counts: &Vec<u32>| !counts.is_empty())
        .unwrap_or_else(|| vec![1, 8]);
    if routes.iter().any(|route| route.coffer.0 == many_details) {
        // A tenant with many connections of one integration: the details
        // route's selection rule picks the newest active one among them.
        let many_body = in_integration("bench-many");
        for side in [Some(&coffer), Some(&other), ideal.as_ref()]
            .into_iter()
            .flatten()
        {
            side.post_many("/api/v1/credentials", &headers, &many_body, MANY_RECORDS);
        }
    }
    let none: Vec<(String, String)> = Vec::new();
    for route in &routes {
        for (side, (path, status)) in [(&coffer, &route.coffer), (&other, &route.peer)] {
            let with = if *status == 200 || *status == 201 {
                &headers
            } else {
                &none
            };
            let (method, payload) = if route.post {
                ("POST", Some(body.as_str()))
            } else {
                ("GET", None)
            };
            side.check(method, path, with, payload, *status);
        }
        if let (Some(side), Some((path, _))) = (&ideal, &route.ideal) {
            side.check_ideal(path, &headers);
        }
    }
    println!("Coffer against {} under wrangler dev --local (log level warn, no --test-scheduled), {rounds} rounds of {seconds} s, alternating, after {warmup} s of warm-up per route and server", peer_dir.display());
    let ideal_column = if ideal.is_some() {
        (" ideal JS / peer (its CPU ms/req) |", "---|")
    } else {
        ("", "")
    };
    println!(
        "| route | conns | Coffer req/s | peer req/s | Coffer / peer | Coffer p50 | peer p50 | Coffer CPU ms/req | peer CPU ms/req | peer / Coffer CPU |{}",
        ideal_column.0
    );
    println!(
        "|---|---|---|---|---|---|---|---|---|---|{}",
        ideal_column.1
    );
    for &connections in &connection_counts {
        for route in &routes {
            let load = |side: &Side, (path, status): &(String, u16)| Load {
                url: side.url(path),
                headers: if *status == 200 || *status == 201 {
                    &headers
                } else {
                    &none
                },
                script: route.post.then_some(script.as_path()),
                error_status: *status >= 400,
            };
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            // workerd CPU seconds and requests, per side, over all rounds.
            let (mut our_cpu, mut their_cpu) = ((0.0, 0.0), (0.0, 0.0));
            let measured = |side: &Side, load: &Load<'_>, cpu: &mut (f64, f64)| {
                let before = cpu_seconds_of(&side.workerd);
                let cell = wrk_run(load, connections, seconds);
                if !side.workerd.is_empty() {
                    cpu.0 += cpu_seconds_of(&side.workerd) - before;
                    cpu.1 += cell.rps * f64::from(seconds);
                }
                cell
            };
            // The ideal peer, where this route measures it.
            let third = ideal.as_ref().zip(route.ideal.as_ref());
            if warmup > 0 {
                wrk_run(&load(&coffer, &route.coffer), connections, warmup);
                wrk_run(&load(&other, &route.peer), connections, warmup);
                if let Some((side, target)) = third {
                    wrk_run(&load(side, target), connections, warmup);
                }
            }
            let (mut ideals, mut ideal_cpu) = (Vec::new(), (0.0, 0.0));
            for round in 0..rounds {
                let (a, b) = (load(&coffer, &route.coffer), load(&other, &route.peer));
                match third {
                    // Each of the three goes first in turn.
                    Some((side, target)) => {
                        let c = load(side, target);
                        for turn in 0..3 {
                            match (round + turn) % 3 {
                                0 => ours.push(measured(&coffer, &a, &mut our_cpu)),
                                1 => theirs.push(measured(&other, &b, &mut their_cpu)),
                                _ => ideals.push(measured(side, &c, &mut ideal_cpu)),
                            }
                        }
                    }
                    None if round % 2 == 0 => {
                        ours.push(measured(&coffer, &a, &mut our_cpu));
                        theirs.push(measured(&other, &b, &mut their_cpu));
                    }
                    None => {
                        theirs.push(measured(&other, &b, &mut their_cpu));
                        ours.push(measured(&coffer, &a, &mut our_cpu));
                    }
                }
            }
            let per_request = |(cpu, requests): (f64, f64)| {
                if requests > 0.0 {
                    cpu * 1000.0 / requests
                } else {
                    0.0
                }
            };
            let (our_ms, their_ms) = (per_request(our_cpu), per_request(their_cpu));
            let total = |cells: &[Cell]| cells.iter().map(|c| c.rps).sum::<f64>();
            let median_p50 = |cells: &[Cell]| {
                cells
                    .get(cells.len() / 2)
                    .map(|c| c.p50.clone())
                    .unwrap_or_default()
            };
            let (mine, peers) = (total(&ours), total(&theirs));
            let ideal_ratio = match (&ideal, third) {
                (Some(_), Some(_)) if peers > 0.0 => format!(
                    " {:.2} ({:.3}) |",
                    total(&ideals) / peers,
                    per_request(ideal_cpu)
                ),
                (Some(_), _) => " |".to_string(),
                (None, _) => String::new(),
            };
            println!(
                "| {} | {connections} | {:.0} | {:.0} | {:.2} | {} | {} | {our_ms:.3} | {their_ms:.3} | {:.2} |{ideal_ratio}",
                route.name,
                mine / rounds as f64,
                peers / rounds as f64,
                if peers > 0.0 { mine / peers } else { 0.0 },
                median_p50(&ours),
                median_p50(&theirs),
                if our_ms > 0.0 { their_ms / our_ms } else { 0.0 },
            );
        }
    }
    let size = std::fs::metadata(coffer_tests::harness::root().join("worker/build/index_bg.wasm"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!("Coffer .wasm: {size} bytes raw");
    let _ = std::fs::remove_file(&script);
}

#[cfg(test)]
mod tests {
    use super::{parse_wrk_expecting, Cell};

    fn parse_wrk(report: &str) -> Result<Cell, String> {
        parse_wrk_expecting(report, false)
    }

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
    fn error_routes_expect_their_error_answers_but_not_socket_errors() {
        let all_404 = with("  Non-2xx or 3xx responses: 2000");
        assert!(parse_wrk_expecting(&all_404, true).is_ok());
        assert!(parse_wrk_expecting(&all_404, false).is_err());
        let timeouts = with("  Socket errors: connect 0, read 0, write 0, timeout 5");
        assert!(parse_wrk_expecting(&timeouts, true).is_err());
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
