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
    // Envoy (BoringSSL) serves RSA and ECDSA certificates only: an Ed25519 key
    // would make it reject the Secret.
    let algorithm = signing.algorithm();
    if !matches!(
        algorithm,
        rustls::SignatureAlgorithm::RSA | rustls::SignatureAlgorithm::ECDSA
    ) {
        return Some(format!(
            "tls.key: {algorithm:?} keys are not supported (Envoy serves RSA and ECDSA certificates)"
        ));
    }
    match CertifiedKey::new(certs, Arc::clone(&signing)).keys_match() {
        Ok(()) => None,
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => None,
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Some("tls.key does not belong to the certificate in tls.crt".into())
        }
        Err(e) => Some(format!("tls.crt: malformed certificate: {e}")),
    }
}

#[cfg(test)]
mod tests {
    //! The checks a listener certificate gets before it reaches Envoy (which would
    //! reject it, failing the whole listener): PEM, X.509 and that the key belongs
    //! to the certificate; and the Secret's type and keys.
    use super::*;
    use k8s_openapi::ByteString;

    fn generated() -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["a.example".to_string()]).expect("params");
        let cert = params.self_signed(&key).expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    fn secret(type_: Option<&str>, data: &[(&str, &str)]) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some("cert".into());
        s.metadata.namespace = Some("infra".into());
        s.type_ = type_.map(Into::into);
        s.data = Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        );
        s
    }

    #[test]
    fn a_generated_certificate_and_its_key_are_usable() {
        let (cert, key) = generated();
        assert_eq!(certificate_problem(&cert, &key), None);
        let s = secret(
            Some(TLS_SECRET_TYPE),
            &[("tls.crt", &cert), ("tls.key", &key)],
        )
        .to_model()
        .expect("converts");
        assert_eq!((s.problem, s.cert_chain, s.private_key), (None, cert, key));
    }

    #[test]
    fn malformed_material_is_a_problem_named_by_key() {
        let (cert, key) = generated();
        let (_, other_key) = generated();
        let hello = "Hello world\n"; // the conformance suite's malformed Secret
        let garbage_cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let ed25519 = {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
            let params =
                rcgen::CertificateParams::new(vec!["a.example".to_string()]).expect("params");
            (
                params.self_signed(&key).expect("cert").pem(),
                key.serialize_pem(),
            )
        };
        for (c, k, says) in [
            (
                ed25519.0.as_str(),
                ed25519.1.as_str(),
                "ED25519 keys are not supported",
            ),
            (hello, hello, "tls.crt: no PEM certificate"),
            (cert.as_str(), hello, "tls.key"),
            (cert.as_str(), other_key.as_str(), "does not belong"),
            (garbage_cert, key.as_str(), "tls.crt"),
        ] {
            let problem = certificate_problem(c, k).unwrap_or_default();
            assert!(problem.contains(says), "{says}: {problem:?}");
        }
    }

    #[test]
    fn the_type_and_both_keys_are_required_and_a_bad_secret_holds_no_material() {
        let (cert, key) = generated();
        for (s, says) in [
            (
                secret(Some("Opaque"), &[("tls.crt", &cert), ("tls.key", &key)]),
                "Opaque",
            ),
            (
                secret(None, &[("tls.crt", &cert), ("tls.key", &key)]),
                "Opaque",
            ),
            (
                secret(Some(TLS_SECRET_TYPE), &[("tls.key", &key)]),
                "no tls.crt",
            ),
            (
                secret(Some(TLS_SECRET_TYPE), &[("tls.crt", &cert)]),
                "no tls.key",
            ),
        ] {
            let s = s.to_model().expect("converts");
            assert!(
                s.problem.as_deref().unwrap_or_default().contains(says),
                "{says}: {:?}",
                s.problem
            );
            assert!(s.cert_chain.is_empty() && s.private_key.is_empty());
        }
    }
}
