//! Printing xDS resources as proto3 JSON, the way Envoy's `config_dump` shows them
//! (snake_case field names, `"@type"` first).
//!
//! envoy-types has no serde support, so the messages are printed reflectively: the
//! build script compiles every Envoy `.proto` into a descriptor set, and
//! `prost-reflect` decodes the encoded bytes into a `DynamicMessage` and serializes
//! it. Nested `Any`s (`typed_config`) print through the same pool.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

use crate::state::ResourceType;
use crate::{Error, Result};

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy.bin"));

/// The descriptor pool of all Envoy messages, decoded once (~25 ms).
pub fn descriptor_pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // The set is produced by our own build script: failing to decode it is a
        // build defect, not a runtime condition.
        #[allow(clippy::expect_used)]
        DescriptorPool::decode(DESCRIPTORS).expect("build.rs wrote a valid descriptor set")
    })
}

/// Decode `body` as a message of type `ty` and print it as proto3 JSON with
/// config_dump's snake_case field names and an `"@type"` key first.
pub fn resource_to_json(ty: ResourceType, body: &[u8]) -> Result<serde_json::Value> {
    let type_url = ty.type_url();
    let full_name = type_url.rsplit('/').next().unwrap_or(type_url);
    let desc = descriptor_pool()
        .get_message_by_name(full_name)
        .ok_or_else(|| Error::UnknownMessage(full_name.to_owned()))?;
    let message =
        DynamicMessage::decode(desc, body).map_err(|source| Error::Decode { ty, source })?;
    let options = SerializeOptions::new().use_proto_field_name(true);
    let value = message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|source| Error::Json { ty, source })?;
    let mut out = serde_json::Map::new();
    out.insert("@type".to_owned(), type_url.into());
    if let serde_json::Value::Object(fields) = value {
        out.extend(fields);
    }
    Ok(serde_json::Value::Object(out))
}

/// What printed Secrets show instead of a private key (as Envoy's own config_dump).
pub const REDACTED: &str = "[redacted]";

/// A Gateway's resources as JSON: `listeners`, `routes`, `clusters`, `endpoints`, each
/// resource in proto3 JSON (what `sluice translate` prints and the admin port dumps),
/// and `secrets` when it has any, their private keys [`REDACTED`].
pub fn resources_json(res: &crate::state::GatewayResources) -> Result<serde_json::Value> {
    let mut out = serde_json::Map::new();
    let secrets = res.get(ResourceType::Secret);
    if !secrets.is_empty() {
        let items = secrets
            .values()
            .map(|r| {
                let mut json = resource_to_json(ResourceType::Secret, &r.body)?;
                if let Some(key) = json
                    .get_mut("tls_certificate")
                    .and_then(|c| c.get_mut("private_key"))
                {
                    *key = serde_json::json!({ "inline_string": REDACTED });
                }
                Ok(json)
            })
            .collect::<Result<Vec<_>>>()?;
        out.insert("secrets".to_string(), serde_json::Value::Array(items));
    }
    for (ty, key) in [
        (ResourceType::Listener, "listeners"),
        (ResourceType::Route, "routes"),
        (ResourceType::Cluster, "clusters"),
        (ResourceType::Endpoint, "endpoints"),
    ] {
        let items = res
            .get(ty)
            .values()
            .map(|r| resource_to_json(ty, &r.body))
            .collect::<Result<Vec<_>>>()?;
        out.insert(key.to_string(), serde_json::Value::Array(items));
    }
    Ok(serde_json::Value::Object(out))
}

#[cfg(test)]
mod tests {
    //! Checks that encoded resources print as config_dump-style JSON: snake_case
    //! field names, `"@type"` first, and nested `Any`s (the listener's
    //! HttpConnectionManager, the router filter, a cluster's protocol options)
    //! expanded rather than failing.
    use prost::Message;
    use sluice_pipeline::ir::{ClusterIr, ListenerIr};
    use sluice_pipeline::model::ObjectKey;

    use super::*;
    use crate::encode::{EncodeConfig, cluster, listener};

    #[test]
    fn listener_with_hcm_prints_snake_case() {
        let ir = ListenerIr {
            gateway: ObjectKey::new("infra", "gw"),
            port: 80,
            tls: vec![],
        };
        let body = listener::listener(&EncodeConfig::default(), &ir).encode_to_vec();
        let json = resource_to_json(ResourceType::Listener, &body).expect("prints");

        assert_eq!(
            json.as_object()
                .and_then(|o| o.keys().next())
                .map(String::as_str),
            Some("@type")
        );
        assert_eq!(json["@type"], ResourceType::Listener.type_url());
        assert_eq!(json["name"], "infra/gw/80");
        assert_eq!(json["address"]["socket_address"]["port_value"], 80);
        let hcm = &json["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(
            hcm["@type"],
            "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
        );
        assert_eq!(hcm["stat_prefix"], "infra_gw_80");
        assert_eq!(hcm["rds"]["route_config_name"], "infra/gw/80");
        assert_eq!(hcm["rds"]["config_source"]["resource_api_version"], "V3");
        assert_eq!(hcm["upgrade_configs"][0]["upgrade_type"], "websocket");
        assert_eq!(
            hcm["http_filters"][0]["typed_config"]["@type"],
            "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
        );
        let text = json.to_string();
        assert!(
            !text.contains("statPrefix") && !text.contains("filterChains"),
            "{text}"
        );
    }

    #[test]
    fn cluster_with_protocol_options_prints() {
        let ir = ClusterIr {
            name: "ns/svc:80".into(),
            service: ObjectKey::new("ns", "svc"),
            port: 80,
            app_protocol: Some(cluster::H2C_APP_PROTOCOL.into()),
            tls: None,
        };
        let body = cluster::cluster(&ir).encode_to_vec();
        let json = resource_to_json(ResourceType::Cluster, &body).expect("prints");
        assert_eq!(json["type"], "EDS");
        assert_eq!(json["connect_timeout"], "2s");
        let options = &json["typed_extension_protocol_options"][cluster::HTTP_PROTOCOL_OPTIONS];
        assert!(
            options["explicit_http_config"]["http2_protocol_options"].is_object(),
            "{json}"
        );
    }

    #[test]
    fn bytes_of_another_type_are_an_error() {
        let err = resource_to_json(ResourceType::Route, &[0xff, 0xff, 0xff]).expect_err("garbage");
        assert!(
            matches!(
                err,
                Error::Decode {
                    ty: ResourceType::Route,
                    ..
                }
            ),
            "{err}"
        );
    }
}
