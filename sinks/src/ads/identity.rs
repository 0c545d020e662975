//! Which Gateways a proxy's client certificate lets it serve (xDS over TLS with
//! `--xds-client-ca`): every URI SAN of the SPIFFE-style form
//! `spiffe://TRUST_DOMAIN/ns/NAMESPACE/gateway/NAME` (any scheme and trust domain;
//! the path decides), and the subject CN when it is `NAMESPACE/NAME`. The
//! certificate chain itself was verified against the client CA by the TLS layer.

use sluice_pipeline::model::ObjectKey;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The Gateways `der` (a verified client certificate) names; empty when it names
/// none or does not parse.
pub fn gateways_of(der: &[u8]) -> Vec<ObjectKey> {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return vec![];
    };
    let mut out = vec![];
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name
                && let Some(key) = from_uri(uri)
            {
                out.push(key);
            }
        }
    }
    for cn in cert.subject().iter_common_name() {
        if let Ok(cn) = cn.as_str()
            && let Some((namespace, name)) = cn.split_once('/')
            && valid(namespace)
            && valid(name)
        {
            out.push(ObjectKey::new(namespace, name));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `.../ns/NAMESPACE/gateway/NAME` at the end of the URI's path.
fn from_uri(uri: &str) -> Option<ObjectKey> {
    let path = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [.., "ns", namespace, "gateway", name] if valid(namespace) && valid(name) => {
            Some(ObjectKey::new(*namespace, *name))
        }
        _ => None,
    }
}

/// A Kubernetes object name (DNS subdomain characters).
fn valid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_sans_name_gateways_by_their_path() {
        assert_eq!(
            from_uri("spiffe://cluster.local/ns/infra/gateway/public"),
            Some(ObjectKey::new("infra", "public"))
        );
        assert_eq!(from_uri("spiffe://cluster.local/ns/infra/sa/envoy"), None);
        assert_eq!(from_uri("spiffe://x/ns/Infra/gateway/public"), None);
        assert_eq!(from_uri("spiffe://x/ns//gateway/public"), None);
    }

    #[test]
    fn a_certificate_names_its_gateways_by_uri_san_and_cn() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "other/gw");
        params.subject_alt_names = vec![rcgen::SanType::URI(
            "spiffe://sluice/ns/infra/gateway/public"
                .try_into()
                .expect("uri"),
        )];
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(
            gateways_of(cert.der()),
            vec![
                ObjectKey::new("infra", "public"),
                ObjectKey::new("other", "gw")
            ]
        );
        assert!(gateways_of(b"not a certificate").is_empty());
    }
}
