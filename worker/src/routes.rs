//! Routing (placeholder until the router lands).
use worker::{Env, Request, Response, Result};

use crate::env;

pub(crate) async fn handle(req: Request, env: Env) -> Result<Response> {
    match req.path().as_str() {
        "/healthz" => healthz(&env).await,
        _ => Response::error("Not Found", 404),
    }
}

async fn healthz(env: &Env) -> Result<Response> {
    let db = env.d1(env::DB)?;
    db.prepare("SELECT value FROM coffer_meta WHERE key = 'schema'")
        .first::<serde_json::Value>(None)
        .await?;
    env.kv(env::SECRETS)?.get("healthz").text().await?;
    env.kv(env::CACHE)?.get("healthz").text().await?;
    Response::from_json(&serde_json::json!({"status": "ok", "version": coffer_core::VERSION}))
}
