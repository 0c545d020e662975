//! Route precedence within a virtual host, as the Gateway API spec orders matches
//! across all rules of all routes on a hostname:
//! 1. `Exact` path match, then `PathPrefix` with the most characters (not counting
//!    a trailing `/`, which a prefix match ignores);
//! 2. a method match; 3. the most header matches; 4. the most query matches;
//! 5. the oldest route (creation timestamp), then `namespace/name` alphabetically;
//! 6. within a route, the first rule and match in list order.
//!
//! The spec leaves `RegularExpression` paths implementation-specific: Sluice orders
//! them after `Exact` and before `PathPrefix` (longer patterns first), so a regex is
//! never shadowed by a catch-all prefix such as `/`.

use std::cmp::Reverse;

use serde::{Deserialize, Serialize};

use crate::model::{ObjectKey, PathMatch, RouteMatch};

/// Sort key of one route entry; smaller sorts first (wins).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Precedence {
    path_kind: u8,
    path_len: Reverse<usize>,
    no_method: bool,
    headers: Reverse<usize>,
    query: Reverse<usize>,
    /// Empty (unknown) sorts first: objects from files have no creation time.
    creation: String,
    route: ObjectKey,
    rule: usize,
    matched: usize,
}

impl Precedence {
    pub fn new(
        m: &RouteMatch,
        creation: &str,
        route: &ObjectKey,
        rule: usize,
        matched: usize,
    ) -> Self {
        let (path_kind, len) = match &m.path {
            PathMatch::Exact(p) => (0, p.len()),
            PathMatch::Regex(p) => (1, p.len()),
            // A prefix matches whole path elements, and its trailing `/` is ignored
            // (`/abc/` is `/abc`), so the `/` does not make it more specific.
            PathMatch::Prefix(p) => (2, p.trim_end_matches('/').len()),
        };
        Precedence {
            path_kind,
            path_len: Reverse(len),
            no_method: m.method.is_none(),
            headers: Reverse(m.headers.len()),
            query: Reverse(m.query.len()),
            creation: creation.to_string(),
            route: route.clone(),
            rule,
            matched,
        }
    }
}

#[cfg(test)]
mod tests {
    //! Checks each precedence criterion of the spec in isolation, and the tie-breaks.
    use super::*;
    use crate::model::ValueMatch;

    fn m(path: PathMatch) -> RouteMatch {
        RouteMatch {
            path,
            ..Default::default()
        }
    }
    fn key(m: &RouteMatch) -> Precedence {
        Precedence::new(m, "", &ObjectKey::new("ns", "r"), 0, 0)
    }

    #[test]
    fn exact_beats_longer_prefix() {
        assert!(
            key(&m(PathMatch::Exact("/a".into())))
                < key(&m(PathMatch::Prefix("/a/long/prefix".into())))
        );
    }

    #[test]
    fn longer_prefix_first() {
        assert!(
            key(&m(PathMatch::Prefix("/match/prefix".into())))
                < key(&m(PathMatch::Prefix("/match".into())))
        );
    }

    #[test]
    fn trailing_slash_of_a_prefix_does_not_count() {
        // `/api/` and `/api` match the same requests (whole path elements), so they
        // tie on the path and the method match decides.
        let slash = m(PathMatch::Prefix("/api/".into()));
        let method = RouteMatch {
            method: Some("POST".into()),
            ..m(PathMatch::Prefix("/api".into()))
        };
        assert!(key(&method) < key(&slash));
        assert!(key(&m(PathMatch::Prefix("/api/v".into()))) < key(&slash));
    }

    #[test]
    fn method_then_headers_then_query() {
        let base = m(PathMatch::Prefix("/".into()));
        let with_method = RouteMatch {
            method: Some("GET".into()),
            ..base.clone()
        };
        let hv = ValueMatch {
            name: "h".into(),
            value: "v".into(),
            regex: false,
        };
        let with_header = RouteMatch {
            headers: vec![hv.clone()],
            ..base.clone()
        };
        let with_two_headers = RouteMatch {
            headers: vec![hv.clone(), hv.clone()],
            ..base.clone()
        };
        let with_query = RouteMatch {
            query: vec![hv],
            ..base.clone()
        };
        assert!(key(&with_method) < key(&with_two_headers));
        assert!(key(&with_two_headers) < key(&with_header));
        assert!(key(&with_header) < key(&with_query));
        assert!(key(&with_query) < key(&base));
    }

    #[test]
    fn ties_broken_by_age_then_name_then_order() {
        let x = m(PathMatch::Prefix("/".into()));
        let old = Precedence::new(&x, "2020-01-01T00:00:00Z", &ObjectKey::new("z", "z"), 3, 0);
        let new = Precedence::new(&x, "2021-01-01T00:00:00Z", &ObjectKey::new("a", "a"), 0, 0);
        assert!(old < new);
        let a = Precedence::new(&x, "", &ObjectKey::new("a", "b"), 5, 0);
        let b = Precedence::new(&x, "", &ObjectKey::new("b", "a"), 0, 0);
        assert!(a < b);
        let first = Precedence::new(&x, "", &ObjectKey::new("a", "a"), 0, 1);
        let second = Precedence::new(&x, "", &ObjectKey::new("a", "a"), 1, 0);
        assert!(first < second);
    }
}
