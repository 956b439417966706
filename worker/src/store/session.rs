//! D1 sessions (read replication): where a request's queries may run, and
//! the bookmark that carries read-your-writes from one request to the next.
//!
//! Metadata reads start on any replica (`first-unconstrained`), or, when
//! the client sends back the `x-coffer-bookmark` of an earlier response,
//! on any replica at least as new as that bookmark. Writes and decrypted
//! reads (which write their audit event) start on the primary. Either way
//! the session's bookmark after the request goes back in the response.
use alloc::rc::Rc;

use worker::{D1Database, D1DatabaseSession, Env};

use super::Io;

/// A request's D1 session, shared by the stores its handler opens.
pub(crate) type Session = Rc<D1DatabaseSession>;

/// Where a request's first query may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// Any replica (metadata reads), or one at least as new as the client's bookmark.
    AnyReplica,
    /// The primary (writes, decrypted reads).
    Primary,
}

/// A bookmark the client sent that cannot be one D1 issued. D1's bookmarks
/// are lowercase hex groups joined by `-` (`00000085-0000024c-00004c6d-8e61…`);
/// anything else is ignored (and logged) rather than sent to D1, where it
/// would fail the request.
pub(crate) fn bookmark_fault(raw: &str) -> Option<&'static str> {
    if raw.len() > 256 {
        return Some("longer than 256 bytes");
    }
    let groups: Vec<&str> = raw.split('-').collect();
    if groups.len() < 3 {
        return Some("not hex groups joined by '-'");
    }
    if groups.iter().any(|g| {
        g.is_empty()
            || !g
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }) {
        return Some("a group is not lowercase hex");
    }
    None
}

/// The database a store runs its statements on: the binding itself (the
/// sweeps), or a request's session. Only `io.rs` calls either.
pub(crate) enum Db {
    Database(D1Database),
    Session(Session),
}

/// Starts a request's session: from the client's bookmark for a metadata
/// read that sent a well-formed one, else from the constraint of `start`.
/// Returns the session and, for an ignored bookmark, why it was ignored.
pub(crate) fn start(
    env: &Env,
    start: Start,
    bookmark: Option<&str>,
) -> worker::Result<(Session, Option<&'static str>)> {
    let bookmark = bookmark.map(str::trim).filter(|b| !b.is_empty());
    let ignored = bookmark.and_then(bookmark_fault);
    let constraint = match start {
        Start::AnyReplica => "first-unconstrained",
        Start::Primary => "first-primary",
    };
    let from = match (start, bookmark, ignored) {
        (Start::AnyReplica, Some(bookmark), None) => bookmark,
        _ => constraint,
    };
    let db = Io::d1_binding(env, crate::env::DB)?;
    Ok((Rc::new(Io::session(&db, from)?), ignored))
}

/// The session's latest bookmark, if it has one.
pub(crate) fn bookmark(session: &D1DatabaseSession) -> Option<String> {
    Io::session_bookmark(session)
}

#[cfg(test)]
mod tests {
    use super::bookmark_fault;

    #[test]
    fn only_hex_groups_pass_for_bookmarks() {
        for good in [
            "00000085-0000024c-00004c6d-8e61117bf38d7adb71b934ebbf891683",
            "0000000a-00000003-00004f7c",
        ] {
            assert_eq!(bookmark_fault(good), None, "{good}");
        }
        for bad in [
            "",
            "first-primary",
            "first-unconstrained",
            "00000085",
            "00000085--0000024c",
            "0000008G-0000024c-00004c6d",
            "00000085-0000024C-00004c6d",
            "not a bookmark",
            "0000'; DROP-00-00",
        ] {
            assert!(bookmark_fault(bad).is_some(), "{bad:?}");
        }
        assert!(bookmark_fault(&"ab-".repeat(100)).is_some());
    }
}
