//! HTTPS listeners and who may fetch their keys (issue 13), with a real `sluice
//! serve`, real Envoys and a real backend on loopback:
//! - xDS over TLS with client certificates (`--xds-client-ca`): an Envoy whose
//!   certificate names the Gateway (URI SAN `.../ns/NS/gateway/NAME`) is sent its
//!   Secret over SDS and terminates HTTPS for it; an Envoy with a valid certificate
//!   naming another Gateway is refused, and never gets a listener;
//! - without client authentication (and without `--insecure-serve-secrets`) no
//!   Secret is served: the Gateway's HTTP listener works, its HTTPS one completes no
//!   handshake;
//! - a certificate rotated while a client keeps connecting: the new certificate is
//!   served, and no handshake fails on the way.

#[allow(dead_code)]
mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{demo_backend, envoy_stat, get, processes, read, s, scratch, wait_for};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

const SITE: &str = "secure.example";

/// A certificate and its key, PEM.
struct Pem {
    cert: String,
    key: String,
}

fn ca() -> (Pem, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "sluice test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("ca");
    let pem = Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    };
    (pem, Issuer::new(params, key))
}

fn leaf(issuer: &Issuer<'_, KeyPair>, sans: Vec<SanType>) -> Pem {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.subject_alt_names = sans;
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, issuer).expect("leaf");
    Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn uri(u: &str) -> SanType {
    SanType::URI(u.try_into().expect("uri"))
}

fn write_pem(dir: &Path, name: &str, pem: &Pem) -> (String, String) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, &pem.cert).expect("write");
    std::fs::write(&key, &pem.key).expect("write");
    (s(&cert).to_owned(), s(&key).to_owned())
}

fn b64(text: &str) -> String {
    serde_json::to_value(k8s_openapi::ByteString(text.as_bytes().to_vec()))
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The echo app with a second, HTTPS listener for `SITE` using Secret `tls/site`.
fn manifests(backend: u16, site: &Pem) -> String {
    let app = common::echo_app("tls", "a", SITE, backend).replace(
        "listeners: [{name: http, port: 80, protocol: HTTP}]",
        "listeners: [{name: http, port: 80, protocol: HTTP}, {name: https, port: 443, protocol: HTTPS, hostname: secure.example, tls: {certificateRefs: [{name: site}]}}]",
    );
    format!(
        "{app}---
apiVersion: v1
kind: Secret
metadata: {{name: site, namespace: tls}}
type: kubernetes.io/tls
data: {{tls.crt: {}, tls.key: {}}}
",
        b64(&site.cert),
        b64(&site.key)
    )
}

/// `GET /` over HTTPS with SNI `SITE`, trusting only `site`: the response, or why not.
fn https_get(port: u16, site: &Pem) -> Result<String, String> {
    https_get_trusting(port, &[site]).map(|(text, _)| text)
}

/// `GET /` over HTTPS with SNI `SITE`, trusting `trusted`: the response and the
/// certificate the server presented (DER), or why not.
fn https_get_trusting(port: u16, trusted: &[&Pem]) -> Result<(String, Vec<u8>), String> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for site in trusted {
        let der = rustls_pki_types::CertificateDer::from_pem_slice(site.cert.as_bytes())
            .map_err(|e| e.to_string())?;
        roots.add(der).map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(SITE).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let request = format!("GET / HTTP/1.1\r\nhost: {SITE}\r\nconnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    tls.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let presented = (tls.conn.peer_certificates())
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_default();
    Ok((text, presented))
}

fn der_of(pem: &Pem) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject as _;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.cert.as_bytes())
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_default()
}

fn self_signed_site() -> Pem {
    let key = KeyPair::generate().expect("key");
    let params = CertificateParams::new(vec![SITE.to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("site");
    Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

#[test]
fn a_rotated_certificate_is_served_with_no_failed_handshake() {
    let dir = scratch("tls-rotation");
    let envoy = processes::envoy_binary(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("envoy");
    let (_backend, backend) = demo_backend("echo-rotation", &dir.join("backend.log"));
    let (old, new) = (self_signed_site(), self_signed_site());
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).expect("conf");
    std::fs::write(conf.join("app.yaml"), manifests(backend, &old)).expect("write");
    let xds = processes::free_port().expect("port");
    let offset = processes::free_port().expect("port") - 443;
    let https = 443 + offset;
    let _sluice = serve(
        &dir,
        &conf,
        xds,
        offset,
        &["--insecure-serve-secrets"],
        "serve.log",
    );
    let gateway = processes::GatewayKey {
        namespace: "tls".into(),
        name: "gw".into(),
    };
    let bootstrap = processes::bootstrap(&gateway, "rotation", xds, processes::Ads::Delta);
    let proxy = processes::start_envoy(&envoy, &dir, "rotation", &bootstrap).expect("envoy");
    let (old_der, new_der) = (der_of(&old), der_of(&new));
    wait_for("Envoy to serve the first certificate", || {
        https_get_trusting(https, &[&old])
            .is_ok_and(|(t, c)| t.starts_with("HTTP/1.1 200") && c == old_der)
    });
    let lds_before = envoy_stat(proxy.admin, "listener_manager.lds.update_success");
    // Rotate (write elsewhere, rename into place), connecting without pause.
    let staged = dir.join("app.yaml.new");
    std::fs::write(&staged, manifests(backend, &new)).expect("write");
    std::fs::rename(&staged, conf.join("app.yaml")).expect("rename");
    let started = std::time::Instant::now();
    let (mut handshakes, mut rotated) = (0, false);
    while started.elapsed() < Duration::from_secs(30) {
        match https_get_trusting(https, &[&old, &new]) {
            Ok((text, presented)) => {
                assert!(text.starts_with("HTTP/1.1 200"), "{text}");
                handshakes += 1;
                if presented == new_der {
                    rotated = true;
                    break;
                }
                assert_eq!(presented, old_der, "an unknown certificate");
            }
            Err(e) => panic!("handshake {handshakes} failed during the rotation: {e}"),
        }
    }
    assert!(
        rotated,
        "the new certificate was not served within 30 s ({handshakes} handshakes)"
    );
    // Only the Secret changed: Envoy received no new Listener.
    assert_eq!(
        envoy_stat(proxy.admin, "listener_manager.lds.update_success"),
        lds_before,
        "the rotation re-sent a Listener"
    );
    for _ in 0..20 {
        let (_, presented) = https_get_trusting(https, &[&old, &new]).expect("after the rotation");
        assert_eq!(presented, new_der, "the old certificate is back");
    }
    let _ = read(&dir.join("serve.log"));
}

/// Envoy's bootstrap for `gw`, its xDS connection over TLS with `client`.
fn tls_bootstrap(xds: u16, ca: &str, client: Option<(&str, &str)>) -> serde_json::Value {
    let gateway = processes::GatewayKey {
        namespace: "tls".into(),
        name: "gw".into(),
    };
    let mut bootstrap = processes::bootstrap(&gateway, "tls-envoy", xds, processes::Ads::Delta);
    let mut context = serde_json::json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "sni": "localhost",
        "common_tls_context": {
            "alpn_protocols": ["h2"],
            "validation_context": {"trusted_ca": {"filename": ca}},
        },
    });
    if let Some((cert, key)) = client {
        context["common_tls_context"]["tls_certificates"] = serde_json::json!([{
            "certificate_chain": {"filename": cert},
            "private_key": {"filename": key},
        }]);
    }
    bootstrap["static_resources"]["clusters"][0]["transport_socket"] = serde_json::json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": context,
    });
    bootstrap
}

fn serve(
    dir: &Path,
    conf: &Path,
    xds: u16,
    offset: u16,
    extra: &[&str],
    log: &str,
) -> processes::ChildGuard {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.args(["serve", "--from", s(conf)]);
    command.args(["--xds", &format!("127.0.0.1:{xds}")]);
    command.args(["--listen-address", "127.0.0.1"]);
    command.args(["--port-offset", &offset.to_string()]);
    command.args(extra);
    command.env("SLUICE_LOG", "info");
    processes::ChildGuard::spawn("sluice serve", command, &dir.join(log)).expect("start")
}

#[test]
fn keys_go_only_to_proxies_whose_certificate_names_their_gateway() {
    let dir = scratch("tls");
    let envoy = processes::envoy_binary(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("envoy");
    let (_backend, backend) = demo_backend("echo-tls", &dir.join("backend.log"));
    let (ca, issuer) = ca();
    let ca_path = dir.join("ca.crt");
    std::fs::write(&ca_path, &ca.cert).expect("write");
    let server = leaf(
        &issuer,
        vec![
            SanType::DnsName("localhost".try_into().expect("dns")),
            SanType::IpAddress([127, 0, 0, 1].into()),
        ],
    );
    let (server_cert, server_key) = write_pem(&dir, "xds", &server);
    let ours = leaf(&issuer, vec![uri("spiffe://sluice.test/ns/tls/gateway/gw")]);
    let theirs = leaf(
        &issuer,
        vec![uri("spiffe://sluice.test/ns/tls/gateway/other")],
    );
    let ours = write_pem(&dir, "ours", &ours);
    let theirs = write_pem(&dir, "theirs", &theirs);
    let site = self_signed_site();
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).expect("conf");
    std::fs::write(conf.join("app.yaml"), manifests(backend, &site)).expect("write");
    let xds = processes::free_port().expect("port");
    let offset = processes::free_port().expect("port") - 443;
    let (http, https) = (80 + offset, 443 + offset);

    // Authenticated: our Envoy terminates HTTPS with the Secret it was sent.
    let tls_args = [
        "--xds-tls-cert",
        server_cert.as_str(),
        "--xds-tls-key",
        server_key.as_str(),
        "--xds-client-ca",
        s(&ca_path),
    ];
    let sluice = serve(&dir, &conf, xds, offset, &tls_args, "serve-mtls.log");
    let ca_file = s(&ca_path).to_owned();
    let bootstrap = tls_bootstrap(xds, &ca_file, Some((&ours.0, &ours.1)));
    let ours_envoy = processes::start_envoy(&envoy, &dir, "ours", &bootstrap).expect("envoy");
    wait_for("Envoy to answer HTTPS for secure.example", || {
        https_get(https, &site).is_ok_and(|r| r.starts_with("HTTP/1.1 200"))
    });
    let answer = https_get(https, &site).expect("https");
    assert!(answer.contains("echo-tls answered GET /"), "{answer}");
    drop(ours_envoy);

    // Another Gateway's certificate asking for this one: refused, no listener.
    let bootstrap = tls_bootstrap(xds, &ca_file, Some((&theirs.0, &theirs.1)));
    let theirs_envoy = processes::start_envoy(&envoy, &dir, "theirs", &bootstrap).expect("envoy");
    wait_for("sluice to refuse the proxy", || {
        read(&dir.join("serve-mtls.log")).contains("refusing a proxy whose client certificate")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        envoy_stat(
            theirs_envoy.admin,
            "listener_manager.total_listeners_active"
        ),
        0
    );
    assert_eq!(
        envoy_stat(theirs_envoy.admin, "listener_manager.lds.update_success"),
        0
    );
    assert!(https_get(https, &site).is_err(), "nobody serves HTTPS now");
    drop(theirs_envoy);

    // No client certificate at all: the TLS handshake with sluice fails.
    let bootstrap = tls_bootstrap(xds, &ca_file, None);
    let anonymous = processes::start_envoy(&envoy, &dir, "anonymous", &bootstrap).expect("envoy");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        envoy_stat(anonymous.admin, "listener_manager.lds.update_success"),
        0
    );
    drop(anonymous);
    drop(sluice);

    // Without client authentication: plain xDS, listeners served, Secrets not.
    let sluice = serve(&dir, &conf, xds, offset, &[], "serve-plain.log");
    let gateway = processes::GatewayKey {
        namespace: "tls".into(),
        name: "gw".into(),
    };
    let bootstrap = processes::bootstrap(&gateway, "plain", xds, processes::Ads::Delta);
    let plain = processes::start_envoy(&envoy, &dir, "plain", &bootstrap).expect("envoy");
    wait_for("Envoy to route HTTP for secure.example", || {
        get(http, SITE, "/").starts_with("HTTP/1.1 200")
    });
    for _ in 0..10 {
        let got = https_get(https, &site);
        assert!(got.is_err(), "HTTPS answered without a served key: {got:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = read(&dir.join("serve-plain.log"));
    assert!(log.contains("no proxy is sent Secrets"), "{log}");
    drop(plain);
    drop(sluice);
}
