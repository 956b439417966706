//! Mints an HS256 dev token from `.dev.vars`:
//!
//! ```sh
//! cargo run -q -p coffer-tests --bin mint-token -- --tenant <uuid> --roles integration_admin
//! ```
//!
//! Options: `--tenant <uuid>` (default: a fresh one, printed to stderr),
//! `--roles a,b` (default `integration_admin`), `--tenants <uuid,uuid>`,
//! `--sub <id>`, `--ttl <seconds>` (default 3600).
use std::{fs, process::ExitCode};

use coffer_tests::{fixtures::TokenBuilder, harness};
use serde_json::json;
use uuid::Uuid;

fn main() -> ExitCode {
    match run() {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("mint-token: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<String, String> {
    let mut tenant = None;
    let mut roles = "integration_admin".to_string();
    let mut tenants = String::new();
    let mut sub = None;
    let mut ttl: i64 = 3600;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--tenant" => tenant = Some(value()?),
            "--roles" => roles = value()?,
            "--tenants" => tenants = value()?,
            "--sub" => sub = Some(value()?),
            "--ttl" => ttl = value()?.parse().map_err(|_| "--ttl takes seconds")?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    let tenant = match tenant.filter(|t| !t.is_empty()) {
        Some(raw) => Uuid::parse_str(&raw).map_err(|_| "--tenant must be a UUID")?,
        None => {
            let fresh = Uuid::new_v4();
            eprintln!("mint-token: tenant {fresh}");
            fresh
        }
    };
    let path = harness::root().join(".dev.vars");
    let vars = fs::read_to_string(&path)
        .map_err(|_| format!("cannot read {}: run `make setup` first", path.display()))?;
    let secret = vars
        .lines()
        .find_map(|line| line.strip_prefix("AUTH_HS256_SECRET="))
        .map(|value| {
            value
                .trim()
                .trim_matches('"')
                .trim_matches('\'')
                .to_string()
        })
        .filter(|value| !value.is_empty())
        .ok_or("AUTH_HS256_SECRET is not set in .dev.vars")?;
    // The Worker refuses shorter secrets (a configuration error): say so
    // here rather than mint a token every request would answer with a 500.
    if secret.len() < 32 {
        return Err("AUTH_HS256_SECRET in .dev.vars is shorter than 32 bytes".into());
    }

    let roles: Vec<&str> = roles
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    let tenants: Vec<&str> = tenants
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let mut builder = TokenBuilder::new(tenant, "integration_viewer")
        .claim("roles", json!(roles))
        .claim("exp", json!(coffer_tests::fixtures::now() + ttl));
    if !tenants.is_empty() {
        builder = builder.claim("tenants", json!(tenants));
    }
    if let Some(sub) = sub {
        builder = builder.claim("sub", json!(sub));
    }
    Ok(builder.sign_with(&secret))
}
