//! GatewayClass: name, controller and generation.

use gateway_api::gatewayclasses::GatewayClass;
use sluice_pipeline::model::{self, Object};

use super::{Result, ToModel, meta};

impl ToModel for GatewayClass {
    type Model = model::GatewayClass;

    fn to_object(&self) -> Result<Object> {
        self.to_model().map(Object::GatewayClass)
    }

    fn to_model(&self) -> Result<model::GatewayClass> {
        let class = self;
        Ok(model::GatewayClass {
            name: meta::name(&class.metadata)?,
            controller_name: class.spec.controller_name.clone(),
            generation: meta::generation(&class.metadata),
        })
    }
}
