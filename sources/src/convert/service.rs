//! Service: its ports, which backend refs name.

use k8s_openapi::api::core::v1::Service;
use sluice_pipeline::model::{self, Object, ServicePort};

use super::{Result, ToModel, each, meta, port};

impl ToModel for Service {
    type Model = model::Service;

    fn to_object(&self) -> Result<Object> {
        self.to_model().map(Object::Service)
    }

    fn to_model(&self) -> Result<model::Service> {
        let service = self;
        let ports = service.spec.as_ref().and_then(|s| s.ports.as_deref());
        let mut ports = each("spec.ports", ports, |p| {
            Ok(ServicePort {
                name: p.name.clone().unwrap_or_default(),
                port: port("port", p.port)?,
                app_protocol: p.app_protocol.clone(),
            })
        })?;
        ports.sort();
        Ok(model::Service {
            key: meta::namespaced_key(&service.metadata)?,
            ports,
        })
    }
}
