//! ConfigMap: a CA certificate bundle (`ca.crt`), which client certificate
//! validation (`spec.tls.frontend`) refers to. Only that key is kept, checked here
//! once per version: it is there, and it is PEM whose every certificate is
//! well-formed X.509 usable as a trust anchor. A ConfigMap that fails is still a
//! record, with its problem, so the listener that uses it is reported
//! (`InvalidCACertificateRef`) and Envoy is never sent a bundle it would reject.

use k8s_openapi::api::core::v1::ConfigMap;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sluice_pipeline::model::{self, Object};

use super::{Result, ToModel, meta};

/// The key of a ConfigMap that holds a CA bundle (the Gateway API's Core support).
pub const CA_BUNDLE_KEY: &str = "ca.crt";

impl ToModel for ConfigMap {
    type Model = model::ConfigMap;

    fn to_object(&self) -> Result<Object> {
        self.to_model().map(Object::ConfigMap)
    }

    fn to_model(&self) -> Result<model::ConfigMap> {
        let key = meta::namespaced_key(&self.metadata)?;
        let bundle = (self
            .data
            .as_ref()
            .and_then(|d| d.get(CA_BUNDLE_KEY))
            .cloned())
        .or_else(|| {
            (self.binary_data.as_ref().and_then(|d| d.get(CA_BUNDLE_KEY)))
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        });
        let problem = match &bundle {
            None => Some(format!("ConfigMap has no key {CA_BUNDLE_KEY}")),
            Some(pem) => ca_bundle_problem(pem),
        };
        Ok(model::ConfigMap {
            key,
            ca_bundle: match problem {
                None => bundle.unwrap_or_default(),
                Some(_) => String::new(),
            },
            problem,
        })
    }
}

/// Why `pem` cannot serve as a CA bundle: `None` when every PEM certificate in it
/// is a usable trust anchor and there is at least one.
pub fn ca_bundle_problem(pem: &str) -> Option<String> {
    let certs: std::result::Result<Vec<CertificateDer<'static>>, _> =
        CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    let certs = match certs {
        Ok(certs) if certs.is_empty() => {
            return Some(format!("{CA_BUNDLE_KEY}: no PEM certificate"));
        }
        Ok(certs) => certs,
        Err(e) => return Some(format!("{CA_BUNDLE_KEY}: malformed PEM: {e}")),
    };
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in certs.into_iter().enumerate() {
        if let Err(e) = roots.add(cert) {
            return Some(format!(
                "{CA_BUNDLE_KEY}: certificate {} is not a usable CA certificate: {e}",
                i + 1
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    //! What a CA bundle must be before Envoy is sent it (a bundle Envoy cannot
    //! parse makes it reject the whole listener).
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec![]).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).expect("cert").pem()
    }

    fn config_map(data: &[(&str, &str)]) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.name = Some("ca".into());
        c.metadata.namespace = Some("infra".into());
        c.data = Some(
            (data.iter())
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        c
    }

    #[test]
    fn a_generated_ca_and_a_bundle_of_two_are_usable() {
        let (a, b) = (ca_pem(), ca_pem());
        let one = config_map(&[("ca.crt", &a)]).to_model().expect("converts");
        assert_eq!(one.problem, None);
        assert_eq!(one.ca_bundle, a);
        let two = format!("{a}{b}");
        assert_eq!(ca_bundle_problem(&two), None);
    }

    #[test]
    fn a_missing_key_or_malformed_bundle_is_a_problem_and_keeps_no_data() {
        let empty = config_map(&[]).to_model().expect("converts");
        assert_eq!(
            empty.problem.as_deref(),
            Some("ConfigMap has no key ca.crt")
        );
        let other_key = config_map(&[("ca.pem", &ca_pem())])
            .to_model()
            .expect("converts");
        assert!(other_key.problem.is_some());
        let text = config_map(&[("ca.crt", "Hello world")])
            .to_model()
            .expect("converts");
        assert_eq!(text.problem.as_deref(), Some("ca.crt: no PEM certificate"));
        assert!(text.ca_bundle.is_empty());
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let bad = config_map(&[("ca.crt", garbage)])
            .to_model()
            .expect("converts");
        let problem = bad.problem.expect("a problem");
        assert!(problem.contains("not a usable CA certificate"), "{problem}");
    }
}
