//! Coffer's Worker: the entry points and the router, nothing else.
use worker::{event, Context, Env, Request, Response, Result};

mod env;
mod routes;

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    routes::handle(req, env).await
}
