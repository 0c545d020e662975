//! Gateway API path modifiers as Envoy path rewrites, for both URLRewrite (a
//! RouteAction) and RequestRedirect (a RedirectAction).
//!
//! Gateway API prefix matching is segment-wise and ignores a trailing slash, and
//! `ReplacePrefixMatch` swaps the matched segments for the replacement without ever
//! doubling or dropping the `/` between them:
//!
//! | prefix | replacement | request      | result       |
//! |--------|-------------|--------------|--------------|
//! | /foo   | /xyz        | /foo/bar     | /xyz/bar     |
//! | /foo/  | /xyz/       | /foo/bar     | /xyz/bar     |
//! | /foo   | /xyz        | /foo/        | /xyz/        |
//! | /foo   | /           | /foo/bar     | /bar         |
//! | /foo   | /           | /foo         | /            |
//! | /      | /foo        | /bar         | /foo/bar     |
//!
//! Envoy's `prefix_rewrite` swaps the matched characters, which is right when
//! neither side is `/` (the route matches with `path_separated_prefix`, trailing
//! slash trimmed); the two `/` cases need a `regex_rewrite` to keep one slash.

use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatchAndSubstitute, RegexMatcher};
use sluice_pipeline::model::PathMatch;

/// A path rewrite in the two forms Envoy offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathRewrite {
    /// `prefix_rewrite`: the matched prefix is replaced by this.
    Prefix(String),
    /// `regex_rewrite`: every match of the (RE2) pattern is replaced.
    Regex {
        pattern: String,
        substitution: String,
    },
}

/// Envoy's `regex_rewrite` message.
pub fn regex_match_and_substitute(pattern: &str, substitution: &str) -> RegexMatchAndSubstitute {
    RegexMatchAndSubstitute {
        pattern: Some(RegexMatcher {
            regex: pattern.to_owned(),
            ..Default::default()
        }),
        substitution: substitution.to_owned(),
    }
}

/// `ReplaceFullPath`: the whole path (Envoy matches it without the query string,
/// and keeps the query).
pub fn replace_full_path(path: &str) -> PathRewrite {
    PathRewrite::Regex {
        pattern: "^/.*$".to_owned(),
        substitution: escape_substitution(path),
    }
}

/// `ReplacePrefixMatch` for a rule matched by `matched`. `None` when there is
/// nothing to do (`/` replaced by `/`) or no prefix to replace: the CRD allows
/// `ReplacePrefixMatch` only with a `PathPrefix` match, so other matches never get
/// here with one.
pub fn replace_prefix_match(matched: &PathMatch, replacement: &str) -> Option<PathRewrite> {
    let PathMatch::Prefix(prefix) = matched else {
        return None;
    };
    // "" stands for the prefix "/" and the replacement "/".
    let prefix = prefix.trim_end_matches('/');
    let replacement = replacement.trim_end_matches('/');
    match (prefix.is_empty(), replacement.is_empty()) {
        (true, true) => None,
        // Everything matches: put the replacement in front of the path.
        (true, false) => Some(PathRewrite::Regex {
            pattern: "^/".to_owned(),
            substitution: escape_substitution(&format!("{replacement}/")),
        }),
        // Strip the prefix and the slashes after it, leave one.
        (false, true) => Some(PathRewrite::Regex {
            pattern: format!("^{}/*", escape_regex(prefix)),
            substitution: "/".to_owned(),
        }),
        (false, false) => Some(PathRewrite::Prefix(replacement.to_owned())),
    }
}

/// Escapes RE2 metacharacters so `s` matches literally.
pub fn escape_regex(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// In an RE2 substitution `\` introduces `\0`..`\9`: make it literal.
fn escape_substitution(s: &str) -> String {
    s.replace('\\', "\\\\")
}

#[cfg(test)]
mod tests {
    //! Checks the rewrite rules against the paths that Gateway API conformance
    //! expects (HTTPRouteRewritePath, HTTPRouteRedirectPath and the spec's
    //! ReplacePrefixMatch table), by applying the produced Envoy rewrite the way
    //! Envoy does: `prefix_rewrite` swaps the matched prefix, `regex_rewrite`
    //! replaces all matches (RE2; the patterns used here mean the same in the
    //! `regex` crate).
    use super::*;

    fn prefix(p: &str) -> PathMatch {
        PathMatch::Prefix(p.to_owned())
    }

    /// What Envoy sends upstream for `path`, matched by `path_separated_prefix`
    /// (or `prefix: "/"`) of `matched`.
    fn envoy_apply(rewrite: &PathRewrite, matched: &str, path: &str) -> String {
        match rewrite {
            PathRewrite::Prefix(r) => {
                let matched = matched.trim_end_matches('/');
                assert!(
                    path.starts_with(matched),
                    "{path} does not start with {matched}"
                );
                format!("{r}{}", &path[matched.len()..])
            }
            PathRewrite::Regex {
                pattern,
                substitution,
            } => {
                let re = regex::Regex::new(pattern).expect("valid regex");
                re.replace_all(path, regex::NoExpand(&substitution.replace("\\\\", "\\")))
                    .into_owned()
            }
        }
    }

    fn check_prefix(matched: &str, replacement: &str, request: &str, expected: &str) {
        let rw = replace_prefix_match(&prefix(matched), replacement);
        let got = match &rw {
            Some(rw) => envoy_apply(rw, matched, request),
            None => request.to_owned(),
        };
        assert_eq!(
            got, expected,
            "{matched} -> {replacement} on {request} ({rw:?})"
        );
    }

    #[test]
    fn conformance_rewrite_path() {
        // conformance/tests/httproute-rewrite-path.yaml
        check_prefix("/prefix/one", "/one", "/prefix/one/two", "/one/two");
        check_prefix("/strip-prefix", "/", "/strip-prefix/three", "/three");
        check_prefix("/strip-prefix", "/", "/strip-prefix", "/");
        check_prefix(
            "/prefix/rewrite-path-and-modify-headers",
            "/prefix",
            "/prefix/rewrite-path-and-modify-headers/one",
            "/prefix/one",
        );
        let full = replace_full_path("/one");
        assert_eq!(envoy_apply(&full, "/full/one", "/full/one/two"), "/one");
        let full = replace_full_path("/test");
        assert_eq!(
            envoy_apply(
                &full,
                "/full/rewrite-path-and-modify-headers",
                "/full/rewrite-path-and-modify-headers/test"
            ),
            "/test"
        );
    }

    #[test]
    fn conformance_redirect_path() {
        // conformance/tests/httproute-redirect-path.yaml
        check_prefix(
            "/original-prefix",
            "/replacement-prefix",
            "/original-prefix/lemon",
            "/replacement-prefix/lemon",
        );
        check_prefix(
            "/path-and-host",
            "/replacement-prefix",
            "/path-and-host",
            "/replacement-prefix",
        );
        check_prefix(
            "/path-and-status",
            "/replacement-prefix",
            "/path-and-status",
            "/replacement-prefix",
        );
    }

    #[test]
    fn spec_prefix_table() {
        // HTTPPathModifier.ReplacePrefixMatch documentation.
        check_prefix("/foo", "/xyz", "/foo/bar", "/xyz/bar");
        check_prefix("/foo", "/xyz/", "/foo/bar", "/xyz/bar");
        check_prefix("/foo/", "/xyz", "/foo/bar", "/xyz/bar");
        check_prefix("/foo/", "/xyz/", "/foo/bar", "/xyz/bar");
        check_prefix("/foo", "/xyz", "/foo", "/xyz");
        check_prefix("/foo", "/xyz", "/foo/", "/xyz/");
        check_prefix("/foo", "", "/foo/bar", "/bar");
        check_prefix("/foo", "", "/foo/", "/");
        check_prefix("/foo", "", "/foo", "/");
        check_prefix("/foo", "/", "/foo/", "/");
        check_prefix("/foo", "/", "/foo", "/");
    }

    #[test]
    fn slash_prefix_and_slash_replacement() {
        check_prefix("/prefix/one", "/", "/prefix/one/three", "/three");
        check_prefix("/", "/foo", "/bar", "/foo/bar");
        check_prefix("/", "/foo/", "/bar/baz", "/foo/bar/baz");
        check_prefix("/", "/", "/bar", "/bar");
    }

    #[test]
    fn metacharacters_are_literal() {
        let rw = replace_prefix_match(&prefix("/a.b"), "/").expect("a rewrite");
        assert_eq!(envoy_apply(&rw, "/a.b", "/a.b/c"), "/c");
        assert_eq!(envoy_apply(&rw, "/a.b", "/axb/c"), "/axb/c");
    }

    #[test]
    fn no_prefix_rewrite_without_a_prefix_match() {
        assert_eq!(
            replace_prefix_match(&PathMatch::Exact("/a".into()), "/b"),
            None
        );
        assert_eq!(
            replace_prefix_match(&PathMatch::Regex("/a.*".into()), "/b"),
            None
        );
    }
}
