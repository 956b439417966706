//! Outbound HTTP through the runtime's `fetch`, bounded (a leaf: names
//! nothing of the crate). Redirects are never followed, the answer is read
//! as a stream and cut at a size limit, and the whole exchange is aborted
//! after a timeout. Built on `web_sys` directly: workers-rs' `RequestInit`,
//! `Fetch` and `ByteStream` would add more to the `.wasm` than this.
//! Used for a realm's JWKS (`auth/jwks.rs`) and the OAuth2 token endpoint
//! (`refresh.rs`); [`asset_text`] reads one of the Worker's own static
//! assets (the OpenAPI document).
use core::time::Duration;

use futures_util::future::{select, Either};
use worker::{
    js_sys::{self, Function, Promise, Reflect, Uint8Array},
    wasm_bindgen::{JsCast as _, JsValue},
    wasm_bindgen_futures::JsFuture,
    web_sys::{
        AbortController, AbortSignal, Headers, ReadableStreamDefaultReader, Request, RequestInit,
        RequestRedirect, Response, WorkerGlobalScope,
    },
    Delay, Env,
};
use zeroize::Zeroizing;

/// One outgoing request.
pub(crate) struct Outgoing<'a> {
    pub(crate) method: &'static str,
    pub(crate) url: &'a str,
    pub(crate) headers: &'a [(&'static str, &'a str)],
    pub(crate) body: Option<&'a str>,
}

/// The answer: status, headers, and the body, zeroized on drop (it may
/// hold tokens).
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Headers,
    pub(crate) body: Zeroizing<Vec<u8>>,
}

/// Why no answer came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FetchError {
    /// The runtime refused to build the request (a URL it will not fetch).
    Refused,
    /// No connection, or the runtime failed the exchange.
    Unreachable,
    /// No complete answer within the timeout.
    Timeout,
    /// The body exceeds the limit.
    TooLarge,
}

/// Sends `outgoing` and reads the answer, at most `max_body` bytes of body,
/// all within `timeout` (then the fetch is aborted).
pub(crate) async fn fetch(
    outgoing: &Outgoing<'_>,
    max_body: usize,
    timeout: Duration,
) -> Result<Answer, FetchError> {
    let controller = AbortController::new().map_err(|_| FetchError::Unreachable)?;
    let exchange = send(outgoing, max_body, controller.signal());
    let timeout = Delay::from(timeout);
    futures_util::pin_mut!(exchange);
    match select(exchange, timeout).await {
        Either::Left((result, _)) => result,
        Either::Right(((), _)) => {
            controller.abort();
            Err(FetchError::Timeout)
        }
    }
}

async fn send(
    outgoing: &Outgoing<'_>,
    max_body: usize,
    signal: AbortSignal,
) -> Result<Answer, FetchError> {
    let unreachable = |_| FetchError::Unreachable;
    let headers = Headers::new().map_err(unreachable)?;
    for (name, value) in outgoing.headers {
        headers.set(name, value).map_err(unreachable)?;
    }
    let init = RequestInit::new();
    init.set_method(outgoing.method);
    init.set_headers(&headers);
    if let Some(body) = outgoing.body {
        init.set_body(&JsValue::from_str(body));
    }
    init.set_redirect(RequestRedirect::Manual);
    init.set_signal(Some(&signal));
    let request =
        Request::new_with_str_and_init(outgoing.url, &init).map_err(|_| FetchError::Refused)?;
    let global: WorkerGlobalScope = js_sys::global().unchecked_into();
    let response: Response = JsFuture::from(global.fetch_with_request(&request))
        .await
        .and_then(|value| value.dyn_into())
        .map_err(unreachable)?;
    let status = response.status();
    let mut body = Zeroizing::new(Vec::new());
    let Some(stream) = response.body() else {
        return Ok(Answer {
            status,
            headers: response.headers(),
            body,
        });
    };
    let reader = ReadableStreamDefaultReader::new(&stream).map_err(unreachable)?;
    loop {
        let result = JsFuture::from(reader.read()).await.map_err(unreachable)?;
        let done = Reflect::get(&result, &JsValue::from_str("done")).map_err(unreachable)?;
        if done.as_bool().unwrap_or(true) {
            return Ok(Answer {
                status,
                headers: response.headers(),
                body,
            });
        }
        let value = Reflect::get(&result, &JsValue::from_str("value")).map_err(unreachable)?;
        let chunk: Uint8Array = value.dyn_into().map_err(unreachable)?;
        let start = body.len();
        let end = start.saturating_add(chunk.length() as usize);
        if end > max_body {
            let _ = JsFuture::from(reader.cancel()).await;
            return Err(FetchError::TooLarge);
        }
        body.resize(end, 0);
        chunk.copy_to(&mut body[start..end]);
    }
}

/// The text of the static asset at `path` (as the site serves it, e.g.
/// `/console/openapi.json`), fetched through the assets binding `binding`;
/// `None` when the binding or the file is missing.
pub(crate) async fn asset_text(env: &Env, binding: &str, path: &str) -> Option<String> {
    let assets = Reflect::get(env, &JsValue::from_str(binding)).ok()?;
    let fetch: Function = Reflect::get(&assets, &JsValue::from_str("fetch"))
        .ok()?
        .dyn_into()
        .ok()?;
    // The binding serves by path; the origin is not looked at.
    let url = JsValue::from_str(&format!("https://assets.invalid{path}"));
    let promise: Promise = fetch.call1(&assets, &url).ok()?.dyn_into().ok()?;
    let response: Response = JsFuture::from(promise).await.ok()?.dyn_into().ok()?;
    if response.status() != 200 {
        return None;
    }
    JsFuture::from(response.text().ok()?)
        .await
        .ok()?
        .as_string()
}
