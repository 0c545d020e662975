//! Namespace: its labels, which listener namespace selectors read.

use k8s_openapi::api::core::v1::Namespace;
use sluice_pipeline::model::{self, Object};

use super::{Result, ToModel, meta};

impl ToModel for Namespace {
    type Model = model::Namespace;

    fn to_object(&self) -> Result<Object> {
        self.to_model().map(Object::Namespace)
    }

    fn to_model(&self) -> Result<model::Namespace> {
        let namespace = self;
        let name = meta::name(&namespace.metadata)?;
        let labels = namespace.metadata.labels.clone().unwrap_or_default();
        Ok(model::Namespace::new(name, labels))
    }
}
