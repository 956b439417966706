//! `make load`: a bounded mixed workload against one `wrangler dev`, with a
//! model of what the server must hold afterwards.
//!
//! Many tenants (each with an admin token and its own records) are driven by
//! blocking client threads, the concurrency stepping through levels. The mix:
//! 70% decrypted reads (credentials and connection surfaces), 20% details
//! and lists, 10% creates, updates (a new secret, with or without
//! `If-Match`) and deletes.
//!
//! The model keeps, per record, every acknowledged secret by version (the
//! `ETag` of the 200/201), the secrets of writes whose outcome is unknown
//! (network error or 5xx) and of writes refused with 412, whether it was
//! deleted, and how many decrypted reads succeeded. During the run every
//! served secret is checked against it (a secret never written, or older
//! than one acknowledged before the read began, is a failure); at the end
//! every live record must serve its last written secret, every deleted one
//! must be gone on every route, `accessCount` must equal the successful
//! decrypted reads, each tenant's list must match, and no 5xx may have
//! occurred. Exits non-zero when any check fails.
//!
//! Configuration (environment): `LOAD_SECONDS` (180, split across levels),
//! `LOAD_TENANTS` (20), `LOAD_RECORDS` (records seeded per tenant, 5),
//! `LOAD_CONCURRENCY` ("1,2,4,8,16,32"), `LOAD_SEED` (42),
//! `LOAD_MAX_REQUESTS` (500000, across all levels).
//!
//! Then the token refresh scenario (see `refresh_scenario`):
//! `LOAD_REFRESH_SECONDS` (30; 0 skips it), `LOAD_REFRESH_TENANTS` (10),
//! `LOAD_REFRESH_EXPIRES_IN` (3), `LOAD_REFRESH_CONCURRENCY` (8).
extern crate alloc;

use alloc::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};
use core::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};
use std::{
    sync::{Mutex, MutexGuard, PoisonError},
    thread,
    time::Instant,
};

use coffer_tests::{
    fixtures::{now, tenant, TokenBuilder},
    harness::Server,
};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore as _, SeedableRng as _};
use reqwest::{blocking::Client, Method};
use serde_json::{json, Value};
use uuid::Uuid;

/// The routes measured, in print order.
const ROUTES: [&str; 8] = [
    "GET cred secret",
    "GET conn secret",
    "GET details",
    "GET cred list",
    "GET conn list",
    "POST create",
    "PATCH update",
    "DELETE",
];
const R_SECRET: usize = 0;
const R_CONN_SECRET: usize = 1;
const R_DETAILS: usize = 2;
const R_LIST: usize = 3;
const R_CONN_LIST: usize = 4;
const R_CREATE: usize = 5;
const R_PATCH: usize = 6;
const R_DELETE: usize = 7;

/// Integrations each tenant's records are spread over.
const INTEGRATIONS: [&str; 3] = ["load-alpha", "load-beta", "load-gamma"];

/// Failures printed in full; the rest are counted.
const MAX_PRINTED: usize = 40;

struct Config {
    seconds: u64,
    tenants: usize,
    records: usize,
    levels: Vec<usize>,
    seed: u64,
    max_requests: u64,
}

fn env_or<T: core::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} does not parse")),
        _ => default,
    }
}

impl Config {
    fn from_env() -> Self {
        let levels: String = env_or("LOAD_CONCURRENCY", "1,2,4,8,16,32".to_string());
        let levels: Vec<usize> = levels
            .split(',')
            .map(|level| {
                level
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("LOAD_CONCURRENCY: {level:?} is not a number"))
            })
            .collect();
        assert!(
            !levels.is_empty() && levels.iter().all(|&level| level > 0),
            "LOAD_CONCURRENCY needs positive levels"
        );
        let config = Self {
            seconds: env_or("LOAD_SECONDS", 180),
            tenants: env_or("LOAD_TENANTS", 20),
            records: env_or("LOAD_RECORDS", 5),
            levels,
            seed: env_or("LOAD_SEED", 42),
            max_requests: env_or("LOAD_MAX_REQUESTS", 500_000),
        };
        assert!(config.tenants > 0, "LOAD_TENANTS must be positive");
        config
    }
}

/// A tenant and its admin token.
struct Tenant {
    id: Uuid,
    token: String,
}

/// What the load generator knows about one record.
struct Rec {
    tenant: usize,
    integration: String,
    /// The bare UUID.
    id: String,
    /// Acknowledged secrets (their tags) by the version the server gave.
    acked: BTreeMap<u64, String>,
    /// Secrets of updates whose outcome is unknown (network error, 5xx).
    pending: Vec<String>,
    /// Secrets of updates refused with 412: never to be served.
    refused: Vec<String>,
    /// A `DELETE` was acknowledged.
    deleted: bool,
    /// A `DELETE` is in flight or its outcome is unknown.
    deleting: bool,
    delete_unknown: bool,
    /// Writes (updates and deletes) started and finished, to tell whether a
    /// read overlapped one.
    writes_started: u64,
    writes_done: u64,
    /// Decrypted reads answered 200.
    reads_ok: u64,
    /// Decrypted reads whose outcome is unknown (network error, 5xx).
    reads_unknown: u64,
}

impl Rec {
    fn latest(&self) -> (u64, &str) {
        self.acked
            .iter()
            .next_back()
            .map(|(version, tag)| (*version, tag.as_str()))
            .expect("a record has its created version")
    }
}

/// One served secret, checked against the model at the end.
struct Seen {
    record: usize,
    route: usize,
    /// The newest acknowledged version when the read began.
    floor: u64,
    /// The `ETag` of the reply, when present.
    version: Option<u64>,
    tag: String,
}

#[derive(Default)]
struct Model {
    records: Vec<Rec>,
    /// Indexes of records that are neither deleted nor being deleted.
    live: Vec<usize>,
    /// Hot records (a fifth of the operations go to them, for contention).
    hot: Vec<usize>,
    seen: Vec<Seen>,
    /// Creates whose outcome is unknown, per tenant.
    unknown_creates: BTreeMap<usize, u64>,
    failures: Vec<String>,
}

impl Model {
    fn fail(&mut self, message: String) {
        self.failures.push(message);
    }
}

/// Latencies (µs) and statuses of one route at one level; status 0 is a
/// network error.
#[derive(Default, Clone)]
struct RouteStats {
    micros: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    /// A few 5xx and network-error bodies.
    samples: Vec<String>,
}

impl RouteStats {
    fn merge(&mut self, other: RouteStats) {
        self.micros.extend(other.micros);
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        for sample in other.samples {
            if self.samples.len() < 5 {
                self.samples.push(sample);
            }
        }
    }
}

type Stats = Vec<RouteStats>;

fn new_stats() -> Stats {
    vec![RouteStats::default(); ROUTES.len()]
}

/// A reply, or the network error that stood in for one.
struct Answer {
    status: u16,
    etag: Option<u64>,
    body: Value,
    text: String,
}

/// One request to send as a tenant's admin.
struct Req<'a> {
    route: usize,
    tenant: usize,
    method: Method,
    path: &'a str,
    body: Option<&'a Value>,
    if_match: Option<u64>,
}

impl<'a> Req<'a> {
    fn new(route: usize, tenant: usize, method: Method, path: &'a str) -> Self {
        Self {
            route,
            tenant,
            method,
            path,
            body: None,
            if_match: None,
        }
    }

    fn get(route: usize, tenant: usize, path: &'a str) -> Self {
        Self::new(route, tenant, Method::GET, path)
    }
}

struct Shared {
    base: String,
    client: Client,
    tenants: Vec<Tenant>,
    model: Mutex<Model>,
    requests: AtomicU64,
    max_requests: u64,
}

impl Shared {
    fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends one request as `tenant`'s admin, timing it into `stats`.
    fn call(&self, stats: &mut Stats, req: Req<'_>) -> Answer {
        let Req {
            route,
            tenant,
            method,
            path,
            body,
            if_match,
        } = req;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let who = &self.tenants[tenant];
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&who.token)
            .header("x-tenantid", who.id.to_string());
        if let Some(version) = if_match {
            request = request.header("if-match", format!("\"{version}\""));
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(serde_json::to_vec(body).expect("serialize body"));
        }
        let started = Instant::now();
        let result = request.send().and_then(|response| {
            let status = response.status().as_u16();
            let etag = response
                .headers()
                .get("etag")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| {
                    value
                        .trim_start_matches("W/")
                        .trim_matches('"')
                        .parse()
                        .ok()
                });
            response.text().map(|text| (status, etag, text))
        });
        let elapsed = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        let stat = &mut stats[route];
        stat.micros.push(elapsed);
        let answer = match result {
            Ok((status, etag, text)) => Answer {
                status,
                etag,
                body: serde_json::from_str(&text).unwrap_or(Value::Null),
                text,
            },
            Err(error) => Answer {
                status: 0,
                etag: None,
                body: Value::Null,
                text: format!("network error: {error}"),
            },
        };
        *stat.statuses.entry(answer.status).or_default() += 1;
        if (answer.status == 0 || answer.status >= 500) && stat.samples.len() < 5 {
            stat.samples.push(format!(
                "{} {path}: {}",
                answer.status,
                answer.text.chars().take(300).collect::<String>()
            ));
        }
        answer
    }
}

/// The secret object written under `tag`.
fn secret_of(tag: &str) -> Value {
    json!({"accessToken": tag, "refreshToken": format!("refresh-{tag}"), "kind": "load"})
}

/// The tag of a served secret, if the object is exactly one we wrote.
fn tag_of(credentials: &Value) -> Option<String> {
    let tag = credentials["accessToken"].as_str()?;
    (secret_of(tag) == *credentials).then(|| tag.to_string())
}

fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    usize::try_from(rng.next_u64() % u64::try_from(n).expect("usize fits u64"))
        .expect("below n fits usize")
}

fn create_body(integration: &str, name: &str, tag: &str) -> Value {
    json!({
        "integrationId": integration,
        "credentialName": name,
        "authType": "oauth2_bearer",
        "credentials": secret_of(tag),
    })
}

/// Records a created record in the model and returns its index.
fn add_record(
    model: &mut Model,
    tenant: usize,
    integration: &str,
    answer: &Answer,
    tag: &str,
) -> Option<usize> {
    let rendered = answer.body["data"]["id"].as_str().unwrap_or_default();
    let Some(id) = rendered.strip_prefix("cred-") else {
        model.fail(format!("POST 201 without a cred- id: {}", answer.text));
        return None;
    };
    let version = answer.etag.unwrap_or(1);
    if version != 1 {
        model.fail(format!("POST 201 for {id} carried ETag {version}, not 1"));
    }
    let index = model.records.len();
    model.records.push(Rec {
        tenant,
        integration: integration.to_string(),
        id: id.to_string(),
        acked: BTreeMap::from([(1, tag.to_string())]),
        pending: Vec::new(),
        refused: Vec::new(),
        deleted: false,
        deleting: false,
        delete_unknown: false,
        writes_started: 0,
        writes_done: 0,
        reads_ok: 0,
        reads_unknown: 0,
    });
    model.live.push(index);
    Some(index)
}

/// One client thread's work at one level.
struct Worker {
    shared: Arc<Shared>,
    rng: ChaCha8Rng,
    stats: Stats,
    label: String,
    serial: u64,
}

impl Worker {
    fn next_tag(&mut self) -> String {
        self.serial += 1;
        format!("{}-{}-{:08x}", self.label, self.serial, self.rng.next_u32())
    }

    /// A live record: a hot one a fifth of the time.
    fn pick(&mut self, model: &Model) -> Option<usize> {
        let hot: Vec<usize> = model
            .hot
            .iter()
            .copied()
            .filter(|&index| !model.records[index].deleting && !model.records[index].deleted)
            .collect();
        if !hot.is_empty() && below(&mut self.rng, 5) == 0 {
            return Some(hot[below(&mut self.rng, hot.len())]);
        }
        if model.live.is_empty() {
            return None;
        }
        Some(model.live[below(&mut self.rng, model.live.len())])
    }

    fn step(&mut self) {
        let roll = below(&mut self.rng, 100);
        match roll {
            0..=54 => self.read_secret(R_SECRET),
            55..=69 => self.read_secret(R_CONN_SECRET),
            70..=79 => self.details(),
            80..=84 => self.list(R_LIST),
            85..=89 => self.list(R_CONN_LIST),
            90..=92 => self.create(),
            93..=97 => self.update(),
            _ => self.delete(),
        }
    }

    fn read_secret(&mut self, route: usize) {
        let shared = Arc::clone(&self.shared);
        let picked = {
            let model = shared.model();
            self.pick(&model).map(|index| {
                let rec = &model.records[index];
                (
                    index,
                    rec.tenant,
                    rec.integration.clone(),
                    rec.id.clone(),
                    rec.latest().0,
                    rec.writes_started,
                    rec.writes_done,
                )
            })
        };
        let Some((index, tenant, integration, id, floor, started, done)) = picked else {
            return;
        };
        let path = if route == R_SECRET {
            let shown = if self.rng.next_u32().is_multiple_of(2) {
                format!("cred-{id}")
            } else {
                id.clone()
            };
            format!("/api/v1/credentials/{integration}?credentialId={shown}")
        } else {
            format!("/connection/{id}/credentials")
        };
        let answer = shared.call(&mut self.stats, Req::get(route, tenant, &path));
        let mut model = shared.model();
        let rec = &mut model.records[index];
        let overlapped = started != done || rec.writes_started != started || rec.delete_unknown;
        match answer.status {
            200 => {
                rec.reads_ok += 1;
                let credentials = &answer.body["data"]["credentials"];
                match tag_of(credentials) {
                    Some(tag) => model.seen.push(Seen {
                        record: index,
                        route,
                        floor,
                        version: answer.etag,
                        tag,
                    }),
                    None => model.fail(format!(
                        "{} {path}: served a secret that is not one we wrote: {}",
                        ROUTES[route], answer.text
                    )),
                }
            }
            // A concurrent update (new secret version) or delete.
            404 if overlapped => {}
            0 => rec.reads_unknown += 1,
            status if status >= 500 => rec.reads_unknown += 1,
            status => model.fail(format!(
                "{} {path}: unexpected {status} (no write overlapped): {}",
                ROUTES[route], answer.text
            )),
        }
    }

    fn details(&mut self) {
        let shared = Arc::clone(&self.shared);
        let picked = {
            let model = shared.model();
            self.pick(&model).map(|index| {
                let rec = &model.records[index];
                (
                    index,
                    rec.tenant,
                    rec.integration.clone(),
                    rec.id.clone(),
                    rec.writes_started,
                    rec.writes_done,
                )
            })
        };
        let Some((index, tenant, integration, id, started, done)) = picked else {
            return;
        };
        let path = format!("/api/v1/credentials/{integration}/details?credentialId=cred-{id}");
        let answer = shared.call(&mut self.stats, Req::get(R_DETAILS, tenant, &path));
        let mut model = shared.model();
        let rec = &model.records[index];
        let overlapped = started != done || rec.writes_started != started || rec.delete_unknown;
        match answer.status {
            200 => {
                if answer.body["data"]["id"] != json!(format!("cred-{id}")) {
                    model.fail(format!("GET {path}: wrong record: {}", answer.text));
                }
            }
            404 if overlapped => {}
            status if status == 0 || status >= 500 => {}
            status => model.fail(format!("GET {path}: unexpected {status}: {}", answer.text)),
        }
    }

    fn list(&mut self, route: usize) {
        let shared = Arc::clone(&self.shared);
        let tenant = below(&mut self.rng, shared.tenants.len());
        let limit = 1 + below(&mut self.rng, 50);
        let path = if route == R_LIST {
            format!("/api/v1/credentials?limit={limit}")
        } else {
            format!("/connection?limit={limit}")
        };
        let answer = shared.call(&mut self.stats, Req::get(route, tenant, &path));
        if answer.status != 200 && answer.status != 0 && answer.status < 500 {
            shared.model().fail(format!(
                "GET {path}: unexpected {}: {}",
                answer.status, answer.text
            ));
        }
    }

    fn create(&mut self) {
        let shared = Arc::clone(&self.shared);
        let tenant = below(&mut self.rng, shared.tenants.len());
        let integration = INTEGRATIONS[below(&mut self.rng, INTEGRATIONS.len())];
        let tag = self.next_tag();
        let body = create_body(integration, &format!("Load {tag}"), &tag);
        let answer = shared.call(
            &mut self.stats,
            Req {
                body: Some(&body),
                if_match: None,
                ..Req::new(R_CREATE, tenant, Method::POST, "/api/v1/credentials")
            },
        );
        let mut model = shared.model();
        match answer.status {
            201 => {
                add_record(&mut model, tenant, integration, &answer, &tag);
            }
            status if status == 0 || status >= 500 => {
                *model.unknown_creates.entry(tenant).or_default() += 1;
            }
            status => model.fail(format!(
                "POST /api/v1/credentials: unexpected {status}: {}",
                answer.text
            )),
        }
    }

    fn update(&mut self) {
        let shared = Arc::clone(&self.shared);
        let with_if_match = self.rng.next_u32().is_multiple_of(2);
        let tag = self.next_tag();
        let picked = {
            let mut model = shared.model();
            let picked = self.pick(&model);
            picked.map(|index| {
                let rec = &mut model.records[index];
                rec.writes_started += 1;
                (index, rec.tenant, rec.id.clone(), rec.latest().0)
            })
        };
        let Some((index, tenant, id, version)) = picked else {
            return;
        };
        let body = json!({
            "credentials": secret_of(&tag),
            "description": format!("rotated to {tag}"),
        });
        let path = format!("/api/v1/credentials/cred-{id}");
        let answer = shared.call(
            &mut self.stats,
            Req {
                body: Some(&body),
                if_match: with_if_match.then_some(version),
                ..Req::new(R_PATCH, tenant, Method::PATCH, &path)
            },
        );
        let mut model = shared.model();
        let rec = &mut model.records[index];
        rec.writes_done += 1;
        let gone = rec.deleting || rec.deleted;
        match answer.status {
            200 => match answer.etag {
                Some(version) => {
                    if let Some(previous) = rec.acked.insert(version, tag.clone()) {
                        model.fail(format!(
                            "PATCH {path}: version {version} acknowledged twice ({previous}, {tag})"
                        ));
                    }
                }
                None => {
                    rec.pending.push(tag);
                    model.fail(format!("PATCH {path}: 200 without an ETag"));
                }
            },
            412 if with_if_match => rec.refused.push(tag),
            404 if gone => {}
            status if status == 0 || status >= 500 => rec.pending.push(tag),
            status => model.fail(format!(
                "PATCH {path}: unexpected {status}: {}",
                answer.text
            )),
        }
    }

    fn delete(&mut self) {
        let shared = Arc::clone(&self.shared);
        let picked = {
            let mut model = shared.model();
            // Hot records stay; keep at least a few records per run.
            let candidates: Vec<usize> = model
                .live
                .iter()
                .copied()
                .filter(|index| !model.hot.contains(index))
                .collect();
            if candidates.len() < 10 {
                None
            } else {
                let index = candidates[below(&mut self.rng, candidates.len())];
                model.live.retain(|&live| live != index);
                let rec = &mut model.records[index];
                rec.deleting = true;
                rec.writes_started += 1;
                Some((index, rec.tenant, rec.id.clone()))
            }
        };
        let Some((index, tenant, id)) = picked else {
            return;
        };
        let path = format!("/api/v1/credentials/cred-{id}");
        let answer = shared.call(
            &mut self.stats,
            Req::new(R_DELETE, tenant, Method::DELETE, &path),
        );
        let mut model = shared.model();
        let rec = &mut model.records[index];
        rec.writes_done += 1;
        match answer.status {
            200 => rec.deleted = true,
            status if status == 0 || status >= 500 => rec.delete_unknown = true,
            status => {
                // Not deleted: back into the pool.
                rec.deleting = false;
                model.live.push(index);
                model.fail(format!(
                    "DELETE {path}: unexpected {status}: {}",
                    answer.text
                ));
            }
        }
    }
}

fn percentile(sorted: &[u32], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

fn print_row(level: &str, route: &str, stats: &RouteStats, seconds: f64) {
    let mut sorted = stats.micros.clone();
    sorted.sort_unstable();
    let count = sorted.len();
    let errors: u64 = stats
        .statuses
        .iter()
        .filter(|(status, _)| **status == 0 || **status >= 500)
        .map(|(_, count)| count)
        .sum();
    println!(
        "| {level} | {route} | {count} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {errors} |",
        count as f64 / seconds.max(0.001),
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.99),
        percentile(&sorted, 0.999),
        sorted.last().map_or(0.0, |max| f64::from(*max) / 1000.0),
    );
}

fn total(stats: &Stats) -> RouteStats {
    let mut all = RouteStats::default();
    for route in stats {
        all.merge(route.clone());
    }
    all
}

/// Runs `concurrency` workers until `seconds` pass or the request budget is
/// spent; returns their merged stats and the elapsed seconds.
fn run_level(
    shared: &Arc<Shared>,
    seed: u64,
    concurrency: usize,
    seconds: f64,
    budget: u64,
) -> (Stats, f64) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let handles: Vec<_> = (0..concurrency)
        .map(|thread_index| {
            let shared = Arc::clone(shared);
            let thread_seed = seed
                ^ (u64::try_from(concurrency).expect("fits") << 32)
                ^ u64::try_from(thread_index).expect("fits");
            thread::spawn(move || {
                let mut worker = Worker {
                    shared,
                    rng: ChaCha8Rng::seed_from_u64(thread_seed),
                    stats: new_stats(),
                    label: format!("c{concurrency}t{thread_index}"),
                    serial: 0,
                };
                while Instant::now() < deadline
                    && worker.shared.requests.load(Ordering::Relaxed) < budget
                {
                    worker.step();
                }
                worker.stats
            })
        })
        .collect();
    let mut stats = new_stats();
    for handle in handles {
        let worker_stats = handle.join().expect("load thread panicked");
        for (route, route_stats) in worker_stats.into_iter().enumerate() {
            stats[route].merge(route_stats);
        }
    }
    (stats, started.elapsed().as_secs_f64())
}

/// The checks after the run: every record against the model.
fn verify(shared: &Shared) -> (Vec<String>, Stats) {
    let mut stats = new_stats();
    let mut model = shared.model();
    let mut failures = core::mem::take(&mut model.failures);

    // Served secrets during the run.
    for seen in &model.seen {
        let rec = &model.records[seen.record];
        let what = format!("{} of {}", ROUTES[seen.route], rec.id);
        let version_of_tag = rec
            .acked
            .iter()
            .find(|(_, tag)| **tag == seen.tag)
            .map(|(version, _)| *version);
        match version_of_tag {
            Some(version) => {
                if version < seen.floor {
                    failures.push(format!(
                        "{what}: stale read, served version {version} after version {} was \
                         acknowledged",
                        seen.floor
                    ));
                }
                if let Some(etag) = seen.version {
                    if etag != version {
                        failures.push(format!(
                            "{what}: ETag {etag} with the secret of version {version}"
                        ));
                    }
                }
            }
            None if rec.pending.contains(&seen.tag) => {}
            None if rec.refused.contains(&seen.tag) => failures.push(format!(
                "{what}: served the secret of an update refused with 412 ({})",
                seen.tag
            )),
            None => failures.push(format!(
                "{what}: served a secret never written to it ({})",
                seen.tag
            )),
        }
    }

    let mut checked_live = 0;
    let mut checked_deleted = 0;
    let mut uncertain = 0;
    for index in 0..model.records.len() {
        let (tenant, integration, id) = {
            let rec = &model.records[index];
            (rec.tenant, rec.integration.clone(), rec.id.clone())
        };
        let secret_path = format!("/api/v1/credentials/{integration}?credentialId=cred-{id}");
        let conn_path = format!("/connection/{id}/credentials");
        let details_path =
            format!("/api/v1/credentials/{integration}/details?credentialId=cred-{id}");
        let get = |stats: &mut Stats, route: usize, path: &str| {
            shared.call(stats, Req::get(route, tenant, path))
        };
        let rec = &model.records[index];
        if rec.deleted || rec.delete_unknown {
            let secret = get(&mut stats, R_SECRET, &secret_path);
            let conn = get(&mut stats, R_CONN_SECRET, &conn_path);
            let details = get(&mut stats, R_DETAILS, &details_path);
            let statuses = [secret.status, conn.status, details.status];
            if rec.deleted || statuses == [404, 404, 404] {
                checked_deleted += 1;
                if statuses != [404, 404, 404] {
                    failures.push(format!(
                        "deleted {id}: decrypted read {}, connection read {}, details {} \
                         (all must be 404): {} | {} | {}",
                        secret.status,
                        conn.status,
                        details.status,
                        secret.text,
                        conn.text,
                        details.text
                    ));
                }
                continue;
            }
            // A delete whose outcome is unknown and did not happen: the
            // record must be whole. (The reads above counted as verification.)
            uncertain += 1;
            if statuses != [200, 200, 200] {
                failures.push(format!(
                    "{id} (delete outcome unknown): half there: {statuses:?}"
                ));
                continue;
            }
            let rec = &mut model.records[index];
            rec.reads_unknown += 2;
            continue;
        }
        checked_live += 1;
        let (latest_version, latest_tag) = {
            let (version, tag) = rec.latest();
            (version, tag.to_string())
        };
        let has_pending = !rec.pending.is_empty();
        let mut verified_reads = 0;
        for (route, path) in [(R_SECRET, &secret_path), (R_CONN_SECRET, &conn_path)] {
            let answer = get(&mut stats, route, path);
            if answer.status != 200 {
                failures.push(format!(
                    "live {id}: {} answered {}: {}",
                    ROUTES[route], answer.status, answer.text
                ));
                continue;
            }
            verified_reads += 1;
            let Some(tag) = tag_of(&answer.body["data"]["credentials"]) else {
                failures.push(format!(
                    "live {id}: {} served a secret we never wrote: {}",
                    ROUTES[route], answer.text
                ));
                continue;
            };
            let version = answer.etag.unwrap_or(0);
            let fine = if tag == latest_tag {
                version == latest_version
            } else {
                // Only an update of unknown outcome may have landed after
                // the last acknowledged one.
                has_pending && version > latest_version && rec.pending.contains(&tag)
            };
            if !fine {
                let known = rec.acked.iter().find(|(_, t)| **t == tag).map(|(v, _)| *v);
                failures.push(format!(
                    "live {id}: {} served {tag} (ETag {version}, acknowledged as version {known:?}); \
                     the last acknowledged write is version {latest_version} ({latest_tag}){}",
                    ROUTES[route],
                    if rec.refused.contains(&tag) {
                        ", and this secret's update was refused with 412"
                    } else {
                        ""
                    }
                ));
            }
        }
        let details = get(&mut stats, R_DETAILS, &details_path);
        if details.status != 200 {
            failures.push(format!(
                "live {id}: details answered {}: {}",
                details.status, details.text
            ));
            continue;
        }
        let count = details.body["data"]["accessCount"].as_u64();
        let low = rec.reads_ok + verified_reads;
        let high = low + rec.reads_unknown;
        if rec.reads_unknown > 0 {
            uncertain += 1;
        }
        match count {
            Some(count) if (low..=high).contains(&count) => {}
            _ => failures.push(format!(
                "live {id}: accessCount {count:?}, expected {}: {} successful decrypted reads \
                 during the run + {verified_reads} verification reads{}",
                if low == high {
                    low.to_string()
                } else {
                    format!("{low}..={high}")
                },
                rec.reads_ok,
                if rec.reads_unknown > 0 {
                    format!(" (+ up to {} of unknown outcome)", rec.reads_unknown)
                } else {
                    String::new()
                }
            )),
        }
    }

    // Each tenant's list: every live record, no deleted one, and no more
    // extras than creates of unknown outcome.
    let mut listed_tenants = 0;
    for tenant in 0..shared.tenants.len() {
        let mut ids = BTreeSet::new();
        let mut cursor: Option<String> = None;
        let mut complete = true;
        loop {
            let path = match &cursor {
                Some(cursor) => format!("/api/v1/credentials?limit=100&cursor={cursor}"),
                None => "/api/v1/credentials?limit=100".to_string(),
            };
            let answer = shared.call(&mut stats, Req::get(R_LIST, tenant, &path));
            if answer.status != 200 {
                failures.push(format!(
                    "tenant {tenant} list: {} {}",
                    answer.status, answer.text
                ));
                complete = false;
                break;
            }
            for item in answer.body["data"]["items"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(id) = item["id"].as_str().and_then(|id| id.strip_prefix("cred-")) {
                    ids.insert(id.to_string());
                }
            }
            match answer.body["data"]["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        if !complete {
            continue;
        }
        listed_tenants += 1;
        let mut known = BTreeSet::new();
        for rec in model.records.iter().filter(|rec| rec.tenant == tenant) {
            known.insert(rec.id.clone());
            let listed = ids.contains(&rec.id);
            if rec.deleted && listed {
                failures.push(format!("tenant {tenant} list shows deleted {}", rec.id));
            }
            if !rec.deleted && !rec.delete_unknown && !listed {
                failures.push(format!("tenant {tenant} list misses live {}", rec.id));
            }
        }
        let extras = ids.difference(&known).count() as u64;
        let allowed = model.unknown_creates.get(&tenant).copied().unwrap_or(0);
        if extras > allowed {
            failures.push(format!(
                "tenant {tenant} list has {extras} records we never created (unknown creates: {allowed})"
            ));
        }
    }
    println!(
        "verified {checked_live} live and {checked_deleted} deleted records \
         ({uncertain} with an outcome of unknown result), {listed_tenants} tenant lists, \
         {} served secrets",
        model.seen.len()
    );
    (failures, stats)
}

fn main() {
    let config = Config::from_env();
    println!(
        "load: {} s over levels {:?}, {} tenants x {} records, seed {}, at most {} requests",
        config.seconds,
        config.levels,
        config.tenants,
        config.records,
        config.seed,
        config.max_requests
    );
    let server = Server::start(&[]);
    let expires = now() + i64::try_from(config.seconds).unwrap_or(i64::MAX / 2) + 1800;
    let tenants: Vec<Tenant> = (0..config.tenants)
        .map(|_| {
            let id = tenant();
            let token = TokenBuilder::new(id, "integration_admin")
                .claim("exp", json!(expires))
                .sign();
            Tenant { id, token }
        })
        .collect();
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build()
        .expect("build HTTP client");
    let shared = Arc::new(Shared {
        base: server.url(""),
        client,
        tenants,
        model: Mutex::new(Model::default()),
        requests: AtomicU64::new(0),
        max_requests: config.max_requests,
    });

    // Seed the records, one request at a time.
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut seed_stats = new_stats();
    for tenant_index in 0..config.tenants {
        for record in 0..config.records {
            let integration = INTEGRATIONS[below(&mut rng, INTEGRATIONS.len())];
            let tag = format!("seed-{tenant_index}-{record}-{:08x}", rng.next_u32());
            let body = create_body(integration, &format!("Seed {tag}"), &tag);
            let answer = shared.call(
                &mut seed_stats,
                Req {
                    body: Some(&body),
                    if_match: None,
                    ..Req::new(R_CREATE, tenant_index, Method::POST, "/api/v1/credentials")
                },
            );
            assert_eq!(answer.status, 201, "seeding: {}", answer.text);
            let mut model = shared.model();
            let index = add_record(&mut model, tenant_index, integration, &answer, &tag);
            if record == 0 && tenant_index < 5 {
                model.hot.extend(index);
            }
        }
    }
    let seeded = shared.requests.swap(0, Ordering::Relaxed);
    println!("seeded {seeded} records");

    let per_level = config.seconds as f64 / config.levels.len() as f64;
    let per_level_budget = (config.max_requests / config.levels.len() as u64).max(1);
    let mut levels = Vec::new();
    for (position, &concurrency) in config.levels.iter().enumerate() {
        let budget = per_level_budget * (position as u64 + 1);
        let (stats, elapsed) = run_level(&shared, config.seed, concurrency, per_level, budget);
        let requests: usize = stats.iter().map(|route| route.micros.len()).sum();
        println!(
            "level {concurrency}: {requests} requests in {elapsed:.1} s ({:.1} req/s)",
            requests as f64 / elapsed
        );
        levels.push((concurrency, stats, elapsed));
    }
    let run_requests = shared.requests.load(Ordering::Relaxed);
    assert!(run_requests <= shared.max_requests + 64, "budget overrun");

    println!();
    println!("| conc | route | requests | req/s | p50 ms | p99 ms | p99.9 ms | max ms | 5xx/net |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut totals = new_stats();
    let mut total_seconds = 0.0;
    for (concurrency, stats, elapsed) in &levels {
        for (route, route_stats) in stats.iter().enumerate() {
            if !route_stats.micros.is_empty() {
                print_row(
                    &concurrency.to_string(),
                    ROUTES[route],
                    route_stats,
                    *elapsed,
                );
            }
            totals[route].merge(route_stats.clone());
        }
        print_row(&concurrency.to_string(), "**all**", &total(stats), *elapsed);
        total_seconds += elapsed;
    }
    for (route, route_stats) in totals.iter().enumerate() {
        print_row("total", ROUTES[route], route_stats, total_seconds);
    }
    print_row("total", "**all**", &total(&totals), total_seconds);

    println!();
    println!("statuses per route during the run (0 = network error):");
    let mut server_errors = Vec::new();
    for (route, route_stats) in totals.iter().enumerate() {
        println!("  {:<16} {:?}", ROUTES[route], route_stats.statuses);
        let bad: u64 = route_stats
            .statuses
            .iter()
            .filter(|(status, _)| **status == 0 || **status >= 500)
            .map(|(_, count)| count)
            .sum();
        if bad > 0 {
            server_errors.push(format!(
                "{}: {bad} 5xx or network errors, e.g. {:?}",
                ROUTES[route], route_stats.samples
            ));
        }
    }

    let (mut failures, verify_stats) = verify(&shared);
    for (route, route_stats) in verify_stats.iter().enumerate() {
        if route_stats
            .statuses
            .keys()
            .any(|status| *status == 0 || *status >= 500)
        {
            server_errors.push(format!(
                "verification {}: {:?}, e.g. {:?}",
                ROUTES[route], route_stats.statuses, route_stats.samples
            ));
        }
    }

    println!();
    let log = server.log();
    failures.extend(refresh_scenario(config.seed));
    if !server_errors.is_empty() {
        println!("5xx or network errors:");
        for line in &server_errors {
            println!("  {line}");
        }
        let excerpt: Vec<&str> = log
            .lines()
            .filter(|line| {
                let lower = line.to_lowercase();
                lower.contains("error") || lower.contains("warn") || lower.contains("500")
            })
            .take(30)
            .collect();
        println!("server log excerpt ({} lines in all):", log.lines().count());
        for line in excerpt {
            println!("  {}", line.chars().take(400).collect::<String>());
        }
        failures.push(format!(
            "{} routes had 5xx or network errors",
            server_errors.len()
        ));
    }
    if failures.is_empty() {
        println!("checks: all passed");
        return;
    }
    println!("checks: {} FAILED", failures.len());
    for failure in failures.iter().take(MAX_PRINTED) {
        println!("  - {failure}");
    }
    if failures.len() > MAX_PRINTED {
        println!("  ... and {} more", failures.len() - MAX_PRINTED);
    }
    drop(server);
    std::process::exit(1);
}

// ---------------------------------------------------------------------------
// The token refresh scenario (issue 14).

/// `LOAD_REFRESH_SECONDS` (30; 0 skips it), `LOAD_REFRESH_TENANTS` (10, two
/// records each), `LOAD_REFRESH_EXPIRES_IN` (3 s), `LOAD_REFRESH_CONCURRENCY`
/// (8): many tenants' `oauth2_bearer` records, each with its own loopback
/// token endpoint that issues short-lived tokens and rotates refresh
/// tokens, read throughout on both surfaces. The end-of-run check: no
/// token served after its expiry, one endpoint call per expiry (no call
/// before the previous token was due, no rotated refresh token reused),
/// every served token one its endpoint issued, and no 5xx.
fn refresh_scenario(seed: u64) -> Vec<String> {
    use coffer_tests::oauth::TokenServer;
    let seconds: u64 = env_or("LOAD_REFRESH_SECONDS", 30);
    if seconds == 0 {
        return Vec::new();
    }
    let tenants: usize = env_or("LOAD_REFRESH_TENANTS", 10);
    let expires_in: u64 = env_or("LOAD_REFRESH_EXPIRES_IN", 3);
    let concurrency: usize = env_or("LOAD_REFRESH_CONCURRENCY", 8);
    const SKEW_SECONDS: u64 = 1;
    println!();
    println!(
        "refresh: {seconds} s, {tenants} tenants x 2 records, expires_in {expires_in} s, \
         skew {SKEW_SECONDS} s, {concurrency} readers, seed {seed}"
    );
    let server = Server::start(&[
        ("COFFER_REFRESH_ALLOW_LOOPBACK_HTTP", "true"),
        ("COFFER_REFRESH_SKEW_SECONDS", &SKEW_SECONDS.to_string()),
    ]);
    let tokens = TokenServer::start();
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build HTTP client");
    let token_exp = now() + i64::try_from(seconds).unwrap_or(0) + 600;
    // (tenant, tenant token, record id, endpoint index)
    let mut records = Vec::new();
    let mut endpoints = Vec::new();
    for t in 0..tenants {
        let owner = tenant();
        let bearer = TokenBuilder::new(owner, "integration_admin")
            .claim("exp", json!(token_exp))
            .sign();
        for r in 0..2 {
            let endpoint = tokens.endpoint();
            endpoint.set_expires_in(Some(expires_in));
            let first = format!("rt-load-{t}-{r}");
            endpoint.rotate_from(&first);
            let body = json!({
                "integrationId": "load-oauth", "credentialName": format!("OAuth {t}-{r}"),
                "authType": "oauth2_bearer", "tokenEndpoint": endpoint.url(),
                "expiresAt": "2020-01-01T00:00:00.000Z",
                "credentials": {"accessToken": "at-seeded", "refreshToken": first},
            });
            let reply = client
                .post(format!("{}/api/v1/credentials", server.url("")))
                .bearer_auth(&bearer)
                .header("x-tenantid", owner.to_string())
                .json(&body)
                .send()
                .expect("create");
            let status = reply.status().as_u16();
            let created: Value = reply.json().unwrap_or(Value::Null);
            assert_eq!(status, 201, "create OAuth record: {created}");
            let id = created["data"]["id"]
                .as_str()
                .and_then(|id| id.strip_prefix("cred-"))
                .expect("id")
                .to_string();
            records.push((owner, bearer.clone(), id, endpoints.len()));
            endpoints.push(endpoint);
        }
    }
    // Every read: (record index, sent at, status, token served).
    type Served = (usize, Instant, u16, Option<String>);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let served: Vec<Served> = thread::scope(|scope| {
        let handles: Vec<_> = (0..concurrency)
            .map(|worker| {
                let (client, records, base) = (&client, &records, server.url(""));
                scope.spawn(move || {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (worker as u64 + 1));
                    let mut out = Vec::new();
                    while Instant::now() < deadline {
                        let index = below(&mut rng, records.len());
                        let (owner, bearer, id, _) = &records[index];
                        let connection = rng.next_u32() % 2 == 0;
                        let url = if connection {
                            format!("{base}/connection/{id}/credentials")
                        } else {
                            format!("{base}/api/v1/credentials/load-oauth?credentialId={id}")
                        };
                        let sent = Instant::now();
                        let request = client
                            .get(url)
                            .bearer_auth(bearer)
                            .header("x-tenantid", owner.to_string());
                        let (status, token) = match request.send() {
                            Ok(reply) => {
                                let status = reply.status().as_u16();
                                let body: Value = reply.json().unwrap_or(Value::Null);
                                let credentials = &body["data"]["credentials"];
                                (
                                    status,
                                    credentials["accessToken"].as_str().map(str::to_string),
                                )
                            }
                            Err(_) => (0, None),
                        };
                        out.push((index, sent, status, token));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("reader"))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    // The check.
    let mut failures = Vec::new();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let slack = Duration::from_millis(500);
    let lifetime = Duration::from_secs(expires_in);
    let mut late = 0;
    let mut unknown = 0;
    let issued: Vec<Vec<(String, Instant)>> =
        endpoints.iter().map(|e| e.issued_with_times()).collect();
    for (index, sent, status, token) in &served {
        *statuses.entry(*status).or_default() += 1;
        if *status == 0 || *status >= 500 {
            continue;
        }
        let endpoint = records[*index].3;
        let Some(token) = token else {
            unknown += 1;
            continue;
        };
        match issued[endpoint].iter().find(|(t, _)| t == token) {
            Some((_, at)) => {
                if *sent > *at + lifetime + slack {
                    late += 1;
                    if failures.len() < 10 {
                        failures.push(format!(
                            "record {index}: token served {:?} after its expiry",
                            sent.duration_since(*at + lifetime)
                        ));
                    }
                }
            }
            None => {
                unknown += 1;
                if failures.len() < 10 {
                    failures.push(format!(
                        "record {index}: served a token its endpoint never issued"
                    ));
                }
            }
        }
    }
    let bad: u64 = statuses
        .iter()
        .filter(|(status, _)| **status == 0 || **status >= 500)
        .map(|(_, n)| n)
        .sum();
    if bad > 0 {
        failures.push(format!("{bad} reads answered 5xx or failed: {statuses:?}"));
    }
    let (mut calls, mut early, mut reuses, mut issued_total) = (0, 0, 0, 0);
    let due_after = lifetime.saturating_sub(Duration::from_secs(SKEW_SECONDS));
    for (e, endpoint) in endpoints.iter().enumerate() {
        let times = endpoint.calls();
        calls += times.len();
        issued_total += issued[e].len();
        reuses += endpoint.reuses();
        for (previous, next) in issued[e].iter().zip(times.iter().skip(1)) {
            // A call before the previous token was due is a second call
            // for one expiry.
            if next.at + slack < previous.1 + due_after {
                early += 1;
            }
        }
    }
    if early > 0 {
        failures.push(format!(
            "{early} endpoint calls came before the previous token was due"
        ));
    }
    if reuses > 0 {
        failures.push(format!(
            "{reuses} refreshes sent a rotated (invalid) refresh token"
        ));
    }
    if calls != issued_total {
        failures.push(format!(
            "{calls} endpoint calls but {issued_total} tokens issued"
        ));
    }
    if late > 0 {
        failures.push(format!("{late} tokens served after their expiry"));
    }
    if unknown > 0 {
        failures.push(format!("{unknown} reads served no token or an unknown one"));
    }
    let expiries = (seconds as f64 / expires_in.saturating_sub(SKEW_SECONDS).max(1) as f64).ceil();
    println!(
        "refresh: {} reads in {elapsed:.1} s ({:.1} req/s), statuses {statuses:?}; \
         {calls} token-endpoint calls for {} records (at most {} expiries each), \
         {late} tokens served late, {early} early calls, {reuses} reused refresh tokens",
        served.len(),
        served.len() as f64 / elapsed,
        records.len(),
        expiries + 1.0
    );
    drop(server);
    failures
}
