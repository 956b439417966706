//! Serving one request: request id, clock, CORS, routing through
//! [`router`], the reply or the error rendered in the surface's envelope,
//! and the one JSON log line per request. The top of the Worker below its
//! entry point: it calls the router and the context, nothing calls it but
//! `lib.rs`.
use coffer_core::{ApiVersion, TenantId, Timestamp};
use serde::{
    ser::{SerializeMap as _, SerializeSeq as _},
    Serialize,
};
use serde_json::{value::RawValue, Value};
use worker::{Date, Env, Method, Request};

use crate::{
    context::{self, Ctx, Reply, Step},
    error::{json_response, ApiError, Body, Outgoing, Surface},
    random, router,
    store::Io,
};

mod cors;

/// `value` with each splice's text at its path (relative to `value` after
/// `depth` steps); serialized, never built.
struct Spliced<'a> {
    value: &'a Value,
    depth: usize,
    splices: Splices<'a>,
}

/// Splices as paths and checked texts.
type Splices<'a> = Vec<(&'a [Step], &'a RawValue)>;

/// What a splice puts at one place in the body.
enum Here<'a> {
    /// Its text, in place of the value.
    Text(&'a RawValue),
    /// The value, with splices further down.
    Below(Splices<'a>),
}

impl<'a> Spliced<'a> {
    /// What goes where the next step is one `is` accepts: the text of a
    /// splice that ends there, else the value below with the splices that
    /// continue through it (`None`: no splice concerns it).
    fn at(&self, is: impl Fn(Step) -> bool) -> Option<Here<'a>> {
        let mut through = Vec::new();
        for &(path, raw) in &self.splices {
            match path.get(self.depth) {
                Some(&step) if is(step) && path.len() == self.depth + 1 => {
                    return Some(Here::Text(raw))
                }
                Some(&step) if is(step) => through.push((path, raw)),
                _ => {}
            }
        }
        (!through.is_empty()).then_some(Here::Below(through))
    }

    fn below(&self, value: &'a Value, splices: Splices<'a>) -> Self {
        Spliced {
            value,
            depth: self.depth + 1,
            splices,
        }
    }
}

impl Serialize for Spliced<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::Object(object) => {
                // A splice that ends here and names no member is appended.
                let appended: Vec<(&str, &RawValue)> = self
                    .splices
                    .iter()
                    .filter_map(|&(path, raw)| match path.get(self.depth) {
                        Some(Step::Key(name))
                            if path.len() == self.depth + 1 && !object.contains_key(*name) =>
                        {
                            Some((*name, raw))
                        }
                        _ => None,
                    })
                    .collect();
                let mut map = serializer.serialize_map(Some(object.len() + appended.len()))?;
                for (key, value) in object {
                    match self.at(|step| matches!(step, Step::Key(name) if name == key)) {
                        Some(Here::Text(raw)) => map.serialize_entry(key, raw)?,
                        Some(Here::Below(through)) => {
                            map.serialize_entry(key, &self.below(value, through))?;
                        }
                        None => map.serialize_entry(key, value)?,
                    }
                }
                for (name, raw) in appended {
                    map.serialize_entry(name, raw)?;
                }
                map.end()
            }
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for (index, item) in items.iter().enumerate() {
                    match self.at(|step| step == Step::Index(index)) {
                        Some(Here::Text(raw)) => seq.serialize_element(raw)?,
                        Some(Here::Below(through)) => {
                            seq.serialize_element(&self.below(item, through))?
                        }
                        None => seq.serialize_element(item)?,
                    }
                }
                seq.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// A random request id (UUID v4) from the platform's CSPRNG.
fn new_request_id() -> String {
    match random::uuid() {
        Ok(uuid) => uuid.hyphenated().to_string(),
        // Only the id's uniqueness suffers; the time keeps it distinct
        // enough for a log line.
        Err(_) => {
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&Date::now().as_millis().to_be_bytes());
            uuid::Builder::from_random_bytes(bytes)
                .into_uuid()
                .hyphenated()
                .to_string()
        }
    }
}

/// Serves one request: route, handle, render, log.
pub(crate) async fn serve(req: Request, env: Env) -> worker::Result<web_sys::Response> {
    let now_ms = i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX);
    #[cfg(feature = "fault-injection")]
    let now_ms = now_ms.saturating_add(crate::faults::clock_offset_ms(
        req.headers()
            .get(crate::faults::CLOCK_OFFSET_HEADER)
            .ok()
            .flatten(),
    ));
    #[cfg(feature = "fault-injection")]
    crate::faults::panic_if_asked(
        req.headers()
            .get(crate::faults::PANIC_HEADER)
            .ok()
            .flatten(),
    );
    // The runtime's clock is always within the years 0000-9999.
    let now = Timestamp::from_unix_millis(now_ms).unwrap_or(Timestamp::MAX);
    let path = context::url_parts(&req.inner().url()).0.to_string();
    let method = req.method();
    // workers-rs reads any method it does not know (`QUERY`, `PROPFIND`, ...)
    // as GET; such a request must get a 405, never a GET handler.
    let known_method = req.inner().method().eq_ignore_ascii_case(method.as_ref());
    let surface = Surface::of(&path);
    let request_id = new_request_id();
    let mut op_name = None;
    let mut tenant = None;
    let mut session = alloc::rc::Rc::new(context::SessionSlot::default());
    let io = alloc::rc::Rc::new(Io::default());
    let request_log = crate::env::RequestLog::from_env(&env);
    // The allowlist is read only for requests that come with an origin.
    let allowed_origin = req
        .headers()
        .get("origin")
        .ok()
        .flatten()
        .filter(|origin| cors::Policy::from_env(&env).allows(origin));
    let outcome = if !known_method {
        Err(unknown_method(&path))
    } else if method == Method::Options
        && req
            .headers()
            .has("access-control-request-method")
            .unwrap_or(false)
    {
        cors::preflight(&path, allowed_origin.as_deref())
    } else {
        match router::resolve(&method, &path) {
            Ok((op, params)) => {
                op_name = Some(op);
                session = alloc::rc::Rc::new(context::SessionSlot::new(router::session_start(op)));
                let mut ctx = Ctx {
                    req,
                    env,
                    params,
                    surface,
                    request_id: request_id.clone(),
                    now_ms,
                    now,
                    tenant: core::cell::Cell::new(None),
                    io: io.clone(),
                    session: session.clone(),
                };
                let outcome = router::dispatch(op, &mut ctx).await;
                tenant = ctx.tenant.get();
                outcome
            }
            Err(error) => Err(error),
        }
    };
    let (mut response, reason) = match outcome {
        Ok(reply) => (render_reply(reply).map_err(worker::Error::RustError)?, None),
        Err(error) => {
            let response = error
                .render(surface, &request_id, &now.to_rfc3339())
                .map_err(worker::Error::RustError)?;
            (response, error.log_reason().map(str::to_string))
        }
    };
    let status = response.status;
    response.set("x-request-id", request_id.clone());
    response.set("cache-control", "no-store".into());
    if surface == Surface::Connection {
        response.set("x-api-version", ApiVersion::DEFAULT.as_str().into());
    }
    if let Some(bookmark) = session.bookmark() {
        response.set(context::BOOKMARK_HEADER, bookmark);
    }
    if let Some(origin) = allowed_origin {
        cors::allow(&mut response, origin);
    }
    let elapsed = i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX) - now_ms;
    if request_log.logs(status) {
        crate::log::json(
            crate::log::Console::Log,
            &RequestLine {
                level: if status >= 500 { "error" } else { "info" },
                request_id: &request_id,
                method: method.as_ref(),
                route: op_name.map(|op| format!("{op:?}")).as_deref(),
                path: &path,
                tenant,
                status,
                duration_ms: elapsed,
                d1: io.d1(),
                kv: io.kv(),
                error: reason.as_deref(),
            },
        );
    }
    response.into_response().map_err(worker::Error::from)
}

/// The one JSON log line of a request, in this field order, serialized
/// straight to text (no intermediate `Value`).
#[derive(serde::Serialize)]
struct RequestLine<'a> {
    level: &'static str,
    request_id: &'a str,
    method: &'a str,
    route: Option<&'a str>,
    path: &'a str,
    #[serde(serialize_with = "display_option")]
    tenant: Option<TenantId>,
    status: u16,
    duration_ms: i64,
    d1: u32,
    kv: u32,
    error: Option<&'a str>,
}

fn display_option<T: core::fmt::Display, S: serde::Serializer>(
    value: &Option<T>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => serializer.collect_str(value),
        None => serializer.serialize_none(),
    }
}

/// The 405 (or 404) for a method no route has: resolving `TRACE`, which no
/// route serves, yields the path's allowed methods.
fn unknown_method(path: &str) -> ApiError {
    match router::resolve(&Method::Trace, path) {
        Err(error) => error,
        Ok(_) => ApiError::RouteNotFound,
    }
}

fn render_reply(reply: Reply) -> Result<Outgoing, String> {
    let mut response = if let Some((content_type, stream)) = reply.stream {
        Outgoing::typed(reply.status, content_type, Body::Stream(stream))
    } else if let Some(html) = reply.page {
        Outgoing::typed(
            reply.status,
            "text/html; charset=utf-8",
            Body::Text(html.into()),
        )
    } else {
        match reply.body {
            Some(value) if !reply.splices.is_empty() => {
                let splices = reply
                    .splices
                    .iter()
                    .map(|splice| {
                        serde_json::from_str::<&RawValue>(&splice.json)
                            .map(|raw| (splice.path.as_slice(), raw))
                            .map_err(|_| "spliced text is not JSON".to_string())
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let spliced = Spliced {
                    value: &value,
                    depth: 0,
                    splices,
                };
                json_response(&spliced, reply.status)?
            }
            Some(body) => json_response(&body, reply.status)?,
            None => Outgoing::new(reply.status, Body::Empty),
        }
    };
    if let Some(version) = reply.etag {
        response.set("etag", format!("\"{version}\""));
    }
    for (name, value) in reply.headers {
        response.set(name, value);
    }
    Ok(response)
}
