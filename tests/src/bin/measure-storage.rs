//! `make measure-storage`: the per-item sizes behind `docs/capacity.md` and
//! `src/capacity.rs`, measured on this code through the real API under
//! `wrangler dev` (the local D1 is a SQLite file in the server's state
//! directory, KV values are files beside it).
//!
//! It creates records with a 1 KiB secret, then makes decrypted reads (one
//! audit event each), and reads the database's size (`page_count` ×
//! `page_size`, and `dbstat` per table and index) after each step; it
//! gzips the audit route's events as NDJSON for the archive's bytes per
//! event; and it prints each route's D1 and KV round trips from its log
//! line. Needs the `sqlite3` command-line shell.
//!
//! `MEASURE_RECORDS` (default 2000) and `MEASURE_READS` (default 10000).
use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use coffer_tests::{
    client::{Api, Reply},
    fixtures::{api_for, tenant},
    harness::Server,
};
use serde_json::{json, Value};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The local D1 database file of `server`.
fn d1_file(server: &Server) -> PathBuf {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "sqlite")
                && path.to_string_lossy().contains("D1")
            {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&server.state_dir(), &mut found);
    found.sort_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0));
    found.pop().expect("a local D1 database file")
}

fn sqlite(file: &Path, sql: &str) -> String {
    let output = Command::new("sqlite3")
        .arg("-readonly")
        .arg(file)
        .arg(sql)
        .output()
        .expect("run sqlite3");
    assert!(
        output.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The database's size in bytes (what D1 bills and limits).
fn db_bytes(file: &Path) -> f64 {
    sqlite(
        file,
        "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size",
    )
    .parse()
    .expect("a size")
}

/// Bytes per table and index (`dbstat`), by name.
fn by_object(file: &Path) -> Vec<(String, f64)> {
    sqlite(
        file,
        "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY name",
    )
    .lines()
    .filter_map(|line| {
        let (name, bytes) = line.split_once('|')?;
        Some((name.to_string(), bytes.parse().ok()?))
    })
    .collect()
}

fn delta(before: &[(String, f64)], after: &[(String, f64)], per: f64) -> Vec<(String, f64)> {
    after
        .iter()
        .map(|(name, bytes)| {
            let was = before
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0.0, |(_, b)| *b);
            (name.clone(), (bytes - was) / per)
        })
        .filter(|(_, d)| d.abs() >= 0.5)
        .collect()
}

/// Sizes of the local KV values under `state/v3/kv` (file per value).
fn kv_value_bytes(server: &Server) -> (usize, u64) {
    fn walk(dir: &Path, files: &mut usize, bytes: &mut u64) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, files, bytes);
            } else if path.to_string_lossy().contains("blobs") {
                *files += 1;
                *bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    let (mut files, mut bytes) = (0, 0);
    walk(
        &server.state_dir().join("v3").join("kv"),
        &mut files,
        &mut bytes,
    );
    (files, bytes)
}

fn gzip_len(data: &[u8]) -> usize {
    let mut child = Command::new("gzip")
        .arg("-6")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run gzip");
    let mut stdin = child.stdin.take().expect("stdin");
    let owned = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&owned));
    let output = child.wait_with_output().expect("gzip output");
    writer.join().expect("writer").expect("write to gzip");
    output.stdout.len()
}

fn log_counts(server: &Server, reply: &Reply) -> (u64, u64) {
    let id = reply
        .header("x-request-id")
        .expect("x-request-id")
        .to_string();
    let deadline = std::time::Instant::now() + core::time::Duration::from_secs(20);
    loop {
        if let Some(line) = server
            .log_entries()
            .into_iter()
            .find(|e| e["request_id"] == id.as_str() && e.get("d1").is_some())
        {
            return (
                line["d1"].as_u64().unwrap_or(0),
                line["kv"].as_u64().unwrap_or(0),
            );
        }
        assert!(std::time::Instant::now() < deadline, "no log line for {id}");
        std::thread::sleep(core::time::Duration::from_millis(100));
    }
}

/// One request of the round-trip table.
type Call<'a> = Box<dyn Fn() -> Reply + 'a>;

fn record_body(index: usize) -> Value {
    // A 1 KiB secret: the compact JSON text of `credentials` is 1,024 bytes.
    let filler = 1024 - r#"{"accessToken":"","refreshToken":"rt-0000"}"#.len();
    let secret = json!({
        "accessToken": "a".repeat(filler),
        "refreshToken": format!("rt-{:04}", index % 10_000),
    });
    assert_eq!(secret.to_string().len(), 1024);
    json!({
        "integrationId": format!("servicenow-prod-{:03}", index % 1000),
        "credentialName": "ServiceNow Production",
        "description": "Production ServiceNow instance",
        "authType": "oauth2_bearer",
        "scopes": ["read", "write"],
        "tokenEndpoint": "https://example.service-now.com/oauth_token.do",
        "metadata": {"instance": "example", "region": "eu"},
        "credentials": secret,
    })
}

fn main() {
    let records = env_number("MEASURE_RECORDS", 2000).max(1);
    let reads = env_number("MEASURE_READS", 10_000).max(1);
    let server = Server::start(&[]);
    let file = d1_file(&server);
    let owner = tenant();
    let api = api_for(&server, owner, "integration_admin");
    println!("local D1 file: {}", file.display());

    let empty = db_bytes(&file);
    let empty_objects = by_object(&file);
    let (kv_files_before, kv_bytes_before) = kv_value_bytes(&server);

    let mut ids = Vec::with_capacity(records);
    for index in 0..records {
        let reply = api.post("/api/v1/credentials", &record_body(index));
        assert_eq!(reply.status, 201, "create: {}", reply.text);
        ids.push(reply.body["data"]["id"].as_str().expect("id").to_string());
    }
    // Each create also wrote one audit event (`credential.create`): count
    // those bytes as events, below, by measuring events on their own.
    let with_records = db_bytes(&file);
    let record_objects = by_object(&file);
    let (kv_files, kv_bytes) = kv_value_bytes(&server);

    // Decrypted reads: one `credential.read_secret` event each, nothing else grows.
    let paths: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            format!(
                "/api/v1/credentials/servicenow-prod-{:03}?credentialId={id}",
                i % 1000
            )
        })
        .collect();
    for i in 0..reads {
        let reply = api.get(&paths[i % paths.len()]);
        assert_eq!(reply.status, 200, "read: {}", reply.text);
    }
    let with_events = db_bytes(&file);
    let event_objects = by_object(&file);

    let per_event = (with_events - with_records) / reads as f64;
    // The records step also holds `records` create events.
    let per_record = (with_records - empty) / records as f64 - per_event;
    println!("\n== D1 (page_count x page_size) ==");
    println!("empty migrated database: {empty:.0} bytes");
    println!(
        "after {records} records: {with_records:.0} bytes; per record (less its create event): {per_record:.0}"
    );
    println!(
        "after {reads} decrypted reads: {with_events:.0} bytes; per audit event: {per_event:.0}"
    );
    println!("\nper record, by table and index (dbstat, create event included):");
    for (name, bytes) in delta(&empty_objects, &record_objects, records as f64) {
        println!("  {name:<40} {bytes:>8.0}");
    }
    println!("per audit event, by table and index (dbstat):");
    for (name, bytes) in delta(&record_objects, &event_objects, reads as f64) {
        println!("  {name:<40} {bytes:>8.0}");
    }

    println!("\n== KV (local value files) ==");
    let blobs = kv_files - kv_files_before;
    let value = (kv_bytes - kv_bytes_before) as f64 / blobs.max(1) as f64;
    let key = format!("secret/v1/{owner}/{}/1.{}", "0".repeat(36), "0".repeat(22)).len();
    let metadata = r#"{"written_at":1764892800000}"#.len();
    println!(
        "{blobs} blobs, value {value:.0} bytes each; key {key} bytes; metadata {metadata} bytes; total {:.0}",
        value + key as f64 + metadata as f64
    );

    println!("\n== R2 archive (gzip -6 of the audit route's events as NDJSON) ==");
    let mut ndjson = Vec::new();
    let mut events = 0usize;
    let mut cursor: Option<String> = None;
    while events < 5_000 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/audit?limit=100&cursor={c}"),
            None => "/api/v1/audit?limit=100".to_string(),
        };
        let page = api.get(&path);
        assert_eq!(page.status, 200, "audit: {}", page.text);
        for item in page.body["data"]["items"].as_array().into_iter().flatten() {
            ndjson.extend_from_slice(item.to_string().as_bytes());
            ndjson.push(b'\n');
            events += 1;
        }
        match page.body["data"]["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let gz = gzip_len(&ndjson);
    println!(
        "{events} events: {} bytes NDJSON ({:.0} per event), {gz} gzipped ({:.0} per event)",
        ndjson.len(),
        ndjson.len() as f64 / events as f64,
        gz as f64 / events as f64
    );

    println!("\n== Storage round trips per request (from each request's log line) ==");
    let id = &ids[0];
    let bare = id.trim_start_matches("cred-");
    let conn = Api::new(
        &server,
        coffer_tests::fixtures::token(owner, "integration_admin"),
    );
    let routes: Vec<(&str, Call<'_>)> = vec![
        (
            "decrypted read (credentials, by id)",
            Box::new(|| api.get(&paths[0])),
        ),
        (
            "decrypted read (selection rule)",
            Box::new(|| api.get("/api/v1/credentials/servicenow-prod-000")),
        ),
        (
            "decrypted read (connection)",
            Box::new(|| conn.get(&format!("/connection/{bare}/credentials"))),
        ),
        (
            "details",
            Box::new(|| {
                api.get(&format!(
                    "/api/v1/credentials/servicenow-prod-000/details?credentialId={id}"
                ))
            }),
        ),
        ("list", Box::new(|| api.get("/api/v1/credentials?limit=20"))),
        (
            "connection metadata",
            Box::new(|| conn.get(&format!("/connection/{bare}"))),
        ),
        (
            "connection list",
            Box::new(|| conn.get("/connection?limit=20")),
        ),
        ("audit page", Box::new(|| api.get("/api/v1/audit?limit=20"))),
        (
            "create",
            Box::new(|| api.post("/api/v1/credentials", &record_body(1))),
        ),
        (
            "update (metadata)",
            Box::new(|| {
                api.patch(
                    &format!("/api/v1/credentials/{id}"),
                    &json!({"description": "changed"}),
                )
            }),
        ),
        (
            "update (secret)",
            Box::new(|| {
                api.patch(
                    &format!("/api/v1/credentials/{id}"),
                    &json!({"credentials": {"k": "v"}}),
                )
            }),
        ),
        (
            "healthz",
            Box::new(|| Api::anonymous(&server).get("/healthz")),
        ),
    ];
    println!(
        "{:<40} {:>4} {:>4}  (cold: first of its kind in the isolate)",
        "route", "D1", "KV"
    );
    for (name, call) in &routes {
        let first = call();
        let second = call();
        let (d1a, kva) = log_counts(&server, &first);
        let (d1b, kvb) = log_counts(&server, &second);
        println!(
            "{name:<40} {d1b:>4} {kvb:>4}  (cold {d1a}/{kva}, status {})",
            second.status
        );
    }
}
