//! URLs parsed by the runtime's WHATWG `URL` (a leaf: names nothing of the
//! crate). `worker::Url` is the `url` crate, whose IDNA and Unicode tables
//! cost about 70 KB of `.wasm` for the three configured URLs Coffer reads
//! (a realm's `jwks_url` and `issuer`); workerd's `URL` implements the same
//! standard natively. Native unit tests, which have no runtime, parse with
//! the `url` crate (the same standard), compiled into tests only.

/// What Coffer reads of a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebUrl {
    /// The scheme without its `:` (`https`).
    pub(crate) scheme: String,
    /// The host as serialized (`example.com`, `127.0.0.1`, `[::1]`); empty
    /// when the URL has none.
    pub(crate) host: String,
    /// The serialized origin (`https://example.com:8443`).
    pub(crate) origin: String,
    /// The whole URL, serialized.
    pub(crate) href: String,
}

/// `text` parsed as an absolute URL; `None` when it is not one.
#[cfg(target_arch = "wasm32")]
pub(crate) fn parse(text: &str) -> Option<WebUrl> {
    let url = web_sys::Url::new(text).ok()?;
    let protocol = url.protocol();
    Some(WebUrl {
        scheme: protocol.strip_suffix(':').unwrap_or(&protocol).to_owned(),
        host: url.hostname(),
        origin: url.origin(),
        href: url.href(),
    })
}

/// `text` parsed as an absolute URL; `None` when it is not one.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn parse(text: &str) -> Option<WebUrl> {
    let url = url::Url::parse(text).ok()?;
    Some(WebUrl {
        scheme: url.scheme().to_owned(),
        host: url.host_str().unwrap_or_default().to_owned(),
        origin: url.origin().ascii_serialization(),
        href: url.as_str().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_scheme_host_and_origin() {
        let url = parse("https://idp.example.com:8443/realms/a/certs?x=1").expect("a URL");
        assert_eq!(url.scheme, "https");
        assert_eq!(url.host, "idp.example.com");
        assert_eq!(url.origin, "https://idp.example.com:8443");
        let url = parse("http://[::1]:9000/jwks").expect("a URL");
        assert_eq!(url.host, "[::1]");
        let url = parse("http://user@127.0.0.1.example.com/").expect("a URL");
        assert_eq!(url.host, "127.0.0.1.example.com");
        assert_eq!(parse("not a url"), None);
        assert_eq!(parse("/relative"), None);
    }
}
