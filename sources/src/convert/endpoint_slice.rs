//! EndpointSlice: the ready addresses and ports behind a Service.

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use sluice_pipeline::model::{self, EndpointPort, Object};

use super::{Result, ToModel, meta, port};

/// The label that names the Service an EndpointSlice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

impl ToModel for EndpointSlice {
    type Model = model::EndpointSlice;

    fn to_object(&self) -> Result<Object> {
        self.to_model().map(Object::EndpointSlice)
    }

    fn to_model(&self) -> Result<model::EndpointSlice> {
        let slice = self;
        let labels = slice.metadata.labels.as_ref();
        let mut ports = Vec::new();
        for (i, p) in slice.ports.iter().flatten().enumerate() {
            // A port without a number means "all ports"; it has nothing to route to.
            let Some(number) = p.port else { continue };
            let number = port(&format!("ports[{i}].port"), number)?;
            ports.push(EndpointPort {
                name: p.name.clone().unwrap_or_default(),
                port: number,
            });
        }
        ports.sort();
        ports.dedup();
        let mut addresses: Vec<String> = slice
            .endpoints
            .iter()
            .filter(|e| is_ready(e))
            .flat_map(|e| e.addresses.clone())
            .collect();
        addresses.sort();
        addresses.dedup();
        Ok(model::EndpointSlice {
            key: meta::namespaced_key(&slice.metadata)?,
            service_name: labels.and_then(|l| l.get(SERVICE_NAME_LABEL)).cloned(),
            ports,
            addresses,
        })
    }
}

/// An endpoint is ready unless `conditions.ready` says `false`: consumers should
/// interpret an unknown state as ready (Kubernetes API reference, EndpointConditions).
fn is_ready(endpoint: &Endpoint) -> bool {
    endpoint.conditions.as_ref().and_then(|c| c.ready) != Some(false)
}
