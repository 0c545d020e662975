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
