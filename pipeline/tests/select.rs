//! Namespace selection (`allowedRoutes.namespaces.from: Selector`) against
//! hand-written expectations: each Kubernetes label-selector operator (`In`,
//! `NotIn`, `Exists`, `DoesNotExist`), `matchLabels`, the empty selector, and a
//! relabelled namespace flipping its routes in and out. Expectations follow the
//! Kubernetes label-selector rules (a missing key satisfies `NotIn` and
//! `DoesNotExist`; the empty selector selects every namespace).

mod support;

use sluice_pipeline::fixtures::*;
use sluice_pipeline::model::*;
use support::Run;

/// Namespaces with their labels; a route `r` in each, attached to `infra/gw`.
const NAMESPACES: [(&str, &[(&str, &str)]); 4] = [
    ("prod-x", &[("env", "prod"), ("team", "x")]),
    ("dev-y", &[("env", "dev"), ("team", "y")]),
    ("qa", &[("env", "qa")]),
    ("bare", &[]),
];

fn req(key: &str, op: SelectorOp, values: &[&str]) -> Requirement {
    Requirement {
        key: key.into(),
        op,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

fn objects(requirements: Vec<Requirement>) -> Vec<Object> {
    let mut l = http_listener("http", 80);
    l.allowed_namespaces = FromNamespaces::Selector(LabelSelector { requirements });
    let mut objs = vec![
        class(),
        namespace("infra", &[]),
        Object::Gateway(gateway("infra", "gw", vec![l])),
    ];
    for (ns, labels) in NAMESPACES {
        objs.push(namespace(ns, labels));
        let mut p = parent("gw");
        p.namespace = Some("infra".into());
        let r = route(ns, "r", vec![p], &[], vec![prefix_rule("/", vec![])]);
        objs.push(Object::HttpRoute(r));
    }
    objs
}

/// The namespaces whose route is accepted, checking each other route is refused
/// with `NotAllowedByListeners`, and the listener's `attachedRoutes`.
fn selected(run: &Run) -> Vec<&'static str> {
    let mut out = vec![];
    for (ns, _) in NAMESPACES {
        let c = run.route_conds(ns, "r", 0);
        let accepted = c.iter().find(|(t, ..)| t == "Accepted").expect("Accepted");
        if accepted.1 {
            assert_eq!(accepted.2, "Accepted");
            out.push(ns);
        } else {
            assert_eq!(accepted.2, "NotAllowedByListeners", "{ns}");
        }
    }
    let attached = run.attached("infra", "gw");
    assert_eq!(attached, vec![("http".to_string(), out.len() as u32)]);
    out
}

fn check(requirements: Vec<Requirement>, expected: &[&str]) {
    let run = Run::new(objects(requirements.clone()));
    assert_eq!(selected(&run), expected, "selector {requirements:?}");
}

#[test]
fn match_labels_is_in_with_one_value() {
    check(vec![req("env", SelectorOp::In, &["prod"])], &["prod-x"]);
}

#[test]
fn in_with_several_values() {
    check(
        vec![req("env", SelectorOp::In, &["prod", "qa"])],
        &["prod-x", "qa"],
    );
}

#[test]
fn not_in_selects_missing_keys_too() {
    check(
        vec![req("env", SelectorOp::NotIn, &["dev"])],
        &["prod-x", "qa", "bare"],
    );
}

#[test]
fn exists() {
    check(
        vec![req("team", SelectorOp::Exists, &[])],
        &["prod-x", "dev-y"],
    );
}

#[test]
fn does_not_exist() {
    check(
        vec![req("team", SelectorOp::DoesNotExist, &[])],
        &["qa", "bare"],
    );
}

#[test]
fn empty_selector_selects_every_namespace() {
    check(vec![], &["prod-x", "dev-y", "qa", "bare"]);
}

#[test]
fn requirements_are_anded() {
    check(
        vec![
            req("team", SelectorOp::Exists, &[]),
            req("env", SelectorOp::NotIn, &["dev"]),
        ],
        &["prod-x"],
    );
    check(
        vec![
            req("env", SelectorOp::In, &["prod", "dev"]),
            req("team", SelectorOp::In, &["y"]),
        ],
        &["dev-y"],
    );
    check(
        vec![
            req("env", SelectorOp::DoesNotExist, &[]),
            req("team", SelectorOp::DoesNotExist, &[]),
        ],
        &["bare"],
    );
}

#[test]
fn metadata_name_label_selects_by_name() {
    check(
        vec![req(
            "kubernetes.io/metadata.name",
            SelectorOp::In,
            &["bare"],
        )],
        &["bare"],
    );
}

/// Relabelling a namespace flips its route in and out, in both directions.
#[test]
fn relabel_flips_attachment() {
    let mut run = Run::new(objects(vec![req("team", SelectorOp::DoesNotExist, &[])]));
    assert_eq!(selected(&run), ["qa", "bare"]);
    run.apply(vec![Change::Apply(namespace("bare", &[("team", "z")]))]);
    assert_eq!(selected(&run), ["qa"]);
    run.apply(vec![Change::Apply(namespace("dev-y", &[("env", "dev")]))]);
    assert_eq!(selected(&run), ["dev-y", "qa"]);
    // Without its Namespace object a route's namespace has no labels to select.
    run.apply(vec![Change::Delete(namespace("qa", &[]).id())]);
    assert_eq!(selected(&run), ["dev-y"]);
}
