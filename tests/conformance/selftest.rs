//! A check of the harness without sluice: echo backends and EndpointSlices from the
//! base manifests, the ADS bootstrap validated by Envoy, and a static Envoy config that
//! routes, mirrors and redirects, driven through the same request checks as the cases.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::cases::{Case, GatewayKey, RequestCase};
use crate::echo::ServicePort;
use crate::processes::Ads;
use crate::{Running, distribution, flows, manifests, processes, requests};

/// Runs the self-test; `true` if anything failed.
pub async fn run(cases_dir: &Path) -> bool {
    let mut failed = 0;
    let mut report = |name: &str, result: Result<(), String>| match result {
        Ok(()) => println!("PASS selftest {name}"),
        Err(e) => {
            println!("FAIL selftest {name}: {e}");
            failed += 1;
        }
    };
    let dir = crate::case_dir("selftest");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::create_dir_all(&dir);
    let case = Case::empty("selftest", cases_dir);
    let mut docs = match manifests::load(cases_dir, &case) {
        Ok(docs) => docs,
        Err(e) => {
            report("manifests", Err(format!("{e:#}")));
            return true;
        }
    };
    let mut running = Running::default();
    report(
        "backends",
        crate::start_backends(&mut running, &mut docs).await,
    );
    report("endpointslices", check_slices(&docs, &running));
    let _ = manifests::write(&dir.join("manifests"), &docs);
    let envoy = match tokio::task::block_in_place(|| processes::envoy_binary(&crate::workspace())) {
        Ok(envoy) => envoy,
        Err(e) => {
            report("envoy install", Err(format!("{e:#}")));
            return true;
        }
    };
    for ads in [Ads::Sotw, Ads::Delta] {
        report(
            &format!("{ads} ads bootstrap validates"),
            validate_bootstrap(&envoy, &dir, ads),
        );
    }
    let port = match processes::free_port() {
        Ok(port) => port,
        Err(e) => {
            report("free port", Err(e.to_string()));
            return true;
        }
    };
    let config = static_config(&running, port);
    let started =
        tokio::task::block_in_place(|| processes::start_envoy(&envoy, &dir, "static", &config));
    let admin = match started {
        Ok(envoy) => {
            let admin = envoy.admin;
            running.envoys.insert(
                GatewayKey {
                    namespace: "selftest".into(),
                    name: "static".into(),
                },
                envoy,
            );
            admin
        }
        Err(e) => {
            report("envoy start", Err(format!("{e:#}")));
            return true;
        }
    };
    report("envoy live", crate::wait_live(admin).await);
    let target = requests::Target {
        socket: SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), port)),
        spec_port: 80,
    };
    for (name, rc, should_pass) in request_cases() {
        let result = requests::run(&rc, &target, &|ns, n| running.backend(ns, n)).await;
        let result = match (result, should_pass) {
            (Ok(()), true) => Ok(()),
            (Err(e), false) => {
                println!("  (expected failure: {e})");
                Ok(())
            }
            (Ok(()), false) => Err("passed but should have failed".into()),
            (Err(e), true) => Err(e),
        };
        report(name, result);
    }
    report(
        "h2c reaches the backend as HTTP/2",
        h2c_upstream(&target).await,
    );
    report(
        "traffic to unreferenced ports is caught",
        wrong_ports_caught(&docs, &running),
    );
    for (name, result) in offline_checks() {
        report(name, result);
    }
    println!("selftest: {failed} failed");
    failed > 0
}

fn check_slices(docs: &[Value], running: &Running) -> Result<(), String> {
    let backend = running
        .backend("gateway-conformance-infra", "infra-backend-v1")
        .ok_or("no infra-backend-v1")?;
    let slice = docs
        .iter()
        .find(|d| {
            manifests::kind(d) == "EndpointSlice"
                && d.pointer("/metadata/labels/kubernetes.io~1service-name")
                    == Some(&json!("infra-backend-v1"))
        })
        .ok_or("no EndpointSlice for infra-backend-v1")?;
    let ports: Vec<(String, u64)> = slice["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                manifests::str_at(p, "/name").to_string(),
                p["port"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = [
        ("first-port", 8080),
        ("second-port", 8081),
        ("third-port", 8082),
    ]
    .iter()
    .map(|(n, p)| {
        let port = backend
            .port(&infra_port("infra-backend-v1", *p))
            .unwrap_or(0);
        (n.to_string(), u64::from(port))
    })
    .collect();
    if ports != want {
        return Err(format!("ports {ports:?}, expected {want:?}"));
    }
    let distinct: std::collections::BTreeSet<u64> = ports.iter().map(|(_, p)| *p).collect();
    if distinct.len() != 3 || distinct.contains(&0) {
        return Err(format!("Service ports share an echo listener: {ports:?}"));
    }
    if slice["endpoints"] != json!([{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}]) {
        return Err(format!("endpoints {}", slice["endpoints"]));
    }
    Ok(())
}

fn validate_bootstrap(envoy: &Path, dir: &Path, ads: Ads) -> Result<(), String> {
    let key = GatewayKey {
        namespace: "gateway-conformance-infra".into(),
        name: "same-namespace".into(),
    };
    let path = dir.join(format!("ads-bootstrap-{ads}.json"));
    let text = serde_json::to_vec_pretty(&processes::bootstrap(&key, "selftest", 18000, ads))
        .map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    let output = Command::new(envoy)
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(&path)
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr)
            .lines()
            .last()
            .unwrap_or_default()
            .to_string())
    }
}

fn cluster(name: &str, port: u16, h2: bool) -> Value {
    let mut cluster = json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
            "socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
    });
    if h2 {
        cluster["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        });
    }
    cluster
}

fn static_config(running: &Running, port: u16) -> Value {
    let echo_port = |name: &str, port: u16| {
        running
            .backend("gateway-conformance-infra", name)
            .and_then(|b| b.port(&infra_port(name, port)))
            .unwrap_or(0)
    };
    let routes = json!([
        {"match": {"prefix": "/redirect"}, "redirect": {"host_redirect": "example.org", "response_code": "FOUND"}},
        {"match": {"prefix": "/h2c"}, "route": {"cluster": "h2c"}},
        {"match": {"prefix": "/mirror"}, "route": {"cluster": "v1", "request_mirror_policies": [{"cluster": "v2"}]}},
        {"match": {"prefix": "/"}, "route": {"cluster": "v1"}},
    ]);
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": "http",
                "address": {"socket_address": {"address": "127.0.0.2", "port_value": port}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "http",
                        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]},
                        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                    },
                }]}],
            }],
            "clusters": [
                cluster("v1", echo_port("infra-backend-v1", 8080), false),
                cluster("v2", echo_port("infra-backend-v2", 8080), false),
                cluster("h2c", echo_port("infra-backend-v1", 8081), true),
            ],
        },
    })
}

fn request_case(path: &str, extra: Value) -> RequestCase {
    let mut rc = json!({
        "name": path,
        "gateway": {"namespace": "selftest", "name": "static", "listener": null},
        "scheme": "http",
        "request": {"host": "", "method": "GET", "path": path, "headers": {}},
        "expected_request": null,
        "response": {"status": 200, "status_codes": [200], "headers": {}, "absent_headers": []},
        "redirect": null,
        "backend": "infra-backend-v1",
        "namespace": "gateway-conformance-infra",
        "helper": "http.MakeRequestAndExpectEventuallyConsistentResponse",
    });
    if let (Some(rc), Some(extra)) = (rc.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            rc.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(rc).expect("a well-formed self-test request")
}

fn request_cases() -> Vec<(&'static str, RequestCase, bool)> {
    vec![
        (
            "echo and headers",
            request_case(
                "/echo?x=1",
                json!({
                    "request": {"host": "example.com", "method": "GET", "path": "/echo?x=1", "headers": {"X-Test": "a"}},
                    "backend_set_response_headers": {"X-Resp": "r"},
                    "response": {"status_codes": [200], "headers": {"X-Resp": "r"}, "absent_headers": ["X-Absent"]},
                }),
            ),
            true,
        ),
        (
            "h2c to Envoy and upstream",
            request_case(
                "/h2c",
                json!({
                    "request": {"host": "", "method": "GET", "path": "/h2c", "headers": {}, "protocol": "H2C_PRIOR_KNOWLEDGE"},
                }),
            ),
            true,
        ),
        (
            "mirror log",
            request_case(
                "/mirror",
                json!({
                    "mirrored_to": [{"name": "infra-backend-v2", "namespace": "gateway-conformance-infra", "percent": null}],
                    "request_id_query_param": "gateway-api-conformance-request-id",
                }),
            ),
            true,
        ),
        (
            "redirect",
            request_case(
                "/redirect",
                json!({
                    "response": {"status_codes": [302], "headers": {}, "absent_headers": []},
                    "redirect": {"scheme": null, "host": "example.org", "port": null, "path": null},
                    "backend": "",
                }),
            ),
            true,
        ),
        (
            "wrong backend is caught",
            request_case("/", json!({"backend": "infra-backend-v2"})),
            false,
        ),
        (
            "missing mirror is caught",
            request_case(
                "/",
                json!({
                    "mirrored_to": [{"name": "infra-backend-v2", "namespace": "gateway-conformance-infra", "percent": null}],
                    "request_id_query_param": "gateway-api-conformance-request-id",
                }),
            ),
            false,
        ),
    ]
}

/// The `/h2c` route's cluster speaks prior-knowledge h2c to the echo backend.
async fn h2c_upstream(target: &requests::Target) -> Result<(), String> {
    let out = requests::Outgoing {
        method: "GET",
        host: "example.com",
        path: "/h2c",
        headers: vec![],
        h2c: false,
        tls: None,
    };
    let got = requests::send(target.socket, &out)
        .await
        .map_err(|e| format!("{e:#}"))?;
    match got.echo["proto"].as_str() {
        Some("HTTP/2.0") => Ok(()),
        other => Err(format!("echoed proto {other:?}")),
    }
}

fn infra_port(service: &str, port: u16) -> ServicePort {
    ServicePort {
        namespace: "gateway-conformance-infra".into(),
        service: service.into(),
        port,
    }
}

/// The requests above went to infra-backend-v1 ports 8080 and 8081 and v2 port 8080:
/// with no route in the base manifests they are all "wrong"; with a route referencing
/// exactly those ports, none is.
fn wrong_ports_caught(docs: &[Value], running: &Running) -> Result<(), String> {
    let err = crate::wrong_ports(docs, running)
        .err()
        .ok_or("traffic with no HTTPRoute referencing any port was not flagged")?;
    if !err.contains("Service gateway-conformance-infra/infra-backend-v1 port 8080") {
        return Err(format!("the message does not name the port: {err}"));
    }
    let route = json!({
        "kind": "HTTPRoute",
        "metadata": {"namespace": "gateway-conformance-infra", "name": "r"},
        "spec": {"rules": [
            {"backendRefs": [{"name": "infra-backend-v1", "port": 8080},
                             {"name": "infra-backend-v1", "port": 8081}],
             "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef":
                 {"name": "infra-backend-v2", "port": 8080}}}]},
        ]},
    });
    let mut with_route = docs.to_vec();
    with_route.push(route);
    crate::wrong_ports(&with_route, running).map_err(|e| format!("with the route: {e}"))
}

/// Checks of the verdicts and the case plan that need no process: each shows that a
/// wrong input is rejected and a right one accepted.
fn offline_checks() -> Vec<(&'static str, Result<(), String>)> {
    vec![
        ("weighted verdict", weighted_verdicts()),
        ("mirror verdict", mirror_verdicts()),
        ("Backend header flow", backend_header_verdicts()),
        ("case plan rejects what it cannot run", plan_rejections()),
    ]
}

fn weighted_verdicts() -> Result<(), String> {
    let spec: crate::cases::WeightedDistribution = serde_json::from_value(json!({
        "sanity_request_index": 0, "total_requests": 500, "concurrency": 10,
        "tolerance": 0.05, "max_attempts": 10,
        "expected_weights": {"v1": 0.7, "v2": 0.3, "v3": 0.0},
    }))
    .map_err(|e| e.to_string())?;
    let counts = |a: usize, b: usize| {
        [("v1".to_string(), a), ("v2".to_string(), b)]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect()
    };
    let verdict = |a, b| distribution::weighted_verdict(&counts(a, b), &spec, a + b);
    expect(verdict(3500, 1500).is_ok(), "70/30 over 5,000 passes")?;
    expect(verdict(3150, 1850).is_err(), "63/37 over 5,000 fails")?;
    expect(verdict(5000, 0).is_err(), "one active backend of two fails")?;
    let mut stray = counts(3500, 1490);
    stray.insert("v4".into(), 10);
    expect(
        distribution::weighted_verdict(&stray, &spec, 5000).is_err(),
        "an unexpected backend fails",
    )
}

fn mirror_verdicts() -> Result<(), String> {
    expect(
        distribution::mirror_verdict(1000, 5000, 20.0).is_ok(),
        "20% of 5,000 passes 20%",
    )?;
    expect(
        // 1750 ± 151.8: 1901 is inside the band, 1902 outside.
        distribution::mirror_verdict(1901, 5000, 35.0).is_ok()
            && distribution::mirror_verdict(1902, 5000, 35.0).is_err(),
        "the band at 35% of 5,000 is 4.5 standard deviations",
    )?;
    expect(
        distribution::mirror_verdict(1250, 5000, 20.0).is_err(),
        "25% of 5,000 fails 20%",
    )?;
    expect(
        distribution::mirror_verdict(0, 5000, 20.0).is_err(),
        "no mirroring fails 20%",
    )
}

fn backend_header_verdicts() -> Result<(), String> {
    let echo = |backends: Value, pod: &str| json!({"headers": {"Backend": backends}, "pod": pod});
    let check = flows::backend_header_matches_pod;
    expect(
        check(&echo(
            json!(["infra-backend-v1"]),
            "infra-backend-v1-abc-def",
        ))
        .is_ok(),
        "matching pod passes",
    )?;
    expect(
        check(&echo(
            json!(["infra-backend-v2"]),
            "infra-backend-v1-abc-def",
        ))
        .is_err(),
        "other pod fails",
    )?;
    expect(
        check(&echo(json!(["a", "b"]), "a-b-c")).is_err(),
        "two Backend headers fail",
    )?;
    expect(
        check(&json!({"pod": "a-b-c"})).is_err(),
        "no Backend header fails",
    )
}

fn plan_rejections() -> Result<(), String> {
    let base = json!({
        "name": "HTTPRouteX", "manifests": [],
        "requests": [request_json("/")],
    });
    let case = |patch: Value| -> Result<Case, String> {
        let mut c = base.clone();
        for (k, v) in patch.as_object().into_iter().flatten() {
            c[k] = v.clone();
        }
        serde_json::from_value(c).map_err(|e| e.to_string())
    };
    expect(
        crate::cases::plan(&case(json!({}))?).is_ok(),
        "a plain case runs",
    )?;
    let weighted = json!({"type": "weighted_distribution", "sanity_request_index": 1,
        "expected_weights": {}, "total_requests": 1, "concurrency": 1, "tolerance": 0.1, "max_attempts": 1});
    expect(
        crate::cases::plan(&case(json!({"custom": weighted}))?).is_err(),
        "out-of-range sanity index",
    )?;
    expect(
        crate::cases::plan(&case(json!({"custom": {"type": "new_thing"}}))?).is_err(),
        "unknown custom type",
    )?;
    let mut custom_flow = request_json("/");
    custom_flow["helper"] = json!("http.MakeRequest");
    custom_flow["custom_flow"] = json!(true);
    expect(
        crate::cases::plan(&case(json!({"requests": [custom_flow]}))?).is_err(),
        "custom flow without an implementation",
    )?;
    // gRPC round trips are not driven yet (HTTPS ones are).
    let mut grpc = request_json("/");
    grpc["helper"] = json!("grpc.MakeRequestAndExpectEventuallyConsistentResponse");
    expect(
        crate::cases::plan(&case(json!({"requests": [grpc]}))?).is_err(),
        "unknown helper",
    )
}

fn request_json(path: &str) -> Value {
    json!({
        "name": path,
        "helper": "http.MakeRequestAndExpectEventuallyConsistentResponse",
        "gateway": {"namespace": "n", "name": "g", "listener": null},
        "scheme": "http",
        "request": {"path": path},
        "response": {"status_codes": [200]},
    })
}

fn expect(holds: bool, what: &str) -> Result<(), String> {
    if holds {
        Ok(())
    } else {
        Err(format!("not so: {what}"))
    }
}
