//! Which Gateway a proxy serves, read from the `Node` of its first request.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::value::Kind;
use sluice_pipeline::model::ObjectKey;

use super::Error;

/// The node metadata field that names the proxy's Gateway, as `namespace/name`.
pub const GATEWAY_METADATA_KEY: &str = "sluice.dev/gateway";

/// The Gateway a proxy serves: node metadata `sluice.dev/gateway` first, then
/// `node.cluster`, each of the form `namespace/name`.
pub fn gateway_of(node: Option<&Node>) -> Result<ObjectKey, Error> {
    let node = node.ok_or(Error::MissingNode)?;
    let from_metadata = node
        .metadata
        .as_ref()
        .and_then(|m| m.fields.get(GATEWAY_METADATA_KEY));
    if let Some(value) = from_metadata {
        return match &value.kind {
            Some(Kind::StringValue(s)) => parse_key(s).ok_or_else(|| Error::BadGatewayRef {
                node: node.id.clone(),
                field: "metadata",
                value: s.clone(),
            }),
            _ => Err(Error::BadGatewayRef {
                node: node.id.clone(),
                field: "metadata",
                value: format!("{:?}", value.kind),
            }),
        };
    }
    parse_key(&node.cluster).ok_or_else(|| Error::NoGateway {
        node: node.id.clone(),
        cluster: node.cluster.clone(),
    })
}

/// `namespace/name`, both parts non-empty and no further `/`.
fn parse_key(s: &str) -> Option<ObjectKey> {
    let (namespace, name) = s.split_once('/')?;
    let valid = |p: &str| !p.is_empty() && !p.contains('/') && p.trim() == p;
    (valid(namespace) && valid(name)).then(|| ObjectKey::new(namespace, name))
}

#[cfg(test)]
mod tests {
    //! The node → Gateway mapping: metadata wins, cluster is the fallback, and
    //! every unusable node is an error that names what is missing.
    use super::*;
    use envoy_types::pb::google::protobuf::{Struct, Value};

    fn node(cluster: &str, meta: Option<Kind>) -> Node {
        let metadata = meta.map(|kind| Struct {
            fields: [(GATEWAY_METADATA_KEY.to_string(), Value { kind: Some(kind) })].into(),
        });
        Node {
            id: "envoy-1".into(),
            cluster: cluster.into(),
            metadata,
            ..Node::default()
        }
    }

    #[test]
    fn metadata_wins_over_cluster() {
        let n = node("other/gw", Some(Kind::StringValue("ns/gw".into())));
        assert_eq!(gateway_of(Some(&n)).ok(), Some(ObjectKey::new("ns", "gw")));
    }

    #[test]
    fn cluster_is_the_fallback() {
        assert_eq!(
            gateway_of(Some(&node("ns/gw", None))).ok(),
            Some(ObjectKey::new("ns", "gw"))
        );
    }

    #[test]
    fn unusable_nodes_are_errors() {
        assert!(matches!(gateway_of(None), Err(Error::MissingNode)));
        assert!(matches!(
            gateway_of(Some(&node("gw", None))),
            Err(Error::NoGateway { .. })
        ));
        assert!(matches!(
            gateway_of(Some(&node("a/b/c", None))),
            Err(Error::NoGateway { .. })
        ));
        let bad = node("ns/gw", Some(Kind::NumberValue(1.0)));
        assert!(matches!(
            gateway_of(Some(&bad)),
            Err(Error::BadGatewayRef { .. })
        ));
        let bad = node("ns/gw", Some(Kind::StringValue("/gw".into())));
        assert!(matches!(
            gateway_of(Some(&bad)),
            Err(Error::BadGatewayRef { .. })
        ));
    }
}
