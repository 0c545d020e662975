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
    ClientValidationIr, ConditionType, ListenerStatus, Reason, SecretIr, SecretMaterial, StatusKey,
    StatusOutput, TlsChain, XdsKey, XdsOutput, ca_bundle_name,
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

// Client certificate validation (`spec.tls.frontend`), against the CRD docs of
// `FrontendTLSConfig` and `caCertificateRefs`: an HTTPS listener validates against
// the perPort entry of its port, else the default; each reference is a core
// ConfigMap with `ca.crt`, in the Gateway's namespace or granted; a failing one is
// `ResolvedRefs=False` (`InvalidCACertificateRef` / `InvalidCACertificateKind` /
// `RefNotPermitted`); with none usable the listener is `Accepted=False` /
// `NoValidCACertificate` and is not served.

fn validated(
    hostname: Option<&str>,
    secrets: &[&str],
    cas: &[&str],
    insecure_fallback: bool,
) -> TlsChain {
    let names: Vec<String> = cas.iter().map(|c| (*c).to_owned()).collect();
    TlsChain {
        client_validation: Some(ClientValidationIr {
            ca: ca_bundle_name(&names),
            insecure_fallback,
        }),
        ..chain(hostname, secrets)
    }
}

fn with_frontend(objects: &mut [Object], validations: Vec<FrontendValidation>) {
    for o in objects {
        if let Object::Gateway(g) = o {
            g.frontend_validation = validations.clone();
        }
    }
}

fn gateway_condition(run: &Run, t: ConditionType) -> Option<(bool, Reason)> {
    let Some(StatusOutput::Gateway(g)) = run.status.get(&StatusKey::Gateway(gw_key())) else {
        panic!("no gateway status")
    };
    (g.conditions.iter())
        .find(|c| c.type_ == t)
        .map(|c| (c.status, c.reason))
}

#[test]
fn client_validation_picks_the_port_setting_and_serves_one_bundle_per_ca_list() {
    let mut objects = world(
        vec![
            https_listener("https", 443, None, &["cert"]),
            https_listener("alt", 8443, None, &["cert"]),
            https_listener("open", 9443, None, &["cert"]),
            http_listener("http", 80),
        ],
        vec![
            tls_secret("infra", "cert", "PEM-1", None),
            // Written without a final newline: the bundle still has it on its own lines.
            ca_config_map("infra", "ca", "CA-1", None),
            ca_config_map("certs", "shared", "CA-2\n", None),
            config_map_grant("certs", "g", "infra", Some("shared")),
        ],
    );
    with_frontend(
        &mut objects,
        vec![
            frontend_validation(None, &["ca"], false),
            frontend_validation(Some(8443), &["ca", "certs/shared"], true),
            // perPort without validation: that port validates nothing.
            frontend_validation(Some(9443), &[], false),
        ],
    );
    let run = Run::new(objects);
    assert_eq!(
        tls_of(&run, 443),
        Some(vec![validated(None, &["infra/cert"], &["infra/ca"], false)])
    );
    assert_eq!(
        tls_of(&run, 8443),
        Some(vec![validated(
            None,
            &["infra/cert"],
            &["infra/ca", "certs/shared"],
            true
        )])
    );
    assert_eq!(tls_of(&run, 9443), Some(vec![chain(None, &["infra/cert"])]));
    assert_eq!(tls_of(&run, 80), Some(vec![]));
    let mut served = served_secrets(&run);
    served.sort();
    assert_eq!(
        served,
        vec![
            ("configmap:infra/ca".into(), "CA-1\n".into()),
            (
                "configmap:infra/ca,certs/shared".into(),
                "CA-1\nCA-2\n".into()
            ),
            ("infra/cert".into(), "PEM-1".into()),
        ]
    );
    for name in ["https", "alt", "open", "http"] {
        assert!(cond(&run, name, ConditionType::ResolvedRefs).0, "{name}");
        assert!(cond(&run, name, ConditionType::Accepted).0, "{name}");
        assert!(cond(&run, name, ConditionType::Programmed).0, "{name}");
    }
    assert_eq!(
        gateway_condition(&run, ConditionType::InsecureFrontendValidationMode),
        Some((true, Reason::ConfigurationChanged))
    );
}

#[test]
fn unusable_ca_refs_are_reported_and_a_listener_with_none_is_not_served() {
    let mut objects = world(
        vec![
            https_listener("missing", 443, None, &["cert"]),
            https_listener("kind", 8443, None, &["cert"]),
            https_listener("grant", 9443, None, &["cert"]),
            https_listener("malformed", 10443, None, &["cert"]),
            https_listener("partial", 11443, None, &["cert"]),
        ],
        vec![
            tls_secret("infra", "cert", "PEM-1", None),
            ca_config_map("infra", "ca", "CA-1\n", None),
            ca_config_map("infra", "bad", "", Some("ca.crt: no PEM certificate")),
            ca_config_map("certs", "shared", "CA-2\n", None),
            // A grant to Secrets does not admit a ConfigMap.
            secret_grant("certs", "g", "infra", None),
        ],
    );
    let mut kind = frontend_validation(Some(8443), &["ca"], false);
    kind.client.ca_refs[0].kind = "Secret".into();
    with_frontend(
        &mut objects,
        vec![
            frontend_validation(None, &["nope"], false),
            kind,
            frontend_validation(Some(9443), &["certs/shared"], false),
            frontend_validation(Some(10443), &["bad"], false),
            frontend_validation(Some(11443), &["ca", "nope"], false),
        ],
    );
    let mut run = Run::new(objects);
    for (name, port, reason, says) in [
        (
            "missing",
            443,
            Reason::InvalidCACertificateRef,
            "infra/nope",
        ),
        ("kind", 8443, Reason::InvalidCACertificateKind, "Secret"),
        ("grant", 9443, Reason::RefNotPermitted, "certs/shared"),
        (
            "malformed",
            10443,
            Reason::InvalidCACertificateRef,
            "no PEM certificate",
        ),
    ] {
        let (ok, got, message) = cond(&run, name, ConditionType::ResolvedRefs);
        assert_eq!((ok, got), (false, reason), "{name}");
        assert!(message.contains(says), "{name}: {message}");
        let (ok, got, _) = cond(&run, name, ConditionType::Accepted);
        assert_eq!((ok, got), (false, Reason::NoValidCACertificate), "{name}");
        assert!(!cond(&run, name, ConditionType::Programmed).0, "{name}");
        assert_eq!(tls_of(&run, port), None, "{name} is never served open");
    }
    // One usable CA of two: reported, and served with the usable one.
    let (ok, reason, message) = cond(&run, "partial", ConditionType::ResolvedRefs);
    assert_eq!((ok, reason), (false, Reason::InvalidCACertificateRef));
    assert!(message.contains("infra/nope"), "{message}");
    assert!(cond(&run, "partial", ConditionType::Accepted).0);
    assert_eq!(
        tls_of(&run, 11443),
        Some(vec![validated(None, &["infra/cert"], &["infra/ca"], false)])
    );
    assert_eq!(
        gateway_condition(&run, ConditionType::InsecureFrontendValidationMode),
        None
    );

    // The missing ConfigMap appears: both listeners that named it validate with it.
    run.apply(vec![Change::Apply(ca_config_map(
        "infra", "nope", "CA-3\n", None,
    ))]);
    assert!(cond(&run, "missing", ConditionType::Accepted).0);
    assert_eq!(
        tls_of(&run, 443),
        Some(vec![validated(
            None,
            &["infra/cert"],
            &["infra/nope"],
            false
        )])
    );
    assert_eq!(
        tls_of(&run, 11443),
        Some(vec![validated(
            None,
            &["infra/cert"],
            &["infra/ca", "infra/nope"],
            false
        )])
    );
    // A grant for ConfigMaps admits the shared one.
    run.apply(vec![Change::Apply(config_map_grant(
        "certs", "cm", "infra", None,
    ))]);
    assert!(cond(&run, "grant", ConditionType::ResolvedRefs).0);
    assert_eq!(
        tls_of(&run, 9443),
        Some(vec![validated(
            None,
            &["infra/cert"],
            &["certs/shared"],
            false
        )])
    );
    // Deleted again: the listener stops being served rather than serve unvalidated.
    run.apply(vec![Change::Delete(ObjectId {
        kind: Kind::ConfigMap,
        key: ObjectKey::new("certs", "shared"),
    })]);
    assert_eq!(
        cond(&run, "grant", ConditionType::Accepted).1,
        Reason::NoValidCACertificate
    );
    assert_eq!(tls_of(&run, 9443), None);
    assert!(
        !served_secrets(&run)
            .iter()
            .any(|(name, _)| name.contains("certs/shared"))
    );
}

#[test]
fn rotating_a_ca_bundle_changes_only_its_bundle_secret() {
    let mut objects = world(
        vec![https_listener("https", 443, Some("a.example"), &["cert"])],
        vec![
            tls_secret("infra", "cert", "PEM-1", None),
            ca_config_map("infra", "ca", "CA-1\n", None),
        ],
    );
    with_frontend(
        &mut objects,
        vec![frontend_validation(None, &["ca"], false)],
    );
    let mut p = Pipeline::new(PipelineConfig::default()).expect("pipeline");
    p.apply(objects.into_iter().map(Change::Apply).collect::<Vec<_>>())
        .expect("apply");
    let delta = p
        .apply(vec![Change::Apply(ca_config_map(
            "infra", "ca", "CA-2\n", None,
        ))])
        .expect("apply");
    assert!(delta.status.is_empty(), "{:#?}", delta.status);
    let touched: Vec<(String, String, isize)> = delta
        .xds
        .iter()
        .map(|(o, d)| match o {
            XdsOutput::Secret { secret, .. } => (secret.name.clone(), pem(secret), *d),
            other => panic!("a CA rotation touched {other:?}"),
        })
        .collect();
    assert_eq!(
        touched,
        vec![
            ("configmap:infra/ca".into(), "CA-1\n".into(), -1),
            ("configmap:infra/ca".into(), "CA-2\n".into(), 1)
        ]
    );
}
