//! Keyset pagination with opaque cursors bound to the tenant and filters.
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde::{Deserialize, Serialize};

/// Where the next page starts: strictly after `(created_at, id)` in
/// newest-first order (for the audit log, `created_at` is its sequence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    #[serde(rename = "a")]
    pub(crate) created_at: i64,
    #[serde(rename = "i")]
    pub(crate) id: String,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    /// The tenant and filters the cursor was issued for.
    s: String,
    #[serde(flatten)]
    cursor: Cursor,
}

impl Cursor {
    /// The opaque form, bound to `scope` (tenant and filters).
    pub(crate) fn encode(&self, scope: &str) -> String {
        let envelope = Envelope {
            s: scope.to_string(),
            cursor: self.clone(),
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&envelope).unwrap_or_default())
    }

    /// Parses an opaque cursor; `None` when it is malformed or was issued
    /// for another tenant or other filters.
    pub(crate) fn decode(raw: &str, scope: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        let envelope: Envelope = serde_json::from_slice(&bytes).ok()?;
        (envelope.s == scope).then_some(envelope.cursor)
    }
}

/// One page and where the next one starts.
#[derive(Debug)]
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    pub(crate) next: Option<Cursor>,
}

impl<T> Page<T> {
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
}
