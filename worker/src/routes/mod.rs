//! Thin handlers per surface: load → decide (core) → store.
use serde_json::json;

use crate::{
    env,
    error::{ApiError, Missing},
    http::{Ctx, Reply},
    Op,
};

/// The connection surface's API version served (and the default).
pub(crate) const API_VERSION: &str = "2024-03-27";

/// Runs the handler of `op`.
pub(crate) async fn dispatch(op: Op, ctx: Ctx) -> Result<Reply, ApiError> {
    match op {
        Op::Healthz => healthz(&ctx).await,
        Op::ConnectionCredentials => {
            let _caller = ctx.caller().await?;
            Err(ApiError::NotFound(Missing::Credential(
                ctx.param("connection_id").to_lowercase(),
            )))
        }
        Op::CredentialDetails => {
            let _caller = ctx.caller().await?;
            Err(ApiError::NotFound(Missing::Integration(
                ctx.param("integrationId").to_string(),
            )))
        }
    }
}

/// `GET /healthz`: 200 once D1 and both KV namespaces answer.
async fn healthz(ctx: &Ctx) -> Result<Reply, ApiError> {
    let unavailable = |error: worker::Error| ApiError::Unavailable(error.to_string());
    let db = ctx.env.d1(env::DB).map_err(unavailable)?;
    db.prepare("SELECT value FROM coffer_meta WHERE key = 'schema'")
        .first::<serde_json::Value>(None)
        .await
        .map_err(unavailable)?;
    for binding in [env::SECRETS, env::CACHE] {
        ctx.env
            .kv(binding)
            .map_err(unavailable)?
            .get("healthz")
            .text()
            .await
            .map_err(|error| ApiError::Unavailable(error.to_string()))?;
    }
    Ok(Reply::ok(
        json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}),
    ))
}
