//! BackendTLSPolicy (v1): the targets, CA references and validation of TLS to
//! backends.

use gateway_api::backendtlspolicies::{
    BackendTlsPolicy, BackendTlsPolicyValidationSubjectAltNamesType as SanType,
};
use sluice_pipeline::model::{self, LocalRef, Object, PolicyTarget, SubjectAltName};

use super::{ConvertError, Result, ToModel, meta};

impl ToModel for BackendTlsPolicy {
    type Model = model::BackendTlsPolicy;

    fn to_object(&self) -> Result<Object> {
        self.to_model().map(Object::BackendTlsPolicy)
    }

    fn to_model(&self) -> Result<model::BackendTlsPolicy> {
        let spec = &self.spec;
        let v = &spec.validation;
        let subject_alt_names = (v.subject_alt_names.iter().flatten().enumerate())
            .map(|(i, san)| {
                let field = |what: &str| format!("spec.validation.subjectAltNames[{i}].{what}");
                let value = |v: &Option<String>, what: &str| {
                    (v.clone().filter(|v| !v.is_empty()))
                        .ok_or_else(|| ConvertError::new(field(what), "required by its type"))
                };
                Ok(match san.r#type {
                    SanType::Hostname => {
                        SubjectAltName::Hostname(value(&san.hostname, "hostname")?)
                    }
                    SanType::Uri => SubjectAltName::Uri(value(&san.uri, "uri")?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(model::BackendTlsPolicy {
            meta: meta::namespaced_meta(&self.metadata)?,
            targets: (spec.target_refs.iter())
                .map(|t| PolicyTarget {
                    group: t.group.clone(),
                    kind: t.kind.clone(),
                    name: t.name.clone(),
                    section: t.section_name.clone(),
                })
                .collect(),
            ca_refs: (v.ca_certificate_refs.iter().flatten())
                .map(|r| LocalRef {
                    group: r.group.clone(),
                    kind: r.kind.clone(),
                    name: r.name.clone(),
                })
                .collect(),
            well_known: v
                .well_known_ca_certificates
                .clone()
                .filter(|w| !w.is_empty()),
            hostname: v.hostname.clone(),
            subject_alt_names,
        })
    }
}
