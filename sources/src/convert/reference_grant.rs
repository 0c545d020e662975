//! ReferenceGrant: who may refer to what across namespaces.

use gateway_api::referencegrants::ReferenceGrant;
use sluice_pipeline::model::{self, GrantFrom, GrantTo, Object};

use super::{Result, ToModel, meta};

impl ToModel for ReferenceGrant {
    type Model = model::ReferenceGrant;

    fn to_object(&self) -> Result<Object> {
        self.to_model().map(Object::ReferenceGrant)
    }

    fn to_model(&self) -> Result<model::ReferenceGrant> {
        let grant = self;
        let mut from: Vec<GrantFrom> = grant
            .spec
            .from
            .iter()
            .map(|f| GrantFrom {
                group: f.group.clone(),
                kind: f.kind.clone(),
                namespace: f.namespace.clone(),
            })
            .collect();
        let mut to: Vec<GrantTo> = grant
            .spec
            .to
            .iter()
            .map(|t| GrantTo {
                group: t.group.clone(),
                kind: t.kind.clone(),
                name: t.name.clone(),
            })
            .collect();
        from.sort();
        from.dedup();
        to.sort();
        to.dedup();
        Ok(model::ReferenceGrant {
            key: meta::namespaced_key(&grant.metadata)?,
            from,
            to,
        })
    }
}
