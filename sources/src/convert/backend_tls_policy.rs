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

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(validation: serde_json::Value) -> BackendTlsPolicy {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "BackendTLSPolicy",
            "metadata": {"namespace": "infra", "name": "p", "generation": 3},
            "spec": {
                "targetRefs": [{"group": "", "kind": "Service", "name": "tls-backend", "sectionName": "https"}],
                "validation": validation,
            },
        }))
        .expect("a BackendTLSPolicy")
    }

    #[test]
    fn targets_refs_and_subject_alt_names_convert_in_order() {
        let p = policy(serde_json::json!({
            "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}],
            "hostname": "abc.example.com",
            "subjectAltNames": [
                {"type": "Hostname", "hostname": "other.example.com"},
                {"type": "URI", "uri": "spiffe://abc.example.com/test-identity"},
            ],
        }))
        .to_model()
        .expect("converts");
        assert_eq!(p.meta.key, model::ObjectKey::new("infra", "p"));
        assert_eq!(
            p.targets,
            vec![PolicyTarget {
                group: String::new(),
                kind: "Service".into(),
                name: "tls-backend".into(),
                section: Some("https".into()),
            }]
        );
        assert_eq!(
            p.ca_refs,
            vec![LocalRef {
                group: String::new(),
                kind: "ConfigMap".into(),
                name: "ca".into(),
            }]
        );
        assert_eq!(p.well_known, None);
        assert_eq!(p.hostname, "abc.example.com");
        assert_eq!(
            p.subject_alt_names,
            vec![
                SubjectAltName::Hostname("other.example.com".into()),
                SubjectAltName::Uri("spiffe://abc.example.com/test-identity".into()),
            ]
        );
    }

    #[test]
    fn a_subject_alt_name_without_its_value_names_the_field() {
        let err = policy(serde_json::json!({
            "wellKnownCACertificates": "System",
            "hostname": "abc.example.com",
            "subjectAltNames": [{"type": "URI"}],
        }))
        .to_model()
        .expect_err("a URI SAN needs a uri");
        assert!(
            err.to_string()
                .contains("spec.validation.subjectAltNames[0].uri"),
            "{err}"
        );
    }
}
