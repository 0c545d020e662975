//! Hostname intersection between a listener and a route (Gateway API spec,
//! `HTTPRoute.spec.hostnames`): a wildcard `*.example.com` is a suffix match over one
//! or more labels (`foo.example.com`, `a.b.example.com`, never `example.com`).

/// Whether `host` (exact or wildcard) falls inside the wildcard `pattern`'s domain.
fn within_wildcard(host: &str, pattern_suffix: &str) -> bool {
    // pattern_suffix is ".example.com" for "*.example.com"
    host.len() > pattern_suffix.len() && host.ends_with(pattern_suffix)
}

/// The hostname both sides accept, the more specific of the two; `None` when the
/// two do not intersect.
pub fn intersect(listener: &str, route: &str) -> Option<String> {
    let l_wild = listener.strip_prefix('*');
    let r_wild = route.strip_prefix('*');
    match (l_wild, r_wild) {
        (None, None) => (listener == route).then(|| route.to_string()),
        (Some(ls), None) => within_wildcard(route, ls).then(|| route.to_string()),
        (None, Some(rs)) => within_wildcard(listener, rs).then(|| listener.to_string()),
        (Some(ls), Some(rs)) => {
            if rs == ls || within_wildcard(rs, ls) {
                Some(route.to_string())
            } else if within_wildcard(ls, rs) {
                Some(listener.to_string())
            } else {
                None
            }
        }
    }
}

/// Effective hostnames of a route on a listener: sorted, deduplicated; `["*"]` when
/// neither side restricts; empty when they do not intersect. A route hostname that
/// is not a valid hostname ([`crate::spec::validate::hostname_problem`]) matches
/// nothing (it never reaches a proxy; the route reports it).
pub fn effective(listener: Option<&str>, route: &[String]) -> Vec<String> {
    let valid = || {
        route
            .iter()
            .filter(|r| crate::spec::validate::hostname_problem(r).is_none())
    };
    let mut out: Vec<String> = match (listener, route.is_empty()) {
        (None, true) => vec!["*".to_string()],
        (None, false) => valid().cloned().collect(),
        (Some(l), true) => vec![l.to_string()],
        (Some(l), false) => valid().filter_map(|r| intersect(l, r)).collect(),
    };
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    //! Checks hostname intersection against the examples in the Gateway API spec's
    //! `HTTPRoute.spec.hostnames` documentation.
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn exact_and_wildcards() {
        assert_eq!(
            intersect("foo.example.com", "foo.example.com").as_deref(),
            Some("foo.example.com")
        );
        assert_eq!(intersect("foo.example.com", "bar.example.com"), None);
        assert_eq!(
            intersect("*.example.com", "foo.example.com").as_deref(),
            Some("foo.example.com")
        );
        assert_eq!(
            intersect("*.example.com", "a.b.example.com").as_deref(),
            Some("a.b.example.com")
        );
        assert_eq!(intersect("*.example.com", "example.com"), None);
        assert_eq!(
            intersect("foo.example.com", "*.example.com").as_deref(),
            Some("foo.example.com")
        );
        assert_eq!(
            intersect("*.example.com", "*.foo.example.com").as_deref(),
            Some("*.foo.example.com")
        );
        assert_eq!(
            intersect("*.foo.example.com", "*.example.com").as_deref(),
            Some("*.foo.example.com")
        );
        assert_eq!(
            intersect("*.example.com", "*.example.com").as_deref(),
            Some("*.example.com")
        );
        assert_eq!(intersect("*.example.com", "*.example.net"), None);
    }

    #[test]
    fn effective_hostnames() {
        assert_eq!(effective(None, &[]), s(&["*"]));
        assert_eq!(effective(Some("*.example.com"), &[]), s(&["*.example.com"]));
        assert_eq!(
            effective(
                Some("*.example.com"),
                &s(&["b.example.com", "a.example.com", "example.net"])
            ),
            s(&["a.example.com", "b.example.com"])
        );
        assert!(effective(Some("foo.com"), &s(&["bar.com"])).is_empty());
    }
}
