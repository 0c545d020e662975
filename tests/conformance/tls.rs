//! The TLS material the upstream suite creates at start-up (Secrets and ConfigMaps
//! with generated certificates), made once per run by the case data's own script
//! (`conformance-ext/tls/generate-certs.sh`, OpenSSL 3), and the client side of HTTPS
//! requests: the generated certificates are the only trust anchors (upstream's
//! client trusts the Gateway's certificate from the generated Secret; OpenSSL-based
//! and rustls clients accept a self-signed leaf as its own anchor).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use serde::Deserialize as _;
use serde_json::Value;

use crate::cases::ClientCertificate;

/// The generated objects and a TLS client that trusts their certificates.
#[derive(Debug)]
pub struct Material {
    pub docs: Vec<Value>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    verifier: Arc<GoNames>,
}

impl Material {
    /// A client config asking for `h2` or `http/1.1` by ALPN that presents, when
    /// `identity` names one, the certificate (`part`, e.g. `tls.crt`) and the
    /// private key (`tls.key`) of that generated Secret.
    pub fn client(
        &self,
        h2: bool,
        identity: Option<&ClientCertificate>,
    ) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let builder = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(self.verifier.clone());
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some(id) => {
                let (chain, key) = self.identity(id)?;
                builder.with_client_auth_cert(chain, key)?
            }
        };
        config.alpn_protocols = vec![if h2 {
            b"h2".to_vec()
        } else {
            b"http/1.1".to_vec()
        }];
        Ok(Arc::new(config))
    }

    /// The certificate chain (`id.part`) and key (`tls.key`) of a generated Secret.
    fn identity(
        &self,
        id: &ClientCertificate,
    ) -> anyhow::Result<(
        Vec<rustls_pki_types::CertificateDer<'static>>,
        rustls_pki_types::PrivateKeyDer<'static>,
    )> {
        use base64::Engine as _;
        use rustls_pki_types::pem::PemObject as _;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let what = format!("Secret {}/{}", id.secret.namespace, id.secret.name);
        let secret = (self.docs.iter())
            .find(|d| {
                d["kind"] == "Secret"
                    && d["metadata"]["namespace"] == id.secret.namespace.as_str()
                    && d["metadata"]["name"] == id.secret.name.as_str()
            })
            .with_context(|| format!("no generated {what}"))?;
        let data = |key: &str| -> anyhow::Result<Vec<u8>> {
            let b64 = secret["data"][key]
                .as_str()
                .with_context(|| format!("{what} has no data.{key}"))?;
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .with_context(|| format!("{what} data.{key}"))
        };
        let chain = CertificateDer::pem_slice_iter(&data(&id.part)?)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{what} data.{}", id.part))?;
        anyhow::ensure!(
            !chain.is_empty(),
            "{what} data.{} has no certificate",
            id.part
        );
        let key = PrivateKeyDer::from_pem_slice(&data("tls.key")?)
            .with_context(|| format!("{what} data.tls.key"))?;
        Ok((chain, key))
    }
}

static MATERIAL: OnceLock<Result<Material, String>> = OnceLock::new();

/// The material (generated on first use under `target/conformance/tls`).
pub fn material() -> Result<&'static Material, String> {
    MATERIAL
        .get_or_init(|| generate().map_err(|e| format!("generating the TLS material: {e:#}")))
        .as_ref()
        .map_err(Clone::clone)
}

/// The generator script: next to the case data's `conformance/` (in
/// `conformance-ext/`), else in the default shared copy.
fn script() -> anyhow::Result<PathBuf> {
    let relative = "conformance-ext/tls/generate-certs.sh";
    let mut candidates = vec![];
    if let Some(dir) = std::env::var_os("SLUICE_CONFORMANCE_CASES") {
        for dir in std::env::split_paths(&dir) {
            if let Some(parent) = dir.parent() {
                candidates.push(parent.join(relative));
            }
            candidates.push(dir.join("tls/generate-certs.sh"));
        }
    }
    candidates.push(
        crate::workspace()
            .join("../shared/gateway-api")
            .join(relative),
    );
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .with_context(|| format!("no {relative} next to the case data or in ../shared/gateway-api"))
}

fn generate() -> anyhow::Result<Material> {
    let out = crate::workspace().join("target/conformance/tls");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let script = script()?;
    let run = std::process::Command::new("bash")
        .arg(&script)
        .arg(&out)
        .output()
        .with_context(|| format!("running {} (needs bash and openssl >= 3)", script.display()))?;
    anyhow::ensure!(
        run.status.success(),
        "{} failed ({}); it needs openssl >= 3 (Debian: apt-get install openssl): {}",
        script.display(),
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let path = out.join("tls-material.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let mut docs = vec![];
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc).context("parsing tls-material.yaml")?;
        if value.is_object() {
            docs.push(value);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots(&out)?),
        provider.clone(),
    )
    .build()?;
    Ok(Material {
        docs,
        provider,
        verifier: Arc::new(GoNames { webpki }),
    })
}

/// Every generated certificate (`*.crt`: leaves and CAs) as a trust anchor.
fn roots(dir: &Path) -> anyhow::Result<rustls::RootCertStore> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let mut store = rustls::RootCertStore::empty();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "crt") {
            for cert in
                CertificateDer::pem_file_iter(&path).with_context(|| path.display().to_string())?
            {
                store
                    .add(cert.with_context(|| path.display().to_string())?)
                    .with_context(|| path.display().to_string())?;
            }
        }
    }
    anyhow::ensure!(!store.is_empty(), "no certificate in {}", dir.display());
    Ok(store)
}

/// webpki's chain verification, with Go's `crypto/x509` hostname rules (what the
/// upstream suite's client applies): a wildcard `*.org` matches `example.org`,
/// which webpki refuses for a wildcard over a single label. Only a name mismatch
/// is re-judged; every other error (chain, expiry, signature) stands.
#[derive(Debug)]
struct GoNames {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
}

impl rustls::client::danger::ServerCertVerifier for GoNames {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error};
        let verdict =
            self.webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        match verdict {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => {
                let host = server_name.to_str();
                let names = dns_names(end_entity.as_ref());
                if names.iter().any(|n| go_matches(n, &host)) {
                    Ok(rustls::client::danger::ServerCertVerified::assertion())
                } else {
                    verdict
                }
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The DNS SANs of a certificate.
fn dns_names(der: &[u8]) -> Vec<String> {
    use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return vec![];
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return vec![];
    };
    (san.value.general_names.iter())
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Go's `matchHostnames`: equal ignoring case, or a leftmost `*` label matching
/// exactly one label.
fn go_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let pattern = pattern.trim_end_matches('.');
    if pattern == host {
        return true;
    }
    match (pattern.split_once('.'), host.split_once('.')) {
        (Some(("*", p_rest)), Some((label, h_rest))) => !label.is_empty() && p_rest == h_rest,
        _ => false,
    }
}
