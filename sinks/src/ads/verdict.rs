//! Which resources a proxy's ACK or NACK is about.
//!
//! A stream remembers, per type, the resources each response carried as new or
//! changed, by nonce. A request answering nonce `N` is the proxy's verdict on
//! response `N` and on any earlier response it did not answer separately (Envoy may
//! answer only the latest of several it processed together); those responses are
//! then forgotten. An ACK makes their resources the last accepted versions; a NACK
//! rejects those of them Envoy's message names, or all of them when it names none.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::state::Resource;

/// Unanswered responses kept per type; older ones are dropped unanswered (a client
/// that never answers must not grow the stream without bound).
const MAX_UNANSWERED: usize = 32;

/// One type's responses not answered yet.
#[derive(Debug, Default)]
pub struct Inflight {
    responses: VecDeque<(String, Vec<Arc<Resource>>)>,
}

impl Inflight {
    /// Response `nonce` carried `upserts`.
    pub fn sent(&mut self, nonce: &str, upserts: Vec<Arc<Resource>>) {
        if self.responses.len() == MAX_UNANSWERED {
            self.responses.pop_front();
        }
        self.responses.push_back((nonce.to_owned(), upserts));
    }

    /// The resources a verdict on `nonce` covers (its response's and those of the
    /// unanswered responses before it); `None` for a nonce this stream did not send
    /// or already had a verdict on.
    pub fn answered(&mut self, nonce: &str) -> Option<Vec<Arc<Resource>>> {
        if nonce.is_empty() || !self.responses.iter().any(|(n, _)| n == nonce) {
            return None;
        }
        let mut covered = Vec::new();
        while let Some((n, upserts)) = self.responses.pop_front() {
            covered.extend(upserts);
            if n == nonce {
                break;
            }
        }
        Some(covered)
    }
}

/// The resources of `covered` that Envoy's rejection `message` names (a name
/// delimited by characters that cannot continue it), or all of them when it names
/// none of them.
pub fn culprits(covered: Vec<Arc<Resource>>, message: &str) -> Vec<Arc<Resource>> {
    let named: Vec<Arc<Resource>> = (covered.iter())
        .filter(|r| names(message, &r.name))
        .cloned()
        .collect();
    if named.is_empty() { covered } else { named }
}

/// Whether `name` occurs in `message` as a whole name: not inside a longer name
/// (names are made of alphanumerics and `-_./:`; a `:` ends a name unless more of a
/// name follows it, as in `ns/svc:80`).
fn names(message: &str, name: &str) -> bool {
    let part = |c: char| c.is_ascii_alphanumeric() || "-_./".contains(c);
    message.match_indices(name).any(|(at, _)| {
        let before = message[..at].chars().next_back();
        let mut after = message[at + name.len()..].chars();
        let continued_after = match after.next() {
            Some(':') => after.next().is_some_and(part),
            Some(c) => part(c),
            None => false,
        };
        !name.is_empty() && !before.is_some_and(|c| part(c) || c == ':') && !continued_after
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::bytes::Bytes;

    fn r(name: &str) -> Arc<Resource> {
        Arc::new(Resource::new(name.to_owned(), Bytes::from(name.to_owned())))
    }

    fn names_of(rs: &[Arc<Resource>]) -> Vec<&str> {
        rs.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn a_verdict_covers_its_response_and_unanswered_earlier_ones() {
        let mut f = Inflight::default();
        f.sent("1", vec![r("a")]);
        f.sent("2", vec![r("b")]);
        f.sent("3", vec![r("c")]);
        assert!(f.answered("9").is_none());
        assert_eq!(names_of(&f.answered("2").expect("2")), ["a", "b"]);
        // Answered once only.
        assert!(f.answered("2").is_none());
        assert_eq!(names_of(&f.answered("3").expect("3")), ["c"]);
        assert!(f.answered("").is_none());
    }

    #[test]
    fn unanswered_responses_are_bounded() {
        let mut f = Inflight::default();
        for i in 0..100 {
            f.sent(&i.to_string(), vec![r(&format!("r{i}"))]);
        }
        assert!(f.answered("0").is_none());
        assert_eq!(f.answered("99").expect("99").len(), MAX_UNANSWERED);
    }

    #[test]
    fn culprits_are_the_named_resources_else_all() {
        let covered = vec![r("ns/gw/80"), r("ns/gw/8080"), r("ns/gw/81")];
        let message = "Error adding/updating listener(s) ns/gw/8080: cannot bind";
        assert_eq!(
            names_of(&culprits(covered.clone(), message)),
            ["ns/gw/8080"]
        );
        let vague = "Proto constraint validation failed";
        assert_eq!(culprits(covered.clone(), vague).len(), 3);
        let two = "ns/gw/80: bad\nns/gw/81: bad";
        assert_eq!(names_of(&culprits(covered, two)), ["ns/gw/80", "ns/gw/81"]);
        let clusters = vec![r("ns/echo:80"), r("ns/echo:8080")];
        let message = "cluster ns/echo:8080: unknown field";
        assert_eq!(names_of(&culprits(clusters, message)), ["ns/echo:8080"]);
    }
}
