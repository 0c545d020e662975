//! HTTPS listener certificates against hand-written expectations from the Gateway
//! API's `GatewayTLSConfig.certificateRefs` and listener condition docs: a core
//! Secret in the Gateway's namespace resolves; another namespace needs a
//! ReferenceGrant from Gateways to Secrets (else `ResolvedRefs=False` /
//! `RefNotPermitted`); a missing Secret, another kind, or malformed data is
//! `InvalidCertificateRef`. A listener with some valid certificate is programmed
//! (one TLS chain of its port, its Secrets served per gateway over SDS); with none it
//! is `Programmed=False`. Routes attach to it either way.

mod support;

use sluice_pipeline::fixtures::*;
use sluice_pipeline::ir::{
    ConditionType, ListenerStatus, Reason, SecretIr, SecretMaterial, StatusKey, StatusOutput,
    TlsChain, XdsKey, XdsOutput,
};
use sluice_pipeline::model::*;
use sluice_pipeline::{Pipeline, PipelineConfig};
use support::Run;

fn gw_key() -> ObjectKey {
    ObjectKey::new("infra", "gw")
}

fn world(listeners: Vec<Listener>, more: Vec<Object>) -> Vec<Object> {
    let mut objects = vec![
        class(),
        Object::Gateway(gateway("infra", "gw", listeners)),
        service("infra", "web", &[8080]),
        Object::HttpRoute(route(
            "infra",
            "r",
            vec![parent("gw")],
            &[],
            vec![prefix_rule("/", vec![backend("web", 8080)])],
        )),
    ];
    objects.extend(more);
    objects
}

fn listener<'a>(run: &'a Run, name: &str) -> &'a ListenerStatus {
    let Some(StatusOutput::Gateway(g)) = run.status.get(&StatusKey::Gateway(gw_key())) else {
        panic!("no gateway status: {:#?}", run.status)
    };
    g.listeners
        .iter()
        .find(|l| l.name == name)
        .expect("listener status")
}

/// (status, reason, message) of a listener condition.
fn cond(run: &Run, name: &str, t: ConditionType) -> (bool, Reason, String) {
    let c = (listener(run, name).conditions.iter())
        .find(|c| c.type_ == t)
        .expect("condition");
    (c.status, c.reason, c.message.clone())
}

fn tls_of(run: &Run, port: u16) -> Option<Vec<TlsChain>> {
    match run.xds.get(&XdsKey::Listener(gw_key(), port)) {
        Some(XdsOutput::Listener(l)) => Some(l.tls.clone()),
        _ => None,
    }
}

fn served_secrets(run: &Run) -> Vec<(String, String)> {
    run.xds
        .values()
        .filter_map(|o| match o {
            XdsOutput::Secret { gateway, secret } => {
                assert_eq!(*gateway, gw_key());
                Some((secret.name.clone(), pem(secret)))
            }
            _ => None,
        })
        .collect()
}

/// The PEM a served Secret carries: its certificate chain, or its CA bundle.
fn pem(secret: &SecretIr) -> String {
    match &secret.material {
        SecretMaterial::Certificate { cert_chain, .. } => cert_chain.clone(),
        SecretMaterial::TrustedCa(bundle) => bundle.clone(),
    }
}

fn chain(hostname: Option<&str>, secrets: &[&str]) -> TlsChain {
    TlsChain {
        hostname: hostname.map(Into::into),
        secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
        client_validation: None,
    }
}

#[test]
fn valid_certificates_make_tls_chains_per_listener_and_are_served() {
    let run = Run::new(world(
        vec![
            https_listener("https", 443, None, &["cert"]),
            https_listener("named", 443, Some("a.example"), &["cert", "missing"]),
        ],
        vec![tls_secret("infra", "cert", "PEM-1", None)],
    ));
    assert_eq!(
        tls_of(&run, 443),
        Some(vec![
            chain(None, &["infra/cert"]),
            chain(Some("a.example"), &["infra/cert"])
        ])
    );
    assert_eq!(
        served_secrets(&run),
        vec![("infra/cert".into(), "PEM-1".into())]
    );
    let (ok, reason, _) = cond(&run, "https", ConditionType::ResolvedRefs);
    assert!(ok && reason == Reason::ResolvedRefs);
    assert!(cond(&run, "https", ConditionType::Programmed).0);
    // One bad reference of two: ResolvedRefs=False naming it, still programmed.
    let (ok, reason, message) = cond(&run, "named", ConditionType::ResolvedRefs);
    assert_eq!((ok, reason), (false, Reason::InvalidCertificateRef));
    assert!(
        message.contains("infra/missing") && message.contains("not found"),
        "{message}"
    );
    assert!(cond(&run, "named", ConditionType::Programmed).0);
    // Routes attach to HTTPS listeners and get virtual hosts on their port.
    assert_eq!(listener(&run, "https").attached_routes, 1);
    assert!(
        run.xds
            .contains_key(&XdsKey::VirtualHost(gw_key(), 443, "*".into()))
    );
}

#[test]
fn a_missing_or_malformed_secret_or_another_kind_leaves_the_listener_unprogrammed() {
    let mut configmap = https_listener("configmap", 8443, None, &["cert"]);
    if let Some(tls) = &mut configmap.tls {
        tls.certificate_refs[0].kind = "ConfigMap".into();
    }
    let mut run = Run::new(world(
        vec![
            https_listener("missing", 443, None, &["cert"]),
            configmap,
            http_listener("http", 80),
        ],
        vec![],
    ));
    for (name, says) in [
        ("missing", "not found"),
        ("configmap", "/ConfigMap is not supported"),
    ] {
        let (ok, reason, message) = cond(&run, name, ConditionType::ResolvedRefs);
        assert_eq!(
            (ok, reason),
            (false, Reason::InvalidCertificateRef),
            "{name}"
        );
        assert!(message.contains(says), "{name}: {message}");
        let (ok, reason, _) = cond(&run, name, ConditionType::Programmed);
        assert_eq!((ok, reason), (false, Reason::Invalid), "{name}");
        assert_eq!(listener(&run, name).attached_routes, 1, "{name}");
    }
    assert_eq!(tls_of(&run, 443), None);
    assert_eq!(tls_of(&run, 8443), None);
    assert_eq!(tls_of(&run, 80), Some(vec![]), "the HTTP sibling is served");
    assert!(served_secrets(&run).is_empty());

    // The Secret arrives malformed: still invalid, with the source's reason.
    run.apply(vec![Change::Apply(tls_secret(
        "infra",
        "cert",
        "",
        Some("tls.crt: no PEM certificate"),
    ))]);
    let (ok, _, message) = cond(&run, "missing", ConditionType::ResolvedRefs);
    assert!(!ok && message.contains("no PEM certificate"), "{message}");
    assert_eq!(tls_of(&run, 443), None);
    assert!(served_secrets(&run).is_empty());

    // Fixed: served, and the ConfigMap reference stays invalid.
    run.apply(vec![Change::Apply(tls_secret(
        "infra", "cert", "PEM-1", None,
    ))]);
    assert!(cond(&run, "missing", ConditionType::ResolvedRefs).0);
    assert!(cond(&run, "missing", ConditionType::Programmed).0);
    assert_eq!(tls_of(&run, 443), Some(vec![chain(None, &["infra/cert"])]));
    assert!(!cond(&run, "configmap", ConditionType::ResolvedRefs).0);

    // Deleted again: nothing of it stays.
    run.apply(vec![Change::Delete(ObjectId {
        kind: Kind::Secret,
        key: ObjectKey::new("infra", "cert"),
    })]);
    assert_eq!(tls_of(&run, 443), None);
    assert!(served_secrets(&run).is_empty());
}

#[test]
fn a_certificate_in_another_namespace_needs_a_grant_from_gateways_to_secrets() {
    let mut run = Run::new(world(
        vec![https_listener("https", 443, None, &["certs/shared"])],
        vec![
            tls_secret("certs", "shared", "PEM-1", None),
            // A grant for HTTPRoutes to Services does not admit it.
            grant("certs", "routes", "infra", None),
            // Nor one for Gateways of another namespace.
            secret_grant("certs", "other", "elsewhere", None),
        ],
    ));
    let (ok, reason, message) = cond(&run, "https", ConditionType::ResolvedRefs);
    assert_eq!((ok, reason), (false, Reason::RefNotPermitted));
    assert!(message.contains("certs/shared"), "{message}");
    assert!(!cond(&run, "https", ConditionType::Programmed).0);
    assert_eq!(tls_of(&run, 443), None);

    // A grant for another Secret name does not either; one for this name does.
    run.apply(vec![Change::Apply(secret_grant(
        "certs",
        "g",
        "infra",
        Some("other"),
    ))]);
    assert_eq!(
        cond(&run, "https", ConditionType::ResolvedRefs).1,
        Reason::RefNotPermitted
    );
    run.apply(vec![Change::Apply(secret_grant(
        "certs",
        "g",
        "infra",
        Some("shared"),
    ))]);
    assert!(cond(&run, "https", ConditionType::ResolvedRefs).0);
    assert_eq!(
        tls_of(&run, 443),
        Some(vec![chain(None, &["certs/shared"])])
    );
    assert_eq!(
        served_secrets(&run),
        vec![("certs/shared".into(), "PEM-1".into())]
    );

    // Revoked: refused again, and the Secret is no longer served.
    run.apply(vec![Change::Delete(ObjectId {
        kind: Kind::ReferenceGrant,
        key: ObjectKey::new("certs", "g"),
    })]);
    assert_eq!(
        cond(&run, "https", ConditionType::ResolvedRefs).1,
        Reason::RefNotPermitted
    );
    assert!(served_secrets(&run).is_empty());
}

#[test]
fn rotating_a_certificate_changes_only_its_secret() {
    let objects = world(
        vec![https_listener("https", 443, Some("a.example"), &["cert"])],
        vec![tls_secret("infra", "cert", "PEM-1", None)],
    );
    let mut p = Pipeline::new(PipelineConfig::default()).expect("pipeline");
    p.apply(objects.into_iter().map(Change::Apply).collect::<Vec<_>>())
        .expect("apply");
    let delta = p
        .apply(vec![Change::Apply(tls_secret(
            "infra", "cert", "PEM-2", None,
        ))])
        .expect("apply");
    assert!(delta.status.is_empty(), "{:#?}", delta.status);
    let touched: Vec<(String, isize)> = delta
        .xds
        .iter()
        .map(|(o, d)| match o {
            XdsOutput::Secret { secret, .. } => (pem(secret), *d),
            other => panic!("a rotation touched {other:?}"),
        })
        .collect();
    assert_eq!(touched, vec![("PEM-1".into(), -1), ("PEM-2".into(), 1)]);
}
