//! A small blocking HTTP client for the black-box tests.
use std::sync::OnceLock;

use reqwest::{
    blocking::{Client, RequestBuilder},
    header::HeaderMap,
    Method,
};
use serde_json::Value;

use crate::harness::Server;

fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        Client::builder()
            .timeout(core::time::Duration::from_secs(60))
            .build()
            .expect("build HTTP client")
    })
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body as text.
    pub text: String,
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub body: Value,
}

impl Reply {
    /// A header's value as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// Requests against one server, with a token and headers.
#[derive(Clone)]
pub struct Api<'s> {
    server: &'s Server,
    token: Option<String>,
    headers: Vec<(String, String)>,
}

impl<'s> Api<'s> {
    /// Requests without a token.
    pub fn anonymous(server: &'s Server) -> Self {
        Self {
            server,
            token: None,
            headers: Vec::new(),
        }
    }

    /// Requests with `Authorization: Bearer <token>`.
    pub fn new(server: &'s Server, token: impl Into<String>) -> Self {
        Self::anonymous(server).token(token)
    }

    /// Replaces the token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Adds a header to every request.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut request = client().request(method, self.server.url(path));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        request
    }

    /// Sends `method path` with an optional raw body and content type.
    pub fn send(&self, method: Method, path: &str, body: Option<(&str, Vec<u8>)>) -> Reply {
        let mut request = self.request(method, path);
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let reply = read(request);
        if let Some(request_id) = reply.header("x-request-id") {
            self.server.note_request(request_id);
        }
        reply
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::POST, path, Some(json(body)))
    }

    /// `PATCH path` with a JSON body.
    pub fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::PATCH, path, Some(json(body)))
    }

    /// `PUT path` without a body.
    pub fn put(&self, path: &str) -> Reply {
        self.send(Method::PUT, path, None)
    }
}

fn json(body: &Value) -> (&'static str, Vec<u8>) {
    (
        "application/json",
        serde_json::to_vec(body).expect("serialize body"),
    )
}

fn read(request: RequestBuilder) -> Reply {
    let response = request.send().expect("send request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().expect("read body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        text,
        body,
    }
}
