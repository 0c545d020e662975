//! BackendTLSPolicy against hand-written expectations from the CRD docs
//! (`BackendTLSPolicySpec.targetRefs`, `BackendTLSPolicyValidation`) and the
//! conformance cases `BackendTLSPolicy*`: the policy that applies to a Service port
//! sets its cluster's TLS (SNI, trust); a conflict goes to the older policy, then
//! the first by name; a port's own policy goes ahead of the Service's; status is
//! written per Gateway (ancestor) whose routes use the Service.

mod support;

use sluice_pipeline::fixtures::*;
use sluice_pipeline::ir::{
    BackendTlsIr, BackendTrust, ClusterIr, ConditionType, PolicyStatus, Reason, StatusKey,
    StatusOutput, XdsKey, XdsOutput,
};
use sluice_pipeline::model::*;
use support::Run;

fn world(more: Vec<Object>) -> Vec<Object> {
    let mut objects = vec![
        class(),
        Object::Gateway(gateway("infra", "gw", vec![http_listener("http", 80)])),
        Object::Gateway(gateway("infra", "gw2", vec![http_listener("http", 80)])),
        service("infra", "tls-backend", &[443, 8443]),
        service("infra", "plain", &[8080]),
        Object::HttpRoute(route(
            "infra",
            "r",
            vec![parent("gw"), parent("gw2")],
            &[],
            vec![
                prefix_rule("/a", vec![backend("tls-backend", 443)]),
                prefix_rule("/b", vec![backend("tls-backend", 8443)]),
                prefix_rule("/c", vec![backend("plain", 8080)]),
            ],
        )),
        ca_config_map("infra", "ca", "CA-1\n", None),
    ];
    objects.extend(more);
    objects
}

fn cluster(run: &Run, name: &str) -> ClusterIr {
    match run.xds.get(&XdsKey::Cluster(name.into())) {
        Some(XdsOutput::Cluster(c)) => c.clone(),
        other => panic!("no cluster {name}: {other:?}"),
    }
}

/// (policy name, SNI, trust) of a cluster's TLS.
fn tls(run: &Run, name: &str) -> Option<(String, String, BackendTrust)> {
    cluster(run, name)
        .tls
        .map(|t: BackendTlsIr| (t.policy.name, t.hostname, t.trust))
}

fn status<'a>(run: &'a Run, name: &str) -> Option<&'a PolicyStatus> {
    match run
        .status
        .get(&StatusKey::BackendTlsPolicy(ObjectKey::new("infra", name)))
    {
        Some(StatusOutput::BackendTlsPolicy(s)) => Some(s),
        _ => None,
    }
}

fn cond(run: &Run, name: &str, t: ConditionType) -> (bool, Reason) {
    let s = status(run, name).expect("policy status");
    let c = (s.conditions.iter())
        .find(|c| c.type_ == t)
        .expect("condition");
    (c.status, c.reason)
}

fn bundle(pem: &str) -> BackendTrust {
    BackendTrust::CaBundle(pem.into())
}

#[test]
fn a_policy_sets_tls_on_every_port_of_its_service_and_reports_per_gateway() {
    let mut run = Run::new(world(vec![backend_tls_policy(
        "infra",
        "p",
        ("tls-backend", None),
        &["ca"],
        "abc.example.com",
        "",
    )]));
    for port in ["443", "8443"] {
        assert_eq!(
            tls(&run, &format!("infra/tls-backend:{port}")),
            Some(("p".into(), "abc.example.com".into(), bundle("CA-1\n")))
        );
    }
    assert_eq!(tls(&run, "infra/plain:8080"), None);
    let s = status(&run, "p").expect("status");
    assert_eq!(
        s.ancestors,
        vec![
            ObjectKey::new("infra", "gw"),
            ObjectKey::new("infra", "gw2")
        ]
    );
    assert_eq!(
        cond(&run, "p", ConditionType::Accepted),
        (true, Reason::Accepted)
    );
    assert_eq!(
        cond(&run, "p", ConditionType::ResolvedRefs),
        (true, Reason::ResolvedRefs)
    );

    // The CA changes: the clusters carry the new bundle.
    run.apply(vec![Change::Apply(ca_config_map(
        "infra", "ca", "CA-2\n", None,
    ))]);
    assert_eq!(
        tls(&run, "infra/tls-backend:443").map(|t| t.2),
        Some(bundle("CA-2\n"))
    );
    // The CA goes: connections are refused (a 5xx), never sent in the clear.
    run.apply(vec![Change::Delete(ObjectId {
        kind: Kind::ConfigMap,
        key: ObjectKey::new("infra", "ca"),
    })]);
    assert_eq!(
        tls(&run, "infra/tls-backend:443").map(|t| t.2),
        Some(BackendTrust::Refused)
    );
    assert_eq!(
        cond(&run, "p", ConditionType::Accepted),
        (false, Reason::NoValidCACertificate)
    );
    assert_eq!(
        cond(&run, "p", ConditionType::ResolvedRefs),
        (false, Reason::InvalidCACertificateRef)
    );
    // The policy goes: plain again.
    run.apply(vec![Change::Delete(ObjectId {
        kind: Kind::BackendTlsPolicy,
        key: ObjectKey::new("infra", "p"),
    })]);
    assert_eq!(tls(&run, "infra/tls-backend:443"), None);
    assert!(status(&run, "p").is_none());
}

#[test]
fn conflicts_go_to_the_older_policy_then_the_first_name_and_a_port_policy_wins_its_port() {
    let mut run = Run::new(world(vec![
        backend_tls_policy(
            "infra",
            "b-old",
            ("tls-backend", None),
            &["ca"],
            "old.example.com",
            "2024-01-01T00:00:00Z",
        ),
        backend_tls_policy(
            "infra",
            "a-new",
            ("tls-backend", None),
            &["ca"],
            "new.example.com",
            "2024-01-02T00:00:00Z",
        ),
        backend_tls_policy(
            "infra",
            "port-2",
            ("tls-backend", Some("p443")),
            &["ca"],
            "port.example.com",
            "2024-01-03T00:00:00Z",
        ),
        backend_tls_policy(
            "infra",
            "port-1",
            ("tls-backend", Some("p443")),
            &["ca"],
            "other.example.com",
            "2024-01-03T00:00:00Z",
        ),
    ]));
    // Port 443 has its own policies: port-1 (same age, first by name).
    assert_eq!(
        tls(&run, "infra/tls-backend:443").map(|t| (t.0, t.1)),
        Some(("port-1".into(), "other.example.com".into()))
    );
    // Port 8443 only the Service's: the older one.
    assert_eq!(
        tls(&run, "infra/tls-backend:8443").map(|t| (t.0, t.1)),
        Some(("b-old".into(), "old.example.com".into()))
    );
    for (name, ok) in [
        ("b-old", true),
        ("a-new", false),
        ("port-1", true),
        ("port-2", false),
    ] {
        let want = if ok {
            (true, Reason::Accepted)
        } else {
            (false, Reason::Conflicted)
        };
        assert_eq!(cond(&run, name, ConditionType::Accepted), want, "{name}");
    }
    // The winner goes: the next one applies and is accepted.
    run.apply(vec![Change::Delete(ObjectId {
        kind: Kind::BackendTlsPolicy,
        key: ObjectKey::new("infra", "b-old"),
    })]);
    assert_eq!(
        tls(&run, "infra/tls-backend:8443").map(|t| t.0),
        Some("a-new".into())
    );
    assert_eq!(
        cond(&run, "a-new", ConditionType::Accepted),
        (true, Reason::Accepted)
    );
}

#[test]
fn a_policy_no_route_uses_has_no_ancestors_and_no_status() {
    let run = Run::new(world(vec![
        service("infra", "unused", &[443]),
        backend_tls_policy("infra", "p", ("unused", None), &[], "x.example.com", ""),
    ]));
    assert!(status(&run, "p").is_none());
    // A port no route uses is no cluster either.
    assert!(
        !run.xds
            .contains_key(&XdsKey::Cluster("infra/unused:443".into()))
    );
}
