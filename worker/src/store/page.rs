//! Keyset pagination with opaque cursors bound to the tenant and filters.
use base64ct::{Base64UrlUnpadded, Encoding as _};
use serde::{Deserialize, Serialize};

/// Where the next page starts: strictly after `(created_at, id)` in
/// newest-first order (for the audit log, `created_at` is its sequence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) created_at: i64,
    pub(crate) id: String,
}

/// A cursor's text before base64: `{"s": scope, "a": created_at, "i": id}`.
/// Its members are written out rather than a `flatten`ed `Cursor` (the same
/// text), whose serde code buffers every member first (`Content`).
#[derive(Serialize, Deserialize)]
struct Envelope {
    /// The tenant and filters the cursor was issued for.
    s: String,
    a: i64,
    i: String,
}

impl Cursor {
    /// The opaque form, bound to `scope` (tenant and filters).
    pub(crate) fn encode(&self, scope: &str) -> String {
        let envelope = Envelope {
            s: scope.to_string(),
            a: self.created_at,
            i: self.id.clone(),
        };
        Base64UrlUnpadded::encode_string(&serde_json::to_vec(&envelope).unwrap_or_default())
    }

    /// Parses an opaque cursor; `None` when it is malformed or was issued
    /// for another tenant or other filters.
    pub(crate) fn decode(raw: &str, scope: &str) -> Option<Self> {
        let bytes = Base64UrlUnpadded::decode_vec(raw).ok()?;
        let envelope: Envelope = serde_json::from_slice(&bytes).ok()?;
        (envelope.s == scope).then_some(Cursor {
            created_at: envelope.a,
            id: envelope.i,
        })
    }
}

/// One page and where the next one starts.
#[derive(Debug)]
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    pub(crate) next: Option<Cursor>,
}

impl<T> Page<T> {
    /// The same page with each item mapped.
    pub(crate) fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next: self.next,
        }
    }

    /// From `limit + 1` fetched rows: the extra row only says there is more.
    pub(crate) fn from_overfetch(
        mut items: Vec<T>,
        limit: u32,
        key: impl Fn(&T) -> Cursor,
    ) -> Self {
        let limit = limit as usize;
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more { items.last().map(key) } else { None };
        Self { items, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_within_their_scope_only() {
        let cursor = Cursor {
            created_at: 1_752_153_300_000,
            id: "550e8400-e29b-41d4-a716-446655440001".into(),
        };
        let raw = cursor.encode("tenant-a|integration=x");
        assert_eq!(Cursor::decode(&raw, "tenant-a|integration=x"), Some(cursor));
        assert_eq!(Cursor::decode(&raw, "tenant-b|integration=x"), None);
        assert_eq!(
            Cursor::decode("not a cursor", "tenant-a|integration=x"),
            None
        );
    }

    /// The text of a cursor is a contract with the clients holding one: a
    /// cursor issued by an earlier build (this text, from the build that
    /// wrote it as a `flatten`ed `Cursor`) still reads back.
    #[test]
    fn cursor_text_is_stable() {
        let cursor = Cursor {
            created_at: 1_752_153_300_000,
            id: "550e8400-e29b-41d4-a716-446655440001".into(),
        };
        let issued = "eyJzIjoidGVuYW50LWF8aW50ZWdyYXRpb249eCIsImEiOjE3NTIxNTMzMDAwMDAsImkiOiI1NTBlODQwMC1lMjliLTQxZDQtYTcxNi00NDY2NTU0NDAwMDEifQ";
        assert_eq!(cursor.encode("tenant-a|integration=x"), issued);
        assert_eq!(
            Cursor::decode(issued, "tenant-a|integration=x"),
            Some(cursor)
        );
    }

    #[test]
    fn map_keeps_the_cursor() {
        let page = Page::from_overfetch(vec![3, 2, 1], 2, |n| Cursor {
            created_at: *n,
            id: String::new(),
        })
        .map(|n| n * 10);
        assert_eq!(page.items, vec![30, 20]);
        assert_eq!(page.next.map(|c| c.created_at), Some(2));
    }

    #[test]
    fn overfetch_marks_more() {
        let page = Page::from_overfetch(vec![3, 2, 1], 2, |n| Cursor {
            created_at: *n,
            id: String::new(),
        });
        assert_eq!(page.items, vec![3, 2]);
        assert_eq!(page.next.map(|c| c.created_at), Some(2));
        let last = Page::from_overfetch(vec![1], 2, |n| Cursor {
            created_at: *n,
            id: String::new(),
        });
        assert!(last.next.is_none());
    }
    /// A cursor is only ever read back by `decode`, in the same scope; its
    /// text must carry the position exactly (negative and extreme
    /// `created_at`, ids with JSON-special characters) and refuse any
    /// other scope, including prefixes and extensions of its own.
    #[test]
    fn cursors_carry_their_position_exactly_and_only_in_their_scope() {
        let scope = "550e8400-e29b-41d4-a716-446655440001|status=active";
        for (created_at, id) in [
            (0, ""),
            (-1, "a"),
            (i64::MIN, "quote \" and \\ backslash"),
            (i64::MAX, "cred-ü-🔑"),
        ] {
            let cursor = Cursor {
                created_at,
                id: id.into(),
            };
            let raw = cursor.encode(scope);
            assert!(!raw.is_empty());
            assert!(
                raw.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{raw} is not URL-safe"
            );
            assert_eq!(Cursor::decode(&raw, scope), Some(cursor.clone()));
            for other in [
                "",
                "550e8400-e29b-41d4-a716-446655440001",
                &format!("{scope}|x"),
            ] {
                assert_eq!(Cursor::decode(&raw, other), None, "{other:?}");
            }
        }
        // Different positions never share a text.
        let a = Cursor {
            created_at: 1,
            id: "x".into(),
        };
        let b = Cursor {
            created_at: 2,
            id: "x".into(),
        };
        assert_ne!(a.encode(scope), b.encode(scope));
        assert_ne!(a.encode(scope), a.encode("other"));
    }

    /// `limit + 1` rows were asked for: exactly `limit` rows means this is
    /// the last page, one more means there is another after the last kept.
    #[test]
    fn only_an_extra_row_means_another_page() {
        let key = |n: &i64| Cursor {
            created_at: *n,
            id: n.to_string(),
        };
        for limit in [1_u32, 2, 5] {
            let rows: Vec<i64> = (0..i64::from(limit)).rev().collect();
            let exact = Page::from_overfetch(rows.clone(), limit, key);
            assert_eq!(exact.items, rows, "limit {limit}");
            assert_eq!(exact.next, None, "limit {limit}");

            let mut more = rows.clone();
            more.push(-1);
            let page = Page::from_overfetch(more, limit, key);
            assert_eq!(page.items, rows, "limit {limit}");
            assert_eq!(page.next, rows.last().map(key), "limit {limit}");
        }
        let empty = Page::from_overfetch(Vec::<i64>::new(), 3, key);
        assert!(empty.items.is_empty() && empty.next.is_none());
    }
}
