//! A recording reverse proxy on loopback for the console's browser tests:
//! the browser loads the console through it, so every request the browser
//! made to Coffer and every response it received (status and body, as the
//! Worker sent them) is kept for the test to inspect. It forwards each
//! request as it came (method, path, headers, body) and answers with the
//! Worker's status, headers and body, one request per connection.
extern crate alloc;

use alloc::sync::Arc;
use core::time::Duration;
use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpListener, TcpStream},
    sync::Mutex,
    thread,
};

/// One request the browser made, with the response it got.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    /// Path and query, as the browser sent them.
    pub target: String,
    pub status: u16,
    /// The response body as text (lossy UTF-8).
    pub body: String,
}

/// The proxy; stops listening when dropped.
pub struct Recorder {
    port: u16,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
}

impl Recorder {
    /// Forwards to `upstream` (`http://127.0.0.1:<port>`).
    pub fn start(upstream: &str) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind recorder");
        let port = listener.local_addr().expect("recorder address").port();
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let client = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .expect("recorder client");
        let upstream = upstream.to_owned();
        let shared = Arc::clone(&exchanges);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let client = client.clone();
                let upstream = upstream.clone();
                let exchanges = Arc::clone(&shared);
                thread::spawn(move || forward(stream, &client, &upstream, &exchanges));
            }
        });
        Recorder { port, exchanges }
    }

    /// An absolute URL on the proxy.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every exchange so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.lock().expect("recorder lock").clone()
    }
}

/// Headers not forwarded: hop-by-hop ones, and those the client sets.
const SKIPPED: [&str; 6] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    // Uncompressed bodies, so the recorded text is what the page read.
    "accept-encoding",
];

fn forward(
    stream: TcpStream,
    client: &reqwest::blocking::Client,
    upstream: &str,
    exchanges: &Mutex<Vec<Exchange>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() || request_line.trim().is_empty() {
        return;
    }
    let mut words = request_line.split_whitespace();
    let method = words.next().unwrap_or("GET").to_owned();
    let target = words.next().unwrap_or("/").to_owned();
    let mut headers = Vec::new();
    let mut content_length = 0_usize;
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|read| read > 2) {
        if let Some((name, value)) = line.trim_end().split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim().to_owned();
            if name == "content-length" {
                content_length = value.parse().unwrap_or(0);
            }
            if !SKIPPED.contains(&name.as_str()) {
                headers.push((name, value));
            }
        }
        line.clear();
    }
    let mut body = vec![0_u8; content_length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let Ok(method_value) = reqwest::Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let mut request = client.request(method_value, format!("{upstream}{target}"));
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    if !body.is_empty() {
        request = request.body(body);
    }
    let (status, reason, response_headers, response_body) = match request.send() {
        Ok(response) => {
            let status = response.status();
            let headers: Vec<(String, String)> = response
                .headers()
                .iter()
                .filter(|(name, _)| !SKIPPED.contains(&name.as_str()))
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = response.bytes().map(|b| b.to_vec()).unwrap_or_default();
            (
                status.as_u16(),
                status.canonical_reason().unwrap_or("").to_owned(),
                headers,
                body,
            )
        }
        Err(_) => (502, "Bad Gateway".to_owned(), Vec::new(), Vec::new()),
    };
    exchanges.lock().expect("recorder lock").push(Exchange {
        method,
        target,
        status,
        body: String::from_utf8_lossy(&response_body).into_owned(),
    });
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in &response_headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        response_body.len()
    ));
    let mut stream = &stream;
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&response_body);
    let _ = stream.flush();
}
