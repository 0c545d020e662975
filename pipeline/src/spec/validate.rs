//! Values that pass the CRDs' schema (or come from a file source, which has none)
//! but that Envoy would reject: one such value in one rule must not make Envoy
//! reject (NACK) the RouteConfiguration of the whole port, other tenants' routes
//! included. A rule with such a value is dropped from xDS and named in the route's
//! status (`PartiallyInvalid`, or `Accepted=False` / `UnsupportedValue` when no rule
//! is left); [`crate::spec::routes::resolve_route`] applies it.
//!
//! What is checked, per rule:
//! - regular expressions (path, header and query matches) parse as RE2 does. Envoy
//!   compiles them with RE2; this uses `regex-syntax`, whose syntax is close to
//!   RE2's (no backreferences, no lookaround), and additionally rejects what
//!   `regex-syntax` accepts but RE2 does not: `\u`/`\U` escapes and class set
//!   operations (`&&`, `--`, `~~`). RE2's program-size limit is not modelled.
//! - header modifiers (request and response, rule and backend level): names are
//!   HTTP tokens (RFC 9110 section 5.6.2), not pseudo-headers, and the request side
//!   does not set, add or remove `Host` (Envoy refuses to modify it); values have no
//!   CR, LF or NUL.
//! - the weights of a rule's backends sum to at most 2^32 − 1 (Envoy's total weight).
//!
//! And per hostname (listener and route, [`hostname_problem`]): the CRDs' `Hostname`
//! pattern (an optional `*.` prefix, then RFC 1123 labels), at most 253 characters,
//! labels of at most 63, and not an IP address ("IPs are not allowed").

use crate::model::{Filter, HeaderModifier, PathMatch, Rule};

/// Why `hostname` is not a Gateway API `Hostname`; `None` if it is. Letters are
/// taken in either case (sources lower-case hostnames).
pub fn hostname_problem(hostname: &str) -> Option<String> {
    let shown = || {
        let mut s: String = hostname.chars().take(64).collect();
        if s.len() < hostname.len() {
            s.push_str("...");
        }
        s
    };
    if hostname.len() > 253 {
        return Some(format!(
            "{:?} is {} characters long, past 253",
            shown(),
            hostname.len()
        ));
    }
    let name = hostname.strip_prefix("*.").unwrap_or(hostname);
    if hostname.parse::<std::net::IpAddr>().is_ok() {
        return Some(format!("{hostname:?} is an IP address; hostnames only"));
    }
    for label in name.split('.') {
        let bytes = label.as_bytes();
        let alnum = |b: &u8| b.is_ascii_alphanumeric();
        let valid = !bytes.is_empty()
            && bytes.len() <= 63
            && bytes.first().is_some_and(alnum)
            && bytes.last().is_some_and(alnum)
            && bytes.iter().all(|b| alnum(b) || *b == b'-');
        if !valid {
            return Some(format!(
                "{:?} is not a valid hostname (RFC 1123 labels of letters, digits and '-', \
                 at most 63 characters each, optionally after a leading \"*.\")",
                shown()
            ));
        }
    }
    None
}

/// Why `rule` (at `index`) cannot be given to Envoy, naming the field; `None` if it can.
pub fn rule_problem(index: usize, rule: &Rule) -> Option<String> {
    let at = |field: String, why: String| Some(format!("rules[{index}].{field}: {why}"));
    for (m, matcher) in rule.matches.iter().enumerate() {
        if let PathMatch::Regex(re) = &matcher.path
            && let Err(why) = re2(re)
        {
            return at(format!("matches[{m}].path"), why);
        }
        let values = (matcher.headers.iter().map(|h| ("headers", h)))
            .chain(matcher.query.iter().map(|q| ("queryParams", q)));
        for (kind, value) in values {
            // Both CRDs' patterns are HTTP tokens; Envoy rejects an empty name (and
            // header names with CR, LF or NUL).
            if value.name.is_empty() || !value.name.bytes().all(is_token_byte) {
                let why = format!("name {:?} is not an HTTP token", value.name);
                return at(format!("matches[{m}].{kind}"), why);
            }
            if value.regex
                && let Err(why) = re2(&value.value)
            {
                return at(format!("matches[{m}].{kind}[{}]", value.name), why);
            }
        }
    }
    for (f, filter) in rule.filters.iter().enumerate() {
        if let Err(why) = filter_problem(filter) {
            return at(format!("filters[{f}]"), why);
        }
    }
    for (b, backend) in rule.backends.iter().enumerate() {
        for (f, filter) in backend.filters.iter().enumerate() {
            if let Err(why) = filter_problem(filter) {
                return at(format!("backendRefs[{b}].filters[{f}]"), why);
            }
        }
    }
    // Envoy redirects, rewrites paths and mirrors per route, not per weighted
    // cluster: with one backend its filters act on the whole rule and are hoisted
    // there (redirect, rewrite); otherwise they cannot be applied, and a rule that
    // silently skipped them would send requests to the wrong path while its status
    // says all is well.
    let several = rule.backends.len() > 1;
    for (b, backend) in rule.backends.iter().enumerate() {
        for (f, filter) in backend.filters.iter().enumerate() {
            let kind = match filter {
                Filter::Redirect(_) if several => "RequestRedirect",
                Filter::UrlRewrite(_) if several => "URLRewrite",
                Filter::Mirror(_) => "RequestMirror",
                _ => continue,
            };
            let why = if several {
                format!(
                    "a {kind} filter on one of several backends is not supported (Envoy \
                     applies it to the whole rule): put it on the rule, or give the \
                     backends rules of their own"
                )
            } else {
                format!("a {kind} filter on a backend is not supported: put it on the rule")
            };
            return at(format!("backendRefs[{b}].filters[{f}]"), why);
        }
    }
    let total: u64 = rule.backends.iter().map(|b| u64::from(b.weight)).sum();
    if total > u64::from(u32::MAX) {
        return at(
            "backendRefs".into(),
            format!("the weights sum to {total}, past 4294967295"),
        );
    }
    None
}

fn filter_problem(filter: &Filter) -> Result<(), String> {
    match filter {
        Filter::RequestHeaders(m) => modifier_problem(m, true),
        Filter::ResponseHeaders(m) => modifier_problem(m, false),
        _ => Ok(()),
    }
}

fn modifier_problem(m: &HeaderModifier, request: bool) -> Result<(), String> {
    let names = (m.set.iter().chain(&m.add).map(|(n, _)| n)).chain(&m.remove);
    for name in names {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(format!("header name {name:?} is not an HTTP token"));
        }
        if request && name.eq_ignore_ascii_case("host") {
            return Err("the Host header cannot be set, added or removed".into());
        }
    }
    for (name, value) in m.set.iter().chain(&m.add) {
        if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(format!("the value of header {name} has a CR, LF or NUL"));
        }
    }
    Ok(())
}

/// RFC 9110 `tchar`. A pseudo-header's `:` is not one.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether RE2 accepts `re` (see the module docs for how close this is).
pub fn re2(re: &str) -> Result<(), String> {
    if let Some(i) = unicode_escape(re) {
        return Err(format!(
            "invalid regular expression {re:?}: \\u escape at {i} (not RE2)"
        ));
    }
    if let Some(op) = class_set_operation(re) {
        return Err(format!(
            "invalid regular expression {re:?}: class operation {op:?} (not RE2)"
        ));
    }
    match regex_syntax::Parser::new().parse(re) {
        Ok(_) => Ok(()),
        Err(e) => {
            let why = e.to_string();
            // The parser's message spans lines (a caret diagram); keep its last line.
            let last = why
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            Err(format!(
                "invalid regular expression {re:?}: {}",
                last.trim()
            ))
        }
    }
}

/// The byte offset of a `\u` or `\U` escape outside a character class or inside.
fn unicode_escape(re: &str) -> Option<usize> {
    let bytes = re.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'\\' {
            if matches!(bytes[i + 1], b'u' | b'U') {
                return Some(i);
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    None
}

/// A class set operation (`&&`, `--`, `~~`) inside brackets, which `regex-syntax`
/// gives a meaning and RE2 rejects or reads otherwise.
fn class_set_operation(re: &str) -> Option<&'static str> {
    let bytes = re.as_bytes();
    let (mut depth, mut i) = (0usize, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'[' => depth += 1,
            b']' if depth > 0 => depth -= 1,
            b'&' | b'-' | b'~' if depth > 0 && bytes.get(i + 1) == Some(&bytes[i]) => {
                return Some(match bytes[i] {
                    b'&' => "&&",
                    b'-' => "--",
                    _ => "~~",
                });
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    //! Each check against values Envoy rejects and values it takes.
    use super::*;

    #[test]
    fn hostnames_follow_the_crd_pattern_and_are_not_ip_addresses() {
        for good in [
            "example.com",
            "*.example.com",
            "a-b.c1",
            "x",
            "Foo.Example.com",
        ] {
            assert_eq!(hostname_problem(good), None, "{good}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        let too_long = format!("{}.com", ["abc"; 70].join("."));
        for bad in [
            "bad_host!",
            "1.2.3.4",
            "::1",
            "",
            "*",
            "a..b",
            "-a.com",
            "a-.com",
            "foo.*.com",
            "*.*.com",
            long_label.as_str(),
            too_long.as_str(),
        ] {
            assert!(hostname_problem(bad).is_some(), "{bad:?} passed");
        }
        let huge = "a".repeat(100 * 1024);
        let why = hostname_problem(&huge).expect("a 100 KB label is invalid");
        assert!(why.len() < 200, "the message quotes a prefix only: {why}");
    }
    use crate::model::{BackendRef, RouteMatch, ValueMatch};

    fn rule(matches: Vec<RouteMatch>, filters: Vec<Filter>, weights: &[u32]) -> Rule {
        Rule {
            matches,
            filters,
            backends: (weights.iter())
                .map(|w| BackendRef {
                    weight: *w,
                    ..crate::fixtures::backend("b", 80)
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Issue 10: a per-backend redirect or path rewrite on one of several backends,
    /// or a per-backend mirror, cannot be given to Envoy: the rule is reported and
    /// dropped instead of silently routing to the unrewritten path. With one backend,
    /// redirect and rewrite act on the whole rule (hoisted) and header modifiers are
    /// per weighted cluster: no problem.
    #[test]
    fn per_backend_filters_envoy_cannot_apply_are_problems() {
        let rewrite = Filter::UrlRewrite(crate::model::UrlRewrite {
            hostname: Some("h.example".into()),
            path: None,
        });
        let redirect = Filter::Redirect(crate::model::Redirect {
            scheme: None,
            hostname: Some("h.example".into()),
            path: None,
            port: None,
            status_code: 302,
        });
        let mirror = Filter::Mirror(crate::model::Mirror {
            backend: crate::fixtures::backend("m", 80),
            fraction: None,
        });
        let headers = Filter::RequestHeaders(HeaderModifier {
            set: vec![("x-a".into(), "1".into())],
            ..Default::default()
        });
        let with = |filter: &Filter, backends: usize| {
            let mut r = rule(vec![], vec![], &vec![1; backends]);
            r.backends[backends - 1].filters = vec![headers.clone(), filter.clone()];
            r
        };
        for f in [&rewrite, &redirect] {
            assert_eq!(
                rule_problem(0, &with(f, 1)),
                None,
                "{f:?} on the only backend"
            );
            let why = rule_problem(0, &with(f, 2)).expect("a problem");
            assert!(
                why.starts_with("rules[0].backendRefs[1].filters[1]:"),
                "{why}"
            );
        }
        for backends in [1, 2] {
            let why = rule_problem(0, &with(&mirror, backends)).expect("a problem");
            assert!(why.contains("RequestMirror"), "{why}");
        }
        let mut two = rule(vec![], vec![], &[1, 1]);
        two.backends[0].filters = vec![headers];
        assert_eq!(
            rule_problem(0, &two),
            None,
            "header modifiers are per backend"
        );
    }

    fn path(re: &str) -> Rule {
        let m = RouteMatch {
            path: PathMatch::Regex(re.into()),
            ..Default::default()
        };
        rule(vec![m], vec![], &[1])
    }

    #[test]
    fn regular_expressions_re2_rejects_are_problems() {
        for bad in [
            "(", "a)", "[z-a]", "(?=x)", "(?<!x)y", r"(a)\1", r"\u0041", "[a&&b]", "x{2,1}",
        ] {
            let problem = rule_problem(0, &path(bad));
            assert!(
                problem.as_deref().is_some_and(
                    |p| p.starts_with("rules[0].matches[0].path: invalid regular expression")
                ),
                "{bad}: {problem:?}"
            );
        }
        for good in [
            "/api/v[0-9]+/.*",
            r"^/(a|b)\d{1,3}$",
            r"/x\.y",
            "[-a]",
            r"\x{41}",
            "(?i)/Abc",
            "[a-]",
        ] {
            assert_eq!(rule_problem(0, &path(good)), None, "{good}");
        }
        let header = RouteMatch {
            headers: vec![ValueMatch {
                name: "x-v".into(),
                value: "(".into(),
                regex: true,
            }],
            ..Default::default()
        };
        let problem = rule_problem(2, &rule(vec![header], vec![], &[1]));
        assert!(problem.is_some_and(|p| p.starts_with("rules[2].matches[0].headers[x-v]")));
    }

    /// Header and query param match names are HTTP tokens (the CRDs' pattern); an
    /// empty one is what Envoy rejects for the whole RouteConfiguration.
    #[test]
    fn match_names_that_are_not_tokens_are_problems() {
        let matching = |headers: bool, name: &str| {
            let value = ValueMatch {
                name: name.into(),
                value: "v".into(),
                regex: false,
            };
            let m = if headers {
                RouteMatch {
                    headers: vec![value],
                    ..Default::default()
                }
            } else {
                RouteMatch {
                    query: vec![value],
                    ..Default::default()
                }
            };
            rule_problem(0, &rule(vec![m], vec![], &[1]))
        };
        for headers in [true, false] {
            for bad in ["", "a b", "x\r\ny", "nul\0", ":path"] {
                let problem = matching(headers, bad);
                assert!(
                    problem
                        .as_deref()
                        .is_some_and(|p| p.contains("is not an HTTP token")),
                    "{bad:?}: {problem:?}"
                );
            }
            assert_eq!(matching(headers, "X-Version_2"), None);
        }
    }

    #[test]
    fn header_modifiers_envoy_refuses_are_problems() {
        let modifier = |set: &[(&str, &str)], remove: &[&str]| HeaderModifier {
            set: set
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            add: vec![],
            remove: remove.iter().map(|n| n.to_string()).collect(),
        };
        let request = |m| {
            rule(
                vec![RouteMatch::default()],
                vec![Filter::RequestHeaders(m)],
                &[1],
            )
        };
        let response = |m| {
            rule(
                vec![RouteMatch::default()],
                vec![Filter::ResponseHeaders(m)],
                &[1],
            )
        };
        assert!(rule_problem(0, &request(modifier(&[("Host", "x")], &[]))).is_some());
        assert!(rule_problem(0, &request(modifier(&[], &["host"]))).is_some());
        assert!(rule_problem(0, &request(modifier(&[(":authority", "x")], &[]))).is_some());
        assert!(rule_problem(0, &request(modifier(&[("x-a", "1\r\nx-b: 2")], &[]))).is_some());
        assert!(rule_problem(0, &response(modifier(&[("x a", "1")], &[]))).is_some());
        // Host is a request header: a response may carry one.
        assert_eq!(
            rule_problem(0, &response(modifier(&[("host", "x")], &[]))),
            None
        );
        assert_eq!(
            rule_problem(0, &request(modifier(&[("X-Tenant", "a b")], &["x-drop"]))),
            None
        );
    }

    #[test]
    fn weights_past_the_total_envoy_allows_are_a_problem() {
        let over = rule(vec![RouteMatch::default()], vec![], &[u32::MAX, 1]);
        assert!(rule_problem(0, &over).is_some_and(|p| p.contains("4294967296")));
        let max = rule(vec![RouteMatch::default()], vec![], &[u32::MAX - 1, 1]);
        assert_eq!(rule_problem(0, &max), None);
    }
}
