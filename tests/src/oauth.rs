//! A stand-in OAuth2 token endpoint (RFC 6749 §5) on loopback, beside the
//! JWKS server in `idp.rs`, for the token refresh tests.
//!
//! One [`TokenServer`] serves any number of endpoints, one per path; each
//! test takes its own ([`TokenServer::endpoint`]). An endpoint counts its
//! calls and records what each was sent (form, `Authorization`), issues
//! access tokens with a configurable `expires_in`, can rotate refresh
//! tokens (then a refresh token it did not issue last is refused with
//! `invalid_grant`, and counted as a reuse), and can be told to fail each
//! way the issue lists: an OAuth error, a non-2xx, a body that is not JSON
//! or lacks `access_token`, a body over 64 KiB, a slow answer, or none.
//! Every connection is served on a thread of its own, so slow and hanging
//! answers do not hold up the others.
extern crate alloc;

use alloc::sync::Arc;
use core::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};
use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpListener, TcpStream},
    sync::Mutex,
    thread::{self, JoinHandle},
    time::Instant,
};

use serde_json::json;

/// How an endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behavior {
    /// 200 with a new access token (and a rotated refresh token when
    /// rotation is on).
    Issue,
    /// An OAuth error body (RFC 6749 §5.2) with `status`.
    OAuthError {
        status: u16,
        code: String,
        description: String,
    },
    /// `status` with a plain-text body.
    Status(u16),
    /// 200 with a body that is not JSON.
    NotJson,
    /// 200 with JSON that has no `access_token`.
    NoAccessToken,
    /// 200 with a JSON body of more than 64 KiB.
    TooLarge,
    /// Never answers (the connection is held until the server stops).
    Hang,
}

/// One request an endpoint received.
#[derive(Debug, Clone)]
pub struct Call {
    /// When it arrived.
    pub at: Instant,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The `content-type` header, if any.
    pub content_type: Option<String>,
    /// The form body, decoded, in order.
    pub form: Vec<(String, String)>,
}

impl Call {
    /// A form field's value.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Debug)]
struct Endpoint {
    behavior: Behavior,
    delay: Duration,
    expires_in: Option<u64>,
    rotate: bool,
    /// With rotation: the one refresh token that is valid now.
    valid_refresh: Option<String>,
    calls: Vec<Call>,
    /// Access tokens issued, in order, with when.
    issued: Vec<String>,
    issued_at: Vec<Instant>,
    /// Refresh tokens issued, in order.
    issued_refresh: Vec<String>,
    /// Refresh-token grants that sent a token other than the valid one.
    reuses: usize,
}

impl Default for Endpoint {
    fn default() -> Self {
        Self {
            behavior: Behavior::Issue,
            delay: Duration::ZERO,
            expires_in: Some(3600),
            rotate: false,
            valid_refresh: None,
            calls: Vec::new(),
            issued: Vec::new(),
            issued_at: Vec::new(),
            issued_refresh: Vec::new(),
            reuses: 0,
        }
    }
}

#[derive(Default)]
struct Shared {
    endpoints: Mutex<HashMap<String, Endpoint>>,
    stopping: AtomicBool,
    counter: AtomicU64,
}

/// A loopback HTTP server of token endpoints.
pub struct TokenServer {
    port: u16,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// One endpoint of a [`TokenServer`] (a path of its own).
pub struct TokenEndpoint<'s> {
    server: &'s TokenServer,
    path: String,
}

impl TokenServer {
    /// Listens on a free loopback port.
    pub fn start() -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let port = listener.local_addr().expect("token server address").port();
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if shared.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let shared = Arc::clone(&shared);
                        thread::spawn(move || serve(stream, &shared));
                    }
                }
            })
        };
        TokenServer {
            port,
            shared,
            thread: Some(thread),
        }
    }

    /// A new endpoint with its own path: answers `Issue`, `expires_in`
    /// 3600, no rotation, no delay.
    pub fn endpoint(&self) -> TokenEndpoint<'_> {
        let path = format!("/t/{}/token", uuid::Uuid::new_v4().simple());
        self.shared
            .endpoints
            .lock()
            .expect("token server lock")
            .insert(path.clone(), Endpoint::default());
        TokenEndpoint { server: self, path }
    }

    /// Stops listening (hanging answers are released).
    pub fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.shared.stopping.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            let _ = thread.join();
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl TokenEndpoint<'_> {
    fn with<T>(&self, f: impl FnOnce(&mut Endpoint) -> T) -> T {
        let mut endpoints = self
            .server
            .shared
            .endpoints
            .lock()
            .expect("token server lock");
        f(endpoints.get_mut(&self.path).expect("endpoint exists"))
    }

    /// The endpoint's URL (`http://127.0.0.1:<port>/t/<id>/token`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.server.port, self.path)
    }

    /// How it answers from now on.
    pub fn set_behavior(&self, behavior: Behavior) {
        self.with(|e| e.behavior = behavior);
    }

    /// Waits this long before answering.
    pub fn set_delay(&self, delay: Duration) {
        self.with(|e| e.delay = delay);
    }

    /// The `expires_in` of issued tokens (`None`: left out).
    pub fn set_expires_in(&self, expires_in: Option<u64>) {
        self.with(|e| e.expires_in = expires_in);
    }

    /// Rotates refresh tokens; `current` is the one valid now (the one the
    /// record was created with).
    pub fn rotate_from(&self, current: &str) {
        self.with(|e| {
            e.rotate = true;
            e.valid_refresh = Some(current.to_string());
        });
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.with(|e| e.calls.clone())
    }

    /// How many calls so far.
    pub fn call_count(&self) -> usize {
        self.with(|e| e.calls.len())
    }

    /// Access tokens issued so far, in order.
    pub fn issued(&self) -> Vec<String> {
        self.with(|e| e.issued.clone())
    }

    /// Access tokens issued so far with the instant each was issued.
    pub fn issued_with_times(&self) -> Vec<(String, Instant)> {
        self.with(|e| {
            e.issued
                .iter()
                .cloned()
                .zip(e.issued_at.iter().copied())
                .collect()
        })
    }

    /// Refresh tokens issued so far, in order.
    pub fn issued_refresh(&self) -> Vec<String> {
        self.with(|e| e.issued_refresh.clone())
    }

    /// Refresh-token grants that sent a token other than the valid one.
    pub fn reuses(&self) -> usize {
        self.with(|e| e.reuses)
    }

    /// Waits (up to `timeout`) until at least `n` calls arrived.
    pub fn wait_for_calls(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.call_count() >= n {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.call_count() >= n
    }
}

/// `application/x-www-form-urlencoded` decoding.
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = core::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(name), form_decode(value))
        })
        .collect()
}

fn respond(stream: &TcpStream, status: u16, content_type: &str, body: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncache-control: no-store\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = stream;
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = HashMap::new();
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|read| read > 2) {
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
        line.clear();
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|len| len.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0_u8; length.min(1 << 20)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    let call = Call {
        at: Instant::now(),
        authorization: headers.get("authorization").cloned(),
        content_type: headers.get("content-type").cloned(),
        form: parse_form(&String::from_utf8_lossy(&body)),
    };
    let n = shared.counter.fetch_add(1, Ordering::SeqCst);
    // Decide under the lock, answer outside it.
    let decided = {
        let mut endpoints = shared.endpoints.lock().expect("token server lock");
        let Some(endpoint) = endpoints.get_mut(&path) else {
            drop(endpoints);
            respond(&stream, 404, "text/plain", "no such endpoint");
            return;
        };
        endpoint.calls.push(call.clone());
        let delay = endpoint.delay;
        let answer = match endpoint.behavior.clone() {
            Behavior::Issue => {
                let sent = call.field("refresh_token").map(str::to_string);
                let is_refresh = call.field("grant_type") == Some("refresh_token");
                let reused = endpoint.rotate
                    && is_refresh
                    && endpoint.valid_refresh.is_some()
                    && sent != endpoint.valid_refresh;
                if reused {
                    endpoint.reuses += 1;
                    Some((
                        400,
                        "application/json",
                        json!({"error": "invalid_grant", "error_description": "refresh token reused"})
                            .to_string(),
                    ))
                } else {
                    let access = format!("at-{n}-{}", uuid::Uuid::new_v4().simple());
                    endpoint.issued.push(access.clone());
                    endpoint.issued_at.push(Instant::now());
                    let mut answer = json!({"access_token": access, "token_type": "Bearer"});
                    if let Some(expires_in) = endpoint.expires_in {
                        answer["expires_in"] = json!(expires_in);
                    }
                    if endpoint.rotate && is_refresh {
                        let refresh = format!("rt-{n}-{}", uuid::Uuid::new_v4().simple());
                        endpoint.issued_refresh.push(refresh.clone());
                        endpoint.valid_refresh = Some(refresh.clone());
                        answer["refresh_token"] = json!(refresh);
                    }
                    Some((200, "application/json", answer.to_string()))
                }
            }
            Behavior::OAuthError {
                status,
                code,
                description,
            } => Some((
                status,
                "application/json",
                json!({"error": code, "error_description": description}).to_string(),
            )),
            Behavior::Status(status) => Some((status, "text/plain", "unavailable".to_string())),
            Behavior::NotJson => Some((200, "text/html", "<html>hello</html>".to_string())),
            Behavior::NoAccessToken => Some((
                200,
                "application/json",
                json!({"token_type": "Bearer", "expires_in": 60}).to_string(),
            )),
            Behavior::TooLarge => Some((
                200,
                "application/json",
                json!({"access_token": "at-too-large", "pad": "x".repeat(70 * 1024)}).to_string(),
            )),
            Behavior::Hang => None,
        };
        (delay, answer)
    };
    let (delay, answer) = decided;
    let started = Instant::now();
    while started.elapsed() < delay && !shared.stopping.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(10));
    }
    match answer {
        Some((status, content_type, body)) => respond(&stream, status, content_type, &body),
        None => {
            // Hold the connection open without answering.
            while !shared.stopping.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{form_decode, parse_form};

    #[test]
    fn forms_decode() {
        assert_eq!(form_decode("a+b%2F%3d"), "a b/=");
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(
            parse_form("grant_type=refresh_token&scope=a+b"),
            vec![
                ("grant_type".to_string(), "refresh_token".to_string()),
                ("scope".to_string(), "a b".to_string())
            ]
        );
    }
}
