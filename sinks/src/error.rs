//! The sink crate's error type.

use crate::state::ResourceType;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The compiled descriptor set has no message of this type (a build problem).
    #[error("no descriptor for message type {0}")]
    UnknownMessage(String),
    /// Bytes that do not decode as the resource type they are said to be.
    #[error("cannot decode a {ty:?} resource: {source}")]
    Decode {
        ty: ResourceType,
        #[source]
        source: prost::DecodeError,
    },
    /// The message decoded but could not be printed as proto3 JSON (e.g. an `Any`
    /// whose type is not in the descriptor set).
    #[error("cannot print a {ty:?} resource as JSON: {source}")]
    Json {
        ty: ResourceType,
        #[source]
        source: serde_json::Error,
    },
}
