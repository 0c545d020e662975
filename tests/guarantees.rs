//! What Sluice guarantees, where a real Envoy's verdict is the point (issue 8):
//! another tenant's route with a value Envoy would reject (an invalid regex, a
//! `Host` header modifier) loses only its own rules, reported in its status, and
//! Envoy rejects nothing (finding 1); paths are normalised before routes match them
//! (finding 8); a listener whose port plus `--port-offset` is past 65535 is reported
//! and left out instead of making Envoy reject every listener of the Gateway
//! (finding 7); a rejection that still happens (NACK) is reported and never served
//! again, a proxy that starts later gets the last accepted configuration. A real
//! `sluice serve`, a real Envoy and a real backend on loopback.

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::Command;

use common::{demo_backend, envoy_stat, get, processes, read, s, scratch, wait_for};

/// App `echo` on `/echo` only, on a Gateway with a second listener at `high_port`.
fn manifests(backend: u16, high_port: u16) -> String {
    let app = common::echo_app("guard", "a", "a.example", backend);
    let app = app.replace(
        "listeners: [{name: http, port: 80, protocol: HTTP}]",
        &format!(
            "listeners: [{{name: http, port: 80, protocol: HTTP}}, {{name: high, port: {high_port}, protocol: HTTP}}]"
        ),
    );
    app.replace(
        "rules: [{backendRefs: [{name: echo, port: 80}]}]",
        "rules: [{matches: [{path: {type: PathPrefix, value: /echo}}], backendRefs: [{name: echo, port: 80}]}]",
    )
}

/// Tenant `bad`'s routes on the same Gateway and port: one whose only rule has a
/// regex RE2 rejects, one with a valid rule and a rule that sets `Host`.
const BAD_TENANT: &str = "---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: regex, namespace: guard}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [bad.example]
  rules: [{matches: [{path: {type: RegularExpression, value: '/(unclosed'}}], backendRefs: [{name: echo, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: partial, namespace: guard}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [partial.example]
  rules:
  - matches: [{path: {type: PathPrefix, value: /ok}}]
    backendRefs: [{name: echo, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /host}}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: Host, value: evil.example}]}}]
    backendRefs: [{name: echo, port: 80}]
";

/// Redirects to the scheme's default port (issue 13: the spec says `Location` SHOULD
/// NOT carry it): to https (443), and to http on the listener's own port 80.
const REDIRECTS: &str = "---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: redirects, namespace: guard}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [redirect.example]
  rules:
  - matches: [{path: {type: PathPrefix, value: /secure}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]
  - matches: [{path: {type: PathPrefix, value: /moved}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /here}}}]
";

/// The sum of every `update_rejected` counter of Envoy (LDS, CDS, RDS, EDS): the
/// configuration updates it refused.
fn envoy_rejections(admin: std::net::SocketAddr) -> u64 {
    let text = get(admin.port(), "admin", "/stats?filter=update_rejected");
    (text.lines())
        .filter_map(|l| l.split_once("update_rejected: "))
        .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
        .sum()
}

fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or_default()
}

#[test]
fn paths_are_normalised_and_an_unbindable_listener_harms_no_sibling() {
    let dir = scratch("guarantees");
    let envoy = processes::envoy_binary(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("envoy");
    let (_backend, backend) = demo_backend("echo-guard", &dir.join("backend.log"));
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).expect("conf");
    let xds = processes::free_port().expect("port");
    let offset = processes::free_port().expect("port") - 80;
    // 65000 + offset (an ephemeral port less 80, above 30000) is past 65535.
    assert!(65_000 + u32::from(offset) > 65_535);
    let text = format!("{}{BAD_TENANT}{REDIRECTS}", manifests(backend, 65_000));
    std::fs::write(conf.join("app.yaml"), text).expect("write");
    let status = dir.join("status.json");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.args(["serve", "--from", s(&conf), "--status-file", s(&status)]);
    command.args(["--xds", &format!("127.0.0.1:{xds}")]);
    command.args(["--listen-address", "127.0.0.1"]);
    command.args(["--port-offset", &offset.to_string()]);
    command.env("SLUICE_LOG", "info");
    let _sluice = processes::ChildGuard::spawn("sluice serve", command, &dir.join("serve.log"))
        .expect("start");
    let gateway = processes::GatewayKey {
        namespace: "guard".into(),
        name: "gw".into(),
    };
    let bootstrap = processes::bootstrap(&gateway, "guard", xds, processes::Ads::Delta);
    let envoy = processes::start_envoy(&envoy, &dir, "gw", &bootstrap).expect("envoy");
    let listen = 80 + offset;
    wait_for("Envoy to route a.example/echo", || {
        get(listen, "a.example", "/echo").starts_with("HTTP/1.1 200")
    });

    // Finding 1: the bad tenant's routes took nothing down; its valid rule serves,
    // the rules Envoy would reject are not served.
    let ok = get(listen, "partial.example", "/ok");
    assert!(ok.contains("echo-guard answered GET /ok"), "{ok}");
    let host = get(listen, "partial.example", "/host");
    assert_eq!(status_line(&host), "HTTP/1.1 404 Not Found", "{host}");
    let regex = get(listen, "bad.example", "/x");
    assert_eq!(status_line(&regex), "HTTP/1.1 404 Not Found", "{regex}");
    // Finding 7: the listener on port 80 serves; the one Envoy could not bind is
    // reported. Envoy rejected nothing at all.
    assert_eq!(envoy_rejections(envoy.admin), 0);
    assert_eq!(
        envoy_stat(envoy.admin, "listener_manager.lds.update_rejected"),
        0
    );
    wait_for("the status file", || {
        serde_json::from_str::<serde_json::Value>(&read(&status)).is_ok()
    });
    let doc: serde_json::Value = serde_json::from_str(&read(&status)).expect("json");
    let listeners = &doc["gateways"][0]["status"]["listeners"];
    let high = (listeners.as_array().expect("listeners").iter())
        .find(|l| l["name"] == "high")
        .expect("listener high");
    let condition = |l: &serde_json::Value, ty: &str| {
        let conditions = l["conditions"].as_array().cloned().unwrap_or_default();
        let c = conditions.into_iter().find(|c| c["type"] == ty).expect(ty);
        (
            c["status"].as_str().unwrap_or_default().to_owned(),
            c["reason"].as_str().unwrap_or_default().to_owned(),
        )
    };
    assert_eq!(
        condition(high, "Accepted"),
        ("False".into(), "PortUnavailable".into())
    );
    assert_eq!(condition(high, "Programmed").0, "False");
    let http = (listeners.as_array().expect("listeners").iter())
        .find(|l| l["name"] == "http")
        .expect("listener http");
    assert_eq!(
        condition(http, "Programmed"),
        ("True".into(), "Programmed".into())
    );
    let route_parent = |name: &str| {
        let routes = doc["httproutes"].as_array().cloned().unwrap_or_default();
        let route = routes.into_iter().find(|r| r["name"] == name).expect(name);
        route["status"]["parents"][0].clone()
    };
    let regex = route_parent("regex");
    assert_eq!(
        condition(&regex, "Accepted"),
        ("False".into(), "UnsupportedValue".into())
    );
    let partial = route_parent("partial");
    assert_eq!(
        condition(&partial, "Accepted"),
        ("True".into(), "Accepted".into())
    );
    assert_eq!(
        condition(&partial, "PartiallyInvalid"),
        ("True".into(), "UnsupportedValue".into())
    );

    // Issue 13: no default port in `Location` (the client's own request named none).
    let location = |path: &str| {
        let response = get(listen, "redirect.example", path);
        (response.lines())
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("location")
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no Location: {response}"))
    };
    assert_eq!(location("/secure/a"), "https://redirect.example/secure/a");
    assert_eq!(location("/moved"), "http://redirect.example/here");

    // Finding 8: the route matches the path the backend will act on.
    let dots = get(listen, "a.example", "/echo/../private");
    assert_eq!(status_line(&dots), "HTTP/1.1 404 Not Found", "{dots}");
    let inner = get(listen, "a.example", "/echo/a/../b");
    assert!(inner.contains("echo-guard answered GET /echo/b"), "{inner}");
    let slashes = get(listen, "a.example", "//echo//a");
    assert!(
        slashes.contains("echo-guard answered GET /echo/a"),
        "{slashes}"
    );
    let escaped = get(listen, "a.example", "/echo%2Fa");
    assert!(
        status_line(&escaped).starts_with("HTTP/1.1 307"),
        "{escaped}"
    );
    assert!(
        escaped.to_ascii_lowercase().contains("location: /echo/a"),
        "{escaped}"
    );
}

/// The Gateway's `Programmed` condition in the status file: (status, reason, message).
fn gateway_programmed(status: &Path) -> Option<(String, String, String)> {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(status).ok()?).ok()?;
    let conditions = doc["gateways"][0]["status"]["conditions"]
        .as_array()?
        .clone();
    let c = conditions.into_iter().find(|c| c["type"] == "Programmed")?;
    let text = |f: &str| c[f].as_str().unwrap_or_default().to_owned();
    Some((text("status"), text("reason"), text("message")))
}

/// NACK safety (issue 8): a configuration that slips past the validator (forced by the
/// test-only hook `SLUICE_TEST_REJECTED_HOSTNAME`) and that Envoy rejects is reported
/// in the Gateway's status, the running proxy keeps its last accepted configuration,
/// a proxy that starts afterwards gets that last accepted configuration (not the
/// rejected one: it rejects nothing and serves the other tenant), and fixing the input
/// clears the report.
#[test]
fn a_rejected_configuration_is_never_served_again() {
    let dir = scratch("guarantees-nack");
    let envoy_bin = processes::envoy_binary(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("envoy");
    let (_backend, backend) = demo_backend("echo-nack", &dir.join("backend.log"));
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).expect("conf");
    std::fs::write(
        conf.join("app.yaml"),
        common::echo_app("nack", "a", "a.example", backend),
    )
    .expect("write");
    let xds = processes::free_port().expect("port");
    let listen = processes::free_port().expect("port");
    let admin = processes::free_port().expect("port");
    let status = dir.join("status.json");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.args(["serve", "--from", s(&conf), "--status-file", s(&status)]);
    command.args(["--xds", &format!("127.0.0.1:{xds}")]);
    command.args(["--listen-address", "127.0.0.1"]);
    command.args(["--port-offset", &(listen - 80).to_string()]);
    command.args(["--admin", &format!("127.0.0.1:{admin}")]);
    command.env("SLUICE_LOG", "info");
    command.env(
        sluice_sinks::encode::route::TEST_REJECTED_HOSTNAME,
        "poison.example",
    );
    let _sluice = processes::ChildGuard::spawn("sluice serve", command, &dir.join("serve.log"))
        .expect("start");
    let gateway = processes::GatewayKey {
        namespace: "nack".into(),
        name: "gw".into(),
    };
    let first = processes::bootstrap(&gateway, "first", xds, processes::Ads::Delta);
    let envoy = processes::start_envoy(&envoy_bin, &dir, "first", &first).expect("envoy");
    wait_for("the first Envoy to route a.example", || {
        get(listen, "a.example", "/").starts_with("HTTP/1.1 200")
    });
    wait_for("Programmed=True", || {
        gateway_programmed(&status).is_some_and(|(s, _, _)| s == "True")
    });

    // Another tenant's route on the same port: its RouteConfiguration is rejected.
    let poison = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: poison, namespace: nack}
spec:
  parentRefs: [{name: gw}]
  hostnames: [poison.example]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
";
    std::fs::write(conf.join("poison.yaml"), poison).expect("write");
    wait_for("the first Envoy to reject the route table", || {
        envoy_rejections(envoy.admin) > 0
    });
    wait_for("the rejection in the Gateway's status", || {
        gateway_programmed(&status).is_some_and(|(s, r, m)| {
            s == "False" && r == "Invalid" && m.contains("RouteConfiguration nack/gw/80")
        })
    });
    let (_, _, message) = gateway_programmed(&status).expect("status");
    // Envoy's own error (RE2's, for the unclosed group).
    assert!(
        message.contains("missing ): /(unclosed"),
        "Envoy's error is in the message: {message}"
    );
    // The listener of the rejected port, and each route attached there, say so too.
    let doc: serde_json::Value = serde_json::from_str(&read(&status)).expect("json");
    let listener = &doc["gateways"][0]["status"]["listeners"][0];
    let programmed = (listener["conditions"].as_array().into_iter().flatten())
        .find(|c| c["type"] == "Programmed")
        .expect("listener Programmed");
    assert_eq!(programmed["status"], "False", "{listener}");
    for route in doc["httproutes"].as_array().expect("routes") {
        let conditions = &route["status"]["parents"][0]["conditions"];
        let marked = (conditions.as_array().into_iter().flatten())
            .any(|c| c["type"] == "sluice.dev/Programmed" && c["status"] == "False");
        assert!(marked, "{route}");
    }
    // And the metrics.
    let metrics = get(admin, "admin", "/metrics");
    for want in [
        "sluice_xds_rejected_resources{gateway=\"nack/gw\"} 1",
        "sluice_xds_responses_total{gateway=\"nack/gw\",event=\"nack\"}",
    ] {
        assert!(metrics.contains(want), "no {want} in:\n{metrics}");
    }
    // The running proxy keeps its last accepted configuration.
    let a = get(listen, "a.example", "/");
    assert!(a.contains("echo-nack answered GET /"), "{a}");

    // A proxy that starts now gets the last accepted configuration, and rejects nothing.
    drop(envoy);
    let second = processes::bootstrap(&gateway, "second", xds, processes::Ads::Sotw);
    let envoy = processes::start_envoy(&envoy_bin, &dir, "second", &second).expect("envoy");
    wait_for("the second Envoy to route a.example", || {
        get(listen, "a.example", "/").starts_with("HTTP/1.1 200")
    });
    assert_eq!(
        envoy_rejections(envoy.admin),
        0,
        "the second Envoy rejected something"
    );
    let poisoned = get(listen, "poison.example", "/");
    assert_eq!(
        status_line(&poisoned),
        "HTTP/1.1 404 Not Found",
        "{poisoned}"
    );

    // Fixed input: a new route table, accepted, and the report is gone.
    std::fs::remove_file(conf.join("poison.yaml")).expect("remove");
    wait_for("Programmed=True again", || {
        gateway_programmed(&status).is_some_and(|(s, r, _)| s == "True" && r == "Programmed")
    });
    let a = get(listen, "a.example", "/");
    assert!(a.contains("echo-nack answered GET /"), "{a}");
    assert_eq!(envoy_rejections(envoy.admin), 0);
    let doc: serde_json::Value = serde_json::from_str(&read(&status)).expect("json");
    assert!(
        !doc.to_string().contains("sluice.dev/Programmed"),
        "the routes' report is gone: {doc}"
    );
    let metrics = get(admin, "admin", "/metrics");
    assert!(
        !metrics.contains("sluice_xds_rejected_resources{"),
        "{metrics}"
    );
}
