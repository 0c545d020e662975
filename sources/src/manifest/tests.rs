//! Manifest reading: documents are found with their lines, unknown kinds and bad
//! objects become one warning each without losing the rest, and a syntax error
//! is an error that points at the right line.

use sluice_pipeline::model::{Filter, Kind, Object, ObjectKey};

use super::split::documents;
use super::{Warning, parse_manifests};
use crate::Error;

const SERVICE: &str =
    "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\nspec: {ports: [{port: 80}]}\n";

fn ids(objects: &[Object]) -> Vec<(Kind, ObjectKey)> {
    objects.iter().map(|o| (o.id().kind, o.id().key)).collect()
}

#[test]
fn split_finds_document_lines() {
    let text = "# leading comment\n---\na: 1\n---\n\n# c\nb: 2\n--- {c: 3}\n";
    let docs: Vec<_> = documents(text)
        .iter()
        .map(|d| (d.first_line, d.start_line))
        .collect();
    assert_eq!(docs, vec![(1, 3), (4, 7), (8, 8)]);
    // A directive stays with the document it belongs to.
    assert_eq!(documents("%YAML 1.2\n---\na: 1\n").len(), 1);
}

#[test]
fn unknown_kinds_warn_once_each() {
    let text = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: infra}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TLSRoute\nmetadata: {{name: t}}\n---\n\
         apiVersion: v1\nkind: Sevrice\nmetadata: {{name: typo}}\n---\nmetadata: {{name: nokind}}\n---\n\
         ---\n# only a comment\n---\n{SERVICE}"
    );
    let parsed = parse_manifests(&text, "f.yaml").expect("parses");
    assert_eq!(
        ids(&parsed.objects),
        vec![(Kind::Service, ObjectKey::new("default", "svc"))]
    );
    let warnings: Vec<String> = parsed.warnings.iter().map(Warning::to_string).collect();
    assert_eq!(
        warnings,
        vec![
            "f.yaml:1: skipped Deployment infra/web: apiVersion \"apps/v1\" kind \"Deployment\" is not read by Sluice",
            "f.yaml:5: skipped TLSRoute default/t: apiVersion \"gateway.networking.k8s.io/v1alpha2\" kind \"TLSRoute\" is not read by Sluice",
            "f.yaml:9: skipped Sevrice default/typo: apiVersion \"v1\" kind \"Sevrice\" is not read by Sluice",
            "f.yaml:13: skipped document without kind default/nokind: apiVersion \"\" kind \"\" is not read by Sluice",
        ]
    );
}

#[test]
fn malformed_yaml_is_an_error_at_its_line() {
    let text =
        format!("{SERVICE}---\napiVersion: v1\nkind: Service\nmetadata: {{name: [unclosed\n");
    let error = parse_manifests(&text, "bad.yaml").expect_err("rejects");
    let Error::Yaml {
        origin,
        line,
        column,
        message,
    } = &error
    else {
        panic!("a YAML error: {error}")
    };
    assert_eq!((origin.as_str(), *line), ("bad.yaml", 9), "{error}");
    assert!(*column > 0 && !message.is_empty(), "{error}");
    assert!(error.to_string().starts_with("bad.yaml:9:"), "{error}");
    // Lines in the parser's own context are file lines too, not document lines.
    assert!(!message.contains(" at line 9 column"), "{error}");
    let error = parse_manifests(&format!("{SERVICE}---\n[a, b\n"), "f").expect_err("rejects");
    assert!(
        error
            .to_string()
            .contains("while parsing a flow sequence at line 6"),
        "{error}"
    );
}

#[test]
fn bad_object_warns_and_the_rest_loads() {
    let text = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: ns}}\n\
         spec: {{rules: [{{backendRefs: [{{name: svc, port: 99999}}]}}]}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\n\
         spec: {{gatewayClassName: c, listeners: [{{name: l, port: eighty, protocol: HTTP}}]}}\n---\n{SERVICE}"
    );
    let parsed = parse_manifests(&text, "f.yaml").expect("parses");
    assert_eq!(
        ids(&parsed.objects),
        vec![(Kind::Service, ObjectKey::new("default", "svc"))]
    );
    let [route, gateway] = &parsed.warnings[..] else {
        panic!("two warnings: {:?}", parsed.warnings)
    };
    assert_eq!(
        route.to_string(),
        "f.yaml:1: skipped HTTPRoute ns/r: spec.rules[0].backendRefs[0].port: 99999 is not a port number (1-65535)"
    );
    assert_eq!(gateway.line, 6);
    assert!(
        gateway.message.starts_with("skipped Gateway default/gw: "),
        "{gateway}"
    );
}

#[test]
fn lists_expand_and_versions_dispatch() {
    let text = "apiVersion: v1\nkind: List\nitems:\n\
        - {apiVersion: v1, kind: Namespace, metadata: {name: infra}}\n\
        - {apiVersion: gateway.networking.k8s.io/v1beta1, kind: GatewayClass, metadata: {name: c}, spec: {controllerName: x/y}}\n\
        - {apiVersion: gateway.networking.k8s.io/v1beta1, kind: ReferenceGrant, metadata: {name: g, namespace: b},\n\
        \x20  spec: {from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: a}], to: [{group: '', kind: Service}]}}\n";
    let parsed = parse_manifests(text, "list.yaml").expect("parses");
    assert_eq!(parsed.warnings, vec![]);
    assert_eq!(
        ids(&parsed.objects),
        vec![
            (Kind::Namespace, ObjectKey::cluster("infra")),
            (Kind::GatewayClass, ObjectKey::cluster("c")),
            (Kind::ReferenceGrant, ObjectKey::new("b", "g")),
        ]
    );
}

#[test]
fn filter_types_outside_the_enum_are_unsupported() {
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  rules:\n\
        \x20 - filters: [{type: ExternalAuth, externalAuth: {protocol: HTTP}}, {type: RequestHeaderModifier, requestHeaderModifier: {remove: [x]}}]\n\
        \x20   backendRefs: [{name: svc, port: 80, filters: [{type: Frobnicate}]}]\n";
    let parsed = parse_manifests(text, "f.yaml").expect("parses");
    assert_eq!(parsed.warnings, vec![]);
    let [Object::HttpRoute(route)] = &parsed.objects[..] else {
        panic!("one route")
    };
    let rule = &route.rules[0];
    assert_eq!(rule.filters[0], Filter::Unsupported("ExternalAuth".into()));
    assert!(matches!(rule.filters[1], Filter::RequestHeaders(_)));
    assert_eq!(
        rule.backends[0].filters,
        vec![Filter::Unsupported("Frobnicate".into())]
    );
}

#[test]
fn load_paths_walks_directories_in_order() {
    let dir = std::env::temp_dir().join(format!("sluice-sources-load-{}", std::process::id()));
    let write = |path: &str, text: &str| {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    let svc = |name: &str| SERVICE.replace("name: svc", &format!("name: {name}"));
    write("b.yml", &svc("b"));
    write("a/z.yaml", &svc("az"));
    write("notes.txt", "not: yaml: at all");
    write("c.yaml", "");
    let parsed = super::load_paths(std::slice::from_ref(&dir)).expect("loads");
    let names: Vec<String> = parsed.objects.iter().map(|o| o.id().key.name).collect();
    assert_eq!(names, vec!["az", "b"]);
    let missing = super::load_paths(&[dir.join("missing.yaml")]).expect_err("missing file");
    assert!(matches!(missing, Error::Io { .. }), "{missing}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn raw_objects_keep_every_kind_as_written_with_the_api_servers_namespace() {
    let text = "apiVersion: v1\nkind: List\nitems:\n\
        - {apiVersion: v1, kind: Namespace, metadata: {name: infra, namespace: ignored}}\n\
        - {apiVersion: apps/v1, kind: Deployment, metadata: {name: web}, spec: {replicas: 2}}\n\
        ---\napiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: infra}\n\
        ---\nmetadata: {name: nokind}\n";
    let (objects, warnings) = super::raw_objects(text, "f.yaml").expect("parses");
    let ids: Vec<(&str, &str, &str, &str)> = objects
        .iter()
        .map(|o| {
            (
                o.api_version.as_str(),
                o.kind.as_str(),
                o.namespace.as_str(),
                o.name.as_str(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            ("v1", "Namespace", "", "infra"),
            ("apps/v1", "Deployment", "default", "web"),
            ("v1", "Service", "infra", "svc"),
        ]
    );
    let deployment: serde_json::Value = serde_json::from_slice(&objects[1].json).expect("JSON");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let [warning] = &warnings[..] else {
        panic!("one warning: {warnings:?}")
    };
    assert_eq!(warning.line, 11, "{warning}");
    assert!(
        warning.message.contains("no kind or no metadata.name"),
        "{warning}"
    );
}

/// Issue 8 (9): a status Sluice does not read — here without the
/// `lastTransitionTime` the typed object requires — does not lose the object.
#[test]
fn a_status_without_transition_times_is_ignored() {
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
        metadata: {name: gw, namespace: ns}\n\
        spec: {gatewayClassName: sluice, listeners: [{name: http, port: 80, protocol: HTTP}]}\n\
        status: {conditions: [{type: Accepted, status: 'True', reason: Accepted, message: ''}]}\n";
    let parsed = parse_manifests(text, "gw.yaml").expect("parses");
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    assert_eq!(
        ids(&parsed.objects),
        vec![(Kind::Gateway, ObjectKey::new("ns", "gw"))]
    );
}
