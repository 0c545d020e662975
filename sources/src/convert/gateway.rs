//! Gateway and its listeners.

use gateway_api::gateways::{
    Gateway, GatewayListeners, GatewayListenersAllowedRoutesNamespaces,
    GatewayListenersAllowedRoutesNamespacesFrom as From, GatewayListenersTls,
    GatewayListenersTlsMode,
};
use sluice_pipeline::model::{
    self, FromNamespaces, GATEWAY_GROUP, GroupKind, Listener, ListenerTls, Object, Protocol,
    SecretRef,
};

use super::{ConvertError, Result, ToModel, each, meta, port, selector::label_selector};

impl ToModel for Gateway {
    type Model = model::Gateway;

    fn to_object(&self) -> Result<Object> {
        self.to_model().map(Object::Gateway)
    }

    fn to_model(&self) -> Result<model::Gateway> {
        let gateway = self;
        Ok(model::Gateway {
            meta: meta::namespaced_meta(&gateway.metadata)?,
            class_name: gateway.spec.gateway_class_name.clone(),
            listeners: each("spec.listeners", Some(&gateway.spec.listeners), listener)?,
            parameters_ref: gateway
                .spec
                .infrastructure
                .as_ref()
                .and_then(|i| i.parameters_ref.as_ref())
                .map(|p| format!("{}/{}/{}", p.group, p.kind, p.name)),
            addresses: (gateway.spec.addresses.iter().flatten())
                .map(|a| model::GatewayAddress {
                    type_: a.r#type.clone().unwrap_or_else(|| "IPAddress".to_owned()),
                    value: a.value.clone().filter(|v| !v.is_empty()),
                })
                .collect(),
            frontend_validation: frontend_validation(gateway)?,
        })
    }
}

/// `spec.tls.frontend`: the default validation (port `None`) and the per-port
/// overrides, each with its `caCertificateRefs` (no defaults: group and kind are
/// required) and `mode` (default `AllowValidOnly`). A per-port entry without
/// `validation` still overrides the default: that port validates no client
/// certificate (kept with no CA refs).
fn frontend_validation(gateway: &Gateway) -> Result<Vec<model::FrontendValidation>> {
    use gateway_api::gateways::{
        GatewayTlsFrontendDefaultValidationMode as DefaultMode,
        GatewayTlsFrontendPerPortTlsValidationMode as PortMode,
    };
    let Some(frontend) = gateway.spec.tls.as_ref().and_then(|t| t.frontend.as_ref()) else {
        return Ok(vec![]);
    };
    let reference = |group: &str, kind: &str, namespace: &Option<String>, name: &str| SecretRef {
        group: group.to_owned(),
        kind: kind.to_owned(),
        namespace: namespace.clone(),
        name: name.to_owned(),
    };
    let mut out = vec![];
    if let Some(v) = &frontend.default.validation {
        out.push(model::FrontendValidation {
            port: None,
            client: model::ClientValidation {
                ca_refs: (v.ca_certificate_refs.iter())
                    .map(|r| reference(&r.group, &r.kind, &r.namespace, &r.name))
                    .collect(),
                insecure_fallback: matches!(v.mode, Some(DefaultMode::AllowInsecureFallback)),
            },
        });
    }
    for (i, p) in frontend.per_port.iter().flatten().enumerate() {
        let field = format!("spec.tls.frontend.perPort[{i}].port");
        let v = p.tls.validation.as_ref();
        out.push(model::FrontendValidation {
            port: Some(port(&field, p.port)?),
            client: model::ClientValidation {
                ca_refs: (v.iter().flat_map(|v| v.ca_certificate_refs.iter()))
                    .map(|r| reference(&r.group, &r.kind, &r.namespace, &r.name))
                    .collect(),
                insecure_fallback: v
                    .is_some_and(|v| matches!(v.mode, Some(PortMode::AllowInsecureFallback))),
            },
        });
    }
    Ok(out)
}

fn listener(l: &GatewayListeners) -> Result<Listener> {
    let routes = l.allowed_routes.as_ref();
    let allowed_kinds = routes
        .and_then(|r| r.kinds.as_ref())
        .into_iter()
        .flatten()
        .map(|k| GroupKind {
            group: k.group.clone().unwrap_or_else(|| GATEWAY_GROUP.to_owned()),
            kind: k.kind.clone(),
        })
        .collect();
    // A malformed selector makes this listener invalid, not the whole Gateway: it is
    // reported in the listener's status and its siblings keep working.
    let (allowed_namespaces, problem) =
        match from_namespaces(routes.and_then(|r| r.namespaces.as_ref())) {
            Ok(allowed) => (allowed, None),
            Err(e) => {
                let e = e.within("allowedRoutes.namespaces");
                (FromNamespaces::Same, Some(e.to_string()))
            }
        };
    Ok(Listener {
        name: l.name.clone(),
        port: port("port", l.port)?,
        protocol: protocol(&l.protocol),
        hostname: l.hostname.as_ref().map(|h| h.to_ascii_lowercase()),
        allowed_namespaces,
        allowed_kinds,
        tls: l.tls.as_ref().map(tls),
        problem,
    })
}

/// A listener protocol; names outside the core set are kept for status reporting.
pub(crate) fn protocol(text: &str) -> Protocol {
    match text {
        "HTTP" => Protocol::Http,
        "HTTPS" => Protocol::Https,
        "TLS" => Protocol::Tls,
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        other => Protocol::Other(other.to_owned()),
    }
}

/// `allowedRoutes.namespaces`; `from` defaults to `Same`.
fn from_namespaces(ns: Option<&GatewayListenersAllowedRoutesNamespaces>) -> Result<FromNamespaces> {
    let from = ns.and_then(|n| n.from.as_ref()).unwrap_or(&From::Same);
    Ok(match from {
        From::Same => FromNamespaces::Same,
        From::All => FromNamespaces::All,
        From::Selector => {
            let Some(sel) = ns.and_then(|n| n.selector.as_ref()) else {
                return Err(ConvertError::new(
                    "selector",
                    "required when from is Selector",
                ));
            };
            let expressions = sel
                .match_expressions
                .iter()
                .flatten()
                .map(|e| (e.key.as_str(), e.operator.as_str(), e.values.as_deref()));
            let selector = label_selector(sel.match_labels.as_ref(), expressions)
                .map_err(|e| e.within("selector"))?;
            FromNamespaces::Selector(selector)
        }
    })
}

/// Listener TLS; `mode` defaults to `Terminate`, certificate refs to core `Secret`.
fn tls(tls: &GatewayListenersTls) -> ListenerTls {
    let certificate_refs = tls
        .certificate_refs
        .iter()
        .flatten()
        .map(|r| SecretRef {
            group: r.group.clone().unwrap_or_default(),
            kind: r.kind.clone().unwrap_or_else(|| "Secret".to_owned()),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        })
        .collect();
    let mode_terminate = !matches!(tls.mode, Some(GatewayListenersTlsMode::Passthrough));
    ListenerTls {
        mode_terminate,
        certificate_refs,
    }
}
