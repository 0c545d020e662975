//! Namespace: its labels, which listener namespace selectors read.

use k8s_openapi::api::core::v1::Namespace;
use sluice_pipeline::model::{self, Object};

use super::{Result, ToModel, meta};

/// The label the API server sets on every Namespace to its own name.
pub const NAME_LABEL: &str = "kubernetes.io/metadata.name";

impl ToModel for Namespace {
    type Model = model::Namespace;

    fn to_object(&self) -> Result<Object> {
        self.to_model().map(Object::Namespace)
    }

    fn to_model(&self) -> Result<model::Namespace> {
        let namespace = self;
        let name = meta::name(&namespace.metadata)?;
        let mut labels = namespace.metadata.labels.clone().unwrap_or_default();
        labels
            .entry(NAME_LABEL.to_owned())
            .or_insert_with(|| name.clone());
        // A BTreeMap iterates in key order, so the labels come out sorted.
        Ok(model::Namespace {
            name,
            labels: labels.into_iter().collect(),
        })
    }
}
