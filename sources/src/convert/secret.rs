//! Secret: the certificate and key of a `kubernetes.io/tls` Secret, which HTTPS
//! listeners refer to. The material is checked here, once per version: the PEM
//! parses, the leaf is well-formed X.509, and the private key belongs to it. A
//! Secret that fails is still a record, with its problem, so the listener that uses
//! it is reported (`InvalidCertificateRef`) and Envoy is never sent a certificate it
//! would reject.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::crypto::ring::sign::any_supported_type;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sluice_pipeline::model::{self, Object};

use super::{Result, ToModel, meta};

/// The Secret type listener certificates must have.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

impl ToModel for Secret {
    type Model = model::Secret;

    fn to_object(&self) -> Result<Object> {
        self.to_model().map(Object::Secret)
    }

    fn to_model(&self) -> Result<model::Secret> {
        let key = meta::namespaced_key(&self.metadata)?;
        let field = |name: &str| -> Option<String> {
            if let Some(v) = self.data.as_ref().and_then(|d| d.get(name)) {
                return Some(String::from_utf8_lossy(&v.0).into_owned());
            }
            self.string_data.as_ref().and_then(|d| d.get(name)).cloned()
        };
        let type_ = self.type_.as_deref().unwrap_or("Opaque");
        let (cert_chain, private_key) = (field("tls.crt"), field("tls.key"));
        let problem = if type_ != TLS_SECRET_TYPE {
            Some(format!("Secret type is {type_:?}, not {TLS_SECRET_TYPE:?}"))
        } else {
            match (&cert_chain, &private_key) {
                (None, _) => Some("no tls.crt".to_owned()),
                (_, None) => Some("no tls.key".to_owned()),
                (Some(c), Some(k)) => certificate_problem(c, k),
            }
        };
        // A Secret that cannot be used keeps no key material in the pipeline.
        let (cert_chain, private_key) = match problem {
            None => (
                cert_chain.unwrap_or_default(),
                private_key.unwrap_or_default(),
            ),
            Some(_) => (String::new(), String::new()),
        };
        Ok(model::Secret {
            key,
            cert_chain,
            private_key,
            problem,
        })
    }
}

/// Why `cert_chain` (PEM, leaf first) and `private_key` (PEM) cannot serve as a
/// TLS certificate: `None` when they can.
pub fn certificate_problem(cert_chain: &str, private_key: &str) -> Option<String> {
    let certs: std::result::Result<Vec<CertificateDer<'static>>, _> =
        CertificateDer::pem_slice_iter(cert_chain.as_bytes()).collect();
    let certs = match certs {
        Ok(certs) if certs.is_empty() => return Some("tls.crt: no PEM certificate".into()),
        Ok(certs) => certs,
        Err(e) => return Some(format!("tls.crt: malformed PEM: {e}")),
    };
    let key = match PrivateKeyDer::from_pem_slice(private_key.as_bytes()) {
        Ok(key) => key,
        Err(e) => return Some(format!("tls.key: no usable PEM private key: {e}")),
    };
    let signing = match any_supported_type(&key) {
        Ok(signing) => signing,
        Err(e) => {
            return Some(format!(
                "tls.key: unsupported or malformed private key: {e}"
            ));
        }
    };
    match CertifiedKey::new(certs, Arc::clone(&signing)).keys_match() {
        Ok(()) => None,
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => None,
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Some("tls.key does not belong to the certificate in tls.crt".into())
        }
        Err(e) => Some(format!("tls.crt: malformed certificate: {e}")),
    }
}
