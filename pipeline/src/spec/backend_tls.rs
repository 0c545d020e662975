//! BackendTLSPolicy (v1) semantics, from the CRD's field docs: which policy applies
//! to a Service port (`targetRefs` with or without `sectionName`, the older policy
//! winning a conflict), what its CA references resolve to, and its conditions.
//!
//! * `caCertificateRefs`: each a core ConfigMap with `ca.crt` in the policy's
//!   namespace. An unknown kind is `ResolvedRefs=False` / `InvalidKind`; a missing
//!   ConfigMap or one without a usable `ca.crt` is `InvalidCACertificateRef`. If all
//!   are invalid, `Accepted=False` / `NoValidCACertificate`, and connections to the
//!   backend fail (the client gets a 5xx).
//! * `wellKnownCACertificates`: only `System` is supported; another value is
//!   `Accepted=False` / `Invalid`. Exactly one of it and `caCertificateRefs` is set.
//! * Conflicts: of the policies targeting the same Service and `sectionName`, the
//!   oldest by creation timestamp, then the first by `namespace/name`, applies; the
//!   others are `Accepted=False` / `Conflicted`. A policy naming a port
//!   (`sectionName`) applies to that port ahead of one naming the whole Service.

use serde::{Deserialize, Serialize};

use crate::ir::{BackendTlsIr, BackendTrust, Condition, push_bundle_member};
use crate::model::{BackendTlsPolicy, ConfigMap, ObjectKey};
use crate::spec::conditions::{ConditionType as Type, Reason};

/// The value of `wellKnownCACertificates` Sluice supports.
pub const SYSTEM: &str = "System";

/// What a policy amounts to, before conflicts: the trust it gives its backends and
/// its `Accepted` / `ResolvedRefs` conditions.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PolicyVerdict {
    pub trust: BackendTrust,
    pub accepted: Condition,
    pub resolved_refs: Condition,
}

impl PolicyVerdict {
    /// The TLS settings of the backends this policy applies to.
    pub fn tls(&self, policy: &BackendTlsPolicy) -> BackendTlsIr {
        BackendTlsIr {
            policy: policy.meta.key.clone(),
            hostname: policy.hostname.clone(),
            trust: self.trust.clone(),
            subject_alt_names: policy.subject_alt_names.clone(),
        }
    }

    /// The status conditions, `Accepted` replaced when the policy lost a conflict to
    /// `winner`.
    pub fn conditions(&self, conflicted_with: Option<&ObjectKey>) -> Vec<Condition> {
        let accepted = match conflicted_with {
            Some(winner) => Condition::new(
                Type::Accepted,
                false,
                Reason::Conflicted,
                format!(
                    "Another BackendTLSPolicy, {winner}, targets the same Service (and \
                     sectionName) and takes precedence (older, or first by namespace/name)"
                ),
            ),
            None => self.accepted.clone(),
        };
        vec![accepted, self.resolved_refs.clone()]
    }
}

/// The policy's verdict given the ConfigMaps found among its `caCertificateRefs`
/// (`found`: those that exist, in any order).
pub fn verdict(policy: &BackendTlsPolicy, found: &[&ConfigMap]) -> PolicyVerdict {
    let resolved = Condition::new(
        Type::ResolvedRefs,
        true,
        Reason::ResolvedRefs,
        "All CA certificate references resolve",
    );
    let invalid = |msg: String| PolicyVerdict {
        trust: BackendTrust::Refused,
        accepted: Condition::new(Type::Accepted, false, Reason::Invalid, msg),
        resolved_refs: resolved.clone(),
    };
    if let Some(problem) = &policy.meta.problem {
        // The last good version still applies; its status says why the newest does not.
        let mut v = verdict(
            &BackendTlsPolicy {
                meta: crate::model::Meta {
                    problem: None,
                    ..policy.meta.clone()
                },
                ..policy.clone()
            },
            found,
        );
        v.accepted = Condition::new(
            Type::Accepted,
            false,
            Reason::Invalid,
            super::gateway::not_converted(problem),
        );
        return v;
    }
    match (&policy.well_known, policy.ca_refs.is_empty()) {
        (Some(_), false) => {
            return invalid(
                "Only one of caCertificateRefs and wellKnownCACertificates may be set".into(),
            );
        }
        (Some(w), true) if w == SYSTEM => {
            return PolicyVerdict {
                trust: BackendTrust::System,
                accepted: accepted(),
                resolved_refs: resolved,
            };
        }
        (Some(w), true) => {
            return invalid(format!(
                "wellKnownCACertificates {w:?} is not supported (only {SYSTEM:?})"
            ));
        }
        (None, true) => {
            return invalid("Neither caCertificateRefs nor wellKnownCACertificates is set".into());
        }
        (None, false) => {}
    }
    let ns = &policy.meta.key.namespace;
    let mut bundle = String::new();
    let mut failures: Vec<(Reason, String)> = vec![];
    for (i, r) in policy.ca_refs.iter().enumerate() {
        let what = format!("caCertificateRefs[{i}]");
        if !r.is_config_map() {
            let group = if r.group.is_empty() { "core" } else { &r.group };
            failures.push((
                Reason::InvalidKind,
                format!(
                    "{what}: {group}/{} is not supported (only core ConfigMap)",
                    r.kind
                ),
            ));
            continue;
        }
        match found.iter().find(|c| c.key.name == r.name) {
            None => failures.push((
                Reason::InvalidCACertificateRef,
                format!("{what}: ConfigMap {ns}/{} not found", r.name),
            )),
            Some(c) => match &c.problem {
                Some(p) => failures.push((
                    Reason::InvalidCACertificateRef,
                    format!("{what}: ConfigMap {ns}/{}: {p}", r.name),
                )),
                None => push_bundle_member(&mut bundle, &c.ca_bundle),
            },
        }
    }
    let resolved_refs = match failures.first() {
        None => resolved,
        Some((reason, _)) => {
            let msgs: Vec<&str> = failures.iter().map(|(_, m)| m.as_str()).collect();
            Condition::new(Type::ResolvedRefs, false, *reason, msgs.join("; "))
        }
    };
    if bundle.is_empty() {
        PolicyVerdict {
            trust: BackendTrust::Refused,
            accepted: Condition::new(
                Type::Accepted,
                false,
                Reason::NoValidCACertificate,
                "No CA certificate reference is valid, so connections to the backend fail",
            ),
            resolved_refs,
        }
    } else {
        PolicyVerdict {
            trust: BackendTrust::CaBundle(bundle),
            accepted: accepted(),
            resolved_refs,
        }
    }
}

fn accepted() -> Condition {
    Condition::new(
        Type::Accepted,
        true,
        Reason::Accepted,
        "BackendTLSPolicy is accepted",
    )
}

/// Conflict order: the older policy first (creation timestamps are RFC 3339 UTC,
/// so they sort as text; an unknown one sorts first), then by `namespace/name`.
pub fn precedence(policy: &BackendTlsPolicy) -> (String, ObjectKey) {
    (policy.meta.creation.clone(), policy.meta.key.clone())
}

#[cfg(test)]
mod tests {
    //! Against the `BackendTLSPolicyValidation.caCertificateRefs` and
    //! `wellKnownCACertificates` docs.
    use super::*;
    use crate::model::{LocalRef, Meta};

    fn policy(refs: &[(&str, &str)], well_known: Option<&str>) -> BackendTlsPolicy {
        BackendTlsPolicy {
            meta: Meta {
                key: ObjectKey::new("ns", "p"),
                ..Meta::default()
            },
            targets: vec![],
            ca_refs: (refs.iter())
                .map(|(kind, name)| LocalRef {
                    group: String::new(),
                    kind: (*kind).into(),
                    name: (*name).into(),
                })
                .collect(),
            well_known: well_known.map(Into::into),
            hostname: "abc.example.com".into(),
            subject_alt_names: vec![],
        }
    }

    fn config_map(name: &str, pem: &str, problem: Option<&str>) -> ConfigMap {
        ConfigMap {
            key: ObjectKey::new("ns", name),
            ca_bundle: pem.into(),
            problem: problem.map(Into::into),
        }
    }

    fn summary(v: &PolicyVerdict) -> (BackendTrust, (bool, Reason), (bool, Reason)) {
        (
            v.trust.clone(),
            (v.accepted.status, v.accepted.reason),
            (v.resolved_refs.status, v.resolved_refs.reason),
        )
    }

    #[test]
    fn ca_refs_resolve_to_one_bundle_of_the_valid_ones() {
        let (a, b) = (
            config_map("a", "CA-A", None),
            config_map("b", "CA-B\n", None),
        );
        let v = verdict(
            &policy(&[("ConfigMap", "a"), ("ConfigMap", "b")], None),
            &[&b, &a],
        );
        assert_eq!(
            summary(&v),
            (
                BackendTrust::CaBundle("CA-A\nCA-B\n".into()),
                (true, Reason::Accepted),
                (true, Reason::ResolvedRefs)
            )
        );
        // One missing of two: ResolvedRefs=False naming it, still accepted and
        // validated against the other.
        let v = verdict(
            &policy(&[("ConfigMap", "gone"), ("ConfigMap", "b")], None),
            &[&b],
        );
        assert_eq!(
            summary(&v),
            (
                BackendTrust::CaBundle("CA-B\n".into()),
                (true, Reason::Accepted),
                (false, Reason::InvalidCACertificateRef)
            )
        );
        assert!(v.resolved_refs.message.contains("ns/gone not found"));
    }

    #[test]
    fn no_valid_ca_refuses_connections() {
        let bad = config_map("bad", "", Some("ConfigMap has no key ca.crt"));
        let v = verdict(&policy(&[("ConfigMap", "bad")], None), &[&bad]);
        assert_eq!(
            summary(&v),
            (
                BackendTrust::Refused,
                (false, Reason::NoValidCACertificate),
                (false, Reason::InvalidCACertificateRef)
            )
        );
        assert!(v.resolved_refs.message.contains("no key ca.crt"));
        let v = verdict(&policy(&[("InvalidKind", "x")], None), &[]);
        assert_eq!(
            summary(&v),
            (
                BackendTrust::Refused,
                (false, Reason::NoValidCACertificate),
                (false, Reason::InvalidKind)
            )
        );
    }

    #[test]
    fn well_known_system_is_the_only_supported_set() {
        assert_eq!(
            verdict(&policy(&[], Some("System")), &[]).trust,
            BackendTrust::System
        );
        for p in [
            policy(&[], Some("example.com/mine")),
            policy(&[("ConfigMap", "a")], Some("System")),
            policy(&[], None),
        ] {
            let v = verdict(&p, &[]);
            assert_eq!(
                (v.trust, v.accepted.status, v.accepted.reason),
                (BackendTrust::Refused, false, Reason::Invalid),
                "{p:?}"
            );
        }
    }

    #[test]
    fn the_older_policy_then_the_first_name_takes_precedence() {
        let mut older = policy(&[], Some("System"));
        older.meta.key = ObjectKey::new("ns", "z");
        older.meta.creation = "2021-07-15T01:02:03Z".into();
        let mut newer = policy(&[], Some("System"));
        newer.meta.creation = "2021-07-15T01:02:04Z".into();
        assert!(precedence(&older) < precedence(&newer));
        let mut same = newer.clone();
        same.meta.key = ObjectKey::new("ns", "q");
        assert!(precedence(&newer) < precedence(&same), "ns/p before ns/q");
    }
}
