//! SDS: a listener certificate and its private key as an Envoy `Secret`, named
//! after the Kubernetes Secret (`namespace/name`), the material inlined.

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    Secret, TlsCertificate, secret,
};
use sluice_pipeline::ir::SecretIr;

pub fn secret(ir: &SecretIr) -> Secret {
    let inline = |s: &str| DataSource {
        specifier: Some(Specifier::InlineString(s.to_owned())),
        ..Default::default()
    };
    Secret {
        name: ir.name.clone(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline(&ir.cert_chain)),
            private_key: Some(inline(&ir.private_key)),
            ..Default::default()
        })),
    }
}
