//! SDS: a listener certificate and its private key as an Envoy `Secret`, named
//! after the Kubernetes Secret (`namespace/name`), or a CA bundle for client
//! certificate validation (a `CertificateValidationContext` with `trusted_ca`),
//! the material inlined.

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, TlsCertificate, secret,
};
use sluice_pipeline::ir::{SecretIr, SecretMaterial};

pub fn secret(ir: &SecretIr) -> Secret {
    let inline = |s: &str| DataSource {
        specifier: Some(Specifier::InlineString(s.to_owned())),
        ..Default::default()
    };
    let r#type = match &ir.material {
        SecretMaterial::Certificate {
            cert_chain,
            private_key,
        } => secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline(cert_chain)),
            private_key: Some(inline(private_key)),
            ..Default::default()
        }),
        SecretMaterial::TrustedCa(pem) => {
            secret::Type::ValidationContext(CertificateValidationContext {
                trusted_ca: Some(inline(pem)),
                ..Default::default()
            })
        }
    };
    Secret {
        name: ir.name.clone(),
        r#type: Some(r#type),
    }
}
