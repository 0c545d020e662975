//! The reference translator: a plain, non-incremental function from the current set
//! of objects to everything the pipeline outputs, written for clarity with nested
//! loops over the objects. It shares with the pipeline only the pure spec functions
//! (listener validity and Gateway conditions, hostname intersection and listener
//! isolation, precedence, and the per-route translation of matches and filters once
//! its backends are resolved); every join the dataflow does (class admission,
//! namespace selection, attachment, ReferenceGrants, Services, virtual hosts,
//! clusters, endpoints, attached-route counts) is re-derived here from the Gateway
//! API spec:
//!
//! * a parentRef (group `gateway.networking.k8s.io`, kind `Gateway`) selects the
//!   listeners of the named Gateway that match its `sectionName` and `port`; none:
//!   `NoMatchingParent`. A listener admits the route when it accepts HTTPRoutes and
//!   its `allowedRoutes.namespaces` admits the route's namespace (`Same`, `All`, or a
//!   label selector over the namespace's labels); none admits it:
//!   `NotAllowedByListeners`. An admitting listener whose hostname does not
//!   intersect the route's: `NoMatchingListenerHostname`. "If 1 of 2 Gateway
//!   listeners accept attachment from the referencing Route, the Route MUST be
//!   considered successfully attached" (`ParentReference.sectionName`).
//! * `attachedRoutes` counts the routes with `Accepted=True` on that listener
//!   (`ListenerStatus.attachedRoutes`), each route once.
//! * a backendRef resolves when it is a core `Service` (else `InvalidKind`), in the
//!   route's namespace or allowed by a ReferenceGrant in the target namespace (else
//!   `RefNotPermitted`), and the Service and port exist (else `BackendNotFound`).
//! * an HTTPS listener's certificateRef resolves when it is a core `Secret` (else
//!   `InvalidCertificateRef`), in the Gateway's namespace or allowed by a
//!   ReferenceGrant from Gateways of that namespace to Secrets (else
//!   `RefNotPermitted`), and the Secret exists with usable data (else
//!   `InvalidCertificateRef`). A listener with at least one valid Secret is a TLS
//!   chain of its port's Envoy listener, and the gateway serves those Secrets.
//! * client certificate validation (`spec.tls.frontend`: the `perPort` entry for
//!   the listener's port, else `default`) of an HTTPS listener: each
//!   caCertificateRef resolves when it is a core `ConfigMap` (else
//!   `InvalidCACertificateKind`), in the Gateway's namespace or granted (else
//!   `RefNotPermitted`), and exists with a usable `ca.crt` (else
//!   `InvalidCACertificateRef`). Certificate failures are reported before CA ones.
//!   None valid: the listener is not accepted (`NoValidCACertificate`) and is no
//!   chain. Otherwise its chain validates clients against one bundle, the valid
//!   ConfigMaps concatenated in order, served per gateway.
//! * a BackendTLSPolicy applies to a cluster (a Service port) when one of its
//!   targetRefs is a core Service of the policy's namespace with that name and names
//!   no sectionName or that port's name. Of the policies naming the same Service and
//!   sectionName, the one created first (then first by namespace/name) applies and
//!   the others are `Accepted=False` / `Conflicted`; a policy naming the port applies
//!   ahead of one naming the whole Service. Its verdict (its caCertificateRefs
//!   against the ConfigMaps of its namespace) is the pure spec function. Its status
//!   lists the Gateways that use a cluster of a Service it targets, sorted, at most
//!   16 (the CRD's `maxItems`); with none it has no status.

use std::collections::{BTreeMap, BTreeSet};

// Every pipeline item the reference uses: the pure spec functions and the records.
use sluice_pipeline::{
    ir::{
        BackendTlsIr, ClientValidationIr, ClusterIr, ClusterKey, Condition, ConditionType,
        EndpointsIr, GatewayStatus, ListenerIr, Outputs, PolicyStatus, Reason, RouteIr,
        RouteParentStatus, SecretIr, SecretMaterial, StatusOutput, TlsChain, VirtualHostIr,
        XdsOutput,
    },
    model::{
        BackendRef, BackendTlsPolicy, ConfigMap, EndpointSlice, FromNamespaces, GATEWAY_GROUP,
        Gateway, HttpRoute, LabelSelector, Namespace, Object, ObjectKey, ParentRef, ReferenceGrant,
        Requirement, Secret, SecretRef, SelectorOp, Service,
    },
    spec::{
        backend_tls::{PolicyVerdict, precedence, verdict as policy_verdict},
        gateway::{ListenerFact, gateway_status},
        hostname::effective,
        listener::{CertificateVerdict, ListenerView, listener_views},
        precedence::Precedence,
        routes::{Resolution, ResolvedRoute, Slot, Unresolved, parent_conditions, resolve_route},
    },
};

/// A virtual host's identity: gateway, port, hostname.
pub type VhostKey = (ObjectKey, u16, String);

/// Everything the pipeline outputs, plus the intermediate facts the oracle measures
/// its coverage with.
#[derive(Debug, Default)]
pub struct Reference {
    pub listeners: BTreeSet<ListenerIr>,
    pub virtual_hosts: BTreeMap<VhostKey, VirtualHostIr>,
    pub gateway_clusters: BTreeSet<(ObjectKey, String)>,
    pub clusters: BTreeSet<ClusterIr>,
    pub endpoints: BTreeSet<EndpointsIr>,
    /// (gateway, Secret) for every Secret a gateway's TLS chains present.
    pub secrets: BTreeSet<(ObjectKey, SecretIr)>,
    pub gateway_status: BTreeSet<GatewayStatus>,
    pub route_status: BTreeSet<RouteParentStatus>,
    pub policy_status: BTreeSet<PolicyStatus>,
    /// (route, gateway, listener name) for every listener a route is attached to.
    pub attachments: BTreeSet<(ObjectKey, ObjectKey, String)>,
    /// How every backend and mirror reference of every route resolves.
    pub resolutions: BTreeMap<(ObjectKey, Slot), Resolution>,
}

impl Reference {
    /// The outputs, each stream sorted, as the pipeline's `evaluate` lists them.
    pub fn outputs(&self) -> Outputs {
        let mut xds: Vec<XdsOutput> = self
            .listeners
            .iter()
            .cloned()
            .map(XdsOutput::Listener)
            .collect();
        xds.extend(
            self.virtual_hosts
                .values()
                .cloned()
                .map(XdsOutput::VirtualHost),
        );
        xds.extend(self.gateway_clusters.iter().map(|(gateway, cluster)| {
            XdsOutput::GatewayCluster {
                gateway: gateway.clone(),
                cluster: cluster.clone(),
            }
        }));
        xds.extend(self.clusters.iter().cloned().map(XdsOutput::Cluster));
        xds.extend(self.endpoints.iter().cloned().map(XdsOutput::Endpoints));
        xds.extend(
            self.secrets
                .iter()
                .map(|(gateway, secret)| XdsOutput::Secret {
                    gateway: gateway.clone(),
                    secret: secret.clone(),
                }),
        );
        let mut status: Vec<StatusOutput> = self
            .gateway_status
            .iter()
            .cloned()
            .map(StatusOutput::Gateway)
            .collect();
        status.extend(self.route_status.iter().cloned().map(StatusOutput::Route));
        status.extend((self.policy_status.iter().cloned()).map(StatusOutput::BackendTlsPolicy));
        xds.sort();
        status.sort();
        Outputs { xds, status }
    }
}

/// The objects, sorted by kind.
#[derive(Default)]
struct World<'a> {
    gateways: Vec<&'a Gateway>,
    routes: Vec<&'a HttpRoute>,
    grants: Vec<&'a ReferenceGrant>,
    services: Vec<&'a Service>,
    slices: Vec<&'a EndpointSlice>,
    namespaces: Vec<&'a Namespace>,
    secrets: Vec<&'a Secret>,
    config_maps: Vec<&'a ConfigMap>,
    policies: Vec<&'a BackendTlsPolicy>,
}

/// Gateways of a GatewayClass whose `controllerName` is ours, and everything else.
fn world<'a>(objects: &'a [Object], controller: &str) -> World<'a> {
    let our_classes: BTreeSet<&str> = objects
        .iter()
        .filter_map(|o| match o {
            Object::GatewayClass(c) if c.controller_name == controller => Some(c.name.as_str()),
            _ => None,
        })
        .collect();
    let mut w = World::default();
    for o in objects {
        match o {
            Object::Gateway(g) if our_classes.contains(g.class_name.as_str()) => w.gateways.push(g),
            Object::HttpRoute(r) => w.routes.push(r),
            Object::ReferenceGrant(g) => w.grants.push(g),
            Object::Service(s) => w.services.push(s),
            Object::EndpointSlice(s) => w.slices.push(s),
            Object::Namespace(n) => w.namespaces.push(n),
            Object::Secret(s) => w.secrets.push(s),
            Object::ConfigMap(c) => w.config_maps.push(c),
            Object::BackendTlsPolicy(p) => w.policies.push(p),
            _ => {}
        }
    }
    w
}

// ---- namespace selection --------------------------------------------------------

/// One requirement of a Kubernetes label selector against a namespace's labels.
fn requirement_holds(r: &Requirement, labels: &[(String, String)]) -> bool {
    let value = labels.iter().find(|(k, _)| *k == r.key).map(|(_, v)| v);
    match r.op {
        SelectorOp::In => value.is_some_and(|v| r.values.contains(v)),
        SelectorOp::NotIn => value.is_none_or(|v| !r.values.contains(v)),
        SelectorOp::Exists => value.is_some(),
        SelectorOp::DoesNotExist => value.is_none(),
    }
}

/// A label selector selects the labels when every requirement holds (so the empty
/// selector selects every namespace).
pub fn selects(selector: &LabelSelector, labels: &[(String, String)]) -> bool {
    selector
        .requirements
        .iter()
        .all(|r| requirement_holds(r, labels))
}

/// Whether the listener's `allowedRoutes.namespaces` admits routes of `route_ns`.
fn namespace_allowed(w: &World, l: &ListenerView, route_ns: &str) -> bool {
    match &l.allowed_namespaces {
        FromNamespaces::All => true,
        FromNamespaces::Same => route_ns == l.gateway.namespace,
        FromNamespaces::Selector(s) => w
            .namespaces
            .iter()
            .any(|n| n.name == route_ns && selects(s, &n.labels)),
    }
}

// ---- attachment -----------------------------------------------------------------

/// The Gateway a parentRef names, when it names a Gateway.
fn parent_gateway(route: &HttpRoute, p: &ParentRef) -> Option<ObjectKey> {
    (p.group == GATEWAY_GROUP && p.kind == "Gateway").then(|| {
        let ns = p.namespace.as_ref().unwrap_or(&route.meta.key.namespace);
        ObjectKey::new(ns.clone(), p.name.clone())
    })
}

/// What one listener of the parent Gateway says to one parentRef.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// The listener is not selected by the parentRef's sectionName / port.
    NotSelected,
    NotAllowed,
    NoHostname,
    Attached,
}

fn verdict(w: &World, route: &HttpRoute, p: &ParentRef, l: &ListenerView) -> Verdict {
    if p.section_name.as_ref().is_some_and(|s| *s != l.name) || p.port.is_some_and(|n| n != l.port)
    {
        Verdict::NotSelected
    } else if !l.accepts_http_routes || !namespace_allowed(w, l, &route.meta.key.namespace) {
        Verdict::NotAllowed
    } else if effective(l.hostname.as_deref(), &route.hostnames).is_empty() {
        Verdict::NoHostname
    } else {
        Verdict::Attached
    }
}

/// The `Accepted` condition of a parentRef, from the verdicts of all the Gateway's
/// listeners: accepted when one listener attaches it.
fn accepted(verdicts: &[Verdict]) -> Condition {
    let any = |v: Verdict| verdicts.contains(&v);
    if any(Verdict::Attached) {
        Condition::new(
            ConditionType::Accepted,
            true,
            Reason::Accepted,
            "Route is accepted",
        )
    } else if any(Verdict::NoHostname) {
        Condition::new(
            ConditionType::Accepted,
            false,
            Reason::NoMatchingListenerHostname,
            "No listener hostname intersects the route's hostnames",
        )
    } else if any(Verdict::NotAllowed) {
        Condition::new(
            ConditionType::Accepted,
            false,
            Reason::NotAllowedByListeners,
            "No listener allows this route",
        )
    } else {
        Condition::new(
            ConditionType::Accepted,
            false,
            Reason::NoMatchingParent,
            "No listener matches the parentRef's sectionName or port",
        )
    }
}

// ---- backend resolution ---------------------------------------------------------

/// Whether a ReferenceGrant in `to_ns` lets HTTPRoutes of `from_ns` reference the
/// Service `name`.
fn granted(w: &World, from_ns: &str, to_ns: &str, name: &str) -> bool {
    w.grants.iter().any(|g| {
        g.key.namespace == to_ns
            && g.from.iter().any(|f| {
                f.group == GATEWAY_GROUP && f.kind == "HTTPRoute" && f.namespace == from_ns
            })
            && g.to.iter().any(|t| {
                t.group.is_empty()
                    && t.kind == "Service"
                    && t.name.as_deref().is_none_or(|n| n == name)
            })
    })
}

fn resolve(w: &World, route: &HttpRoute, b: &BackendRef) -> Resolution {
    if !(b.group.is_empty() && b.kind == "Service") {
        return Err(Unresolved::InvalidKind);
    }
    let route_ns = &route.meta.key.namespace;
    let ns = b.namespace.as_ref().unwrap_or(route_ns);
    if ns != route_ns && !granted(w, route_ns, ns, &b.name) {
        return Err(Unresolved::RefNotPermitted);
    }
    let key = ObjectKey::new(ns.clone(), b.name.clone());
    let service = w.services.iter().find(|s| s.key == key);
    let port = service
        .zip(b.port)
        .and_then(|(s, port)| s.ports.iter().find(|p| p.port == port).map(|p| (s, p)));
    let (service, port) = port.ok_or(Unresolved::BackendNotFound)?;
    Ok(ClusterIr::new(
        ClusterKey::new(service.key.clone(), port.port),
        port.app_protocol.clone(),
    ))
}

/// Every backendRef and RequestMirror reference of a route, resolved.
fn route_resolutions(w: &World, route: &HttpRoute) -> BTreeMap<Slot, Resolution> {
    let mut out = BTreeMap::new();
    for (rule, r) in route.rules.iter().enumerate() {
        for (index, b) in r.backends.iter().enumerate() {
            out.insert(Slot::Backend { rule, index }, resolve(w, route, b));
        }
        for (index, f) in r.filters.iter().enumerate() {
            if let sluice_pipeline::model::Filter::Mirror(m) = f {
                out.insert(Slot::Mirror { rule, index }, resolve(w, route, &m.backend));
            }
        }
    }
    out
}

// ---- the translation ------------------------------------------------------------

/// Translate the current objects for the controller `controller`.
pub fn translate(objects: &[Object], controller: &str) -> Reference {
    let w = world(objects, controller);
    let mut out = Reference::default();
    let mut resolved: BTreeMap<ObjectKey, ResolvedRoute> = BTreeMap::new();
    for route in &w.routes {
        let map = route_resolutions(&w, route);
        for (slot, r) in &map {
            out.resolutions
                .insert((route.meta.key.clone(), *slot), r.clone());
        }
        resolved.insert(route.meta.key.clone(), resolve_route(route, &map));
    }
    // Routes (by key) on each virtual host.
    let mut on_vhost: BTreeMap<VhostKey, BTreeSet<ObjectKey>> = BTreeMap::new();
    for gw in &w.gateways {
        attach_to_gateway(&w, gw, &resolved, &mut on_vhost, &mut out);
    }
    build_virtual_hosts(&on_vhost, &resolved, &mut out);
    build_clusters(&w, &on_vhost, &resolved, &mut out);
    build_policy_status(&w, &mut out);
    out
}

/// Attach every route to one Gateway: its listeners, route statuses, attached-route
/// counts, and the routes on each of its virtual hosts.
fn attach_to_gateway(
    w: &World,
    gw: &Gateway,
    resolved: &BTreeMap<ObjectKey, ResolvedRoute>,
    on_vhost: &mut BTreeMap<VhostKey, BTreeSet<ObjectKey>>,
    out: &mut Reference,
) {
    let key = &gw.meta.key;
    let views = listener_views(gw, u16::MAX);
    let mut chains: BTreeMap<u16, Vec<TlsChain>> = BTreeMap::new();
    let mut verdicts = vec![];
    for v in views.iter().filter(|v| v.serves_http) {
        if v.certificate_refs.is_empty() {
            out.listeners.insert(ListenerIr {
                gateway: key.clone(),
                port: v.port,
                tls: vec![],
            });
        } else {
            let verdict = certificate_verdict(w, gw, v);
            let no_valid_ca = verdict.client_ca.as_ref().is_some_and(Vec::is_empty);
            if !verdict.secrets.is_empty() && !no_valid_ca {
                let client_validation = match (&v.client_validation, &verdict.client_ca) {
                    (Some(c), Some(cas)) => {
                        let bundle: String = cas
                            .iter()
                            .filter_map(|n| {
                                w.config_maps.iter().find(|c| secret_name(&c.key) == *n)
                            })
                            .map(|c| match c.ca_bundle.ends_with('\n') {
                                true => c.ca_bundle.clone(),
                                false => format!("{}\n", c.ca_bundle),
                            })
                            .collect();
                        let name = format!("configmap:{}", cas.join(","));
                        out.secrets.insert((
                            key.clone(),
                            SecretIr {
                                name: name.clone(),
                                material: SecretMaterial::TrustedCa(bundle),
                            },
                        ));
                        Some(ClientValidationIr {
                            ca: name,
                            insecure_fallback: c.insecure_fallback,
                        })
                    }
                    _ => None,
                };
                chains.entry(v.port).or_default().push(TlsChain {
                    hostname: v.hostname.clone(),
                    secrets: verdict.secrets.clone(),
                    client_validation,
                });
            }
            // The Secrets of the listeners that are chains.
            let chain = !verdict.secrets.is_empty() && !no_valid_ca;
            for name in verdict.secrets.iter().filter(|_| chain) {
                let s = w.secrets.iter().find(|s| secret_name(&s.key) == *name);
                if let Some(s) = s {
                    out.secrets.insert((
                        key.clone(),
                        SecretIr {
                            name: name.clone(),
                            material: SecretMaterial::Certificate {
                                cert_chain: s.cert_chain.clone(),
                                private_key: s.private_key.clone(),
                            },
                        },
                    ));
                }
            }
            verdicts.push(ListenerFact::Certificates(v.name.clone(), verdict));
        }
        let host = v.hostname.clone().unwrap_or_else(|| "*".to_string());
        on_vhost.entry((key.clone(), v.port, host)).or_default();
    }
    for (port, mut tls) in chains {
        tls.sort();
        out.listeners.insert(ListenerIr {
            gateway: key.clone(),
            port,
            tls,
        });
    }
    for route in &w.routes {
        for (index, p) in route.parent_refs.iter().enumerate() {
            if parent_gateway(route, p).as_ref() != Some(key) {
                continue;
            }
            let verdicts: Vec<Verdict> = views.iter().map(|v| verdict(w, route, p, v)).collect();
            for (v, _) in views
                .iter()
                .zip(&verdicts)
                .filter(|(_, x)| **x == Verdict::Attached)
            {
                out.attachments
                    .insert((route.meta.key.clone(), key.clone(), v.name.clone()));
                if !v.serves_http {
                    continue;
                }
                for h in effective(v.hostname.as_deref(), &route.hostnames) {
                    if v.owns(&h) {
                        let vk = (key.clone(), v.port, h);
                        on_vhost
                            .entry(vk)
                            .or_default()
                            .insert(route.meta.key.clone());
                    }
                }
            }
            let Some(r) = resolved.get(&route.meta.key) else {
                continue;
            };
            let conditions = parent_conditions(
                accepted(&verdicts),
                r.resolved_refs.clone(),
                r.validity.as_ref(),
            );
            out.route_status.insert(RouteParentStatus {
                route: route.meta.key.clone(),
                generation: route.meta.generation,
                index,
                parent: p.clone(),
                conditions,
            });
        }
    }
    let status = status_of_gateway(gw, &views, &verdicts, out);
    out.gateway_status.insert(status);
}

/// The Gateway's status, counting the routes attached to each of its listeners.
fn status_of_gateway(
    gw: &Gateway,
    views: &[ListenerView],
    verdicts: &[ListenerFact],
    out: &Reference,
) -> GatewayStatus {
    let key = &gw.meta.key;
    let mut facts: Vec<ListenerFact> = views
        .iter()
        .map(|v| {
            let n = out
                .attachments
                .iter()
                .filter(|(_, g, l)| g == key && *l == v.name)
                .count();
            ListenerFact::Attached(v.name.clone(), u32::try_from(n).unwrap_or(u32::MAX))
        })
        .collect();
    facts.extend(verdicts.iter().cloned());
    let facts: Vec<&ListenerFact> = facts.iter().collect();
    gateway_status(gw, &facts, u16::MAX, "0.0.0.0")
}

fn secret_name(key: &ObjectKey) -> String {
    format!("{}/{}", key.namespace, key.name)
}

/// How an HTTPS listener's certificateRefs, then its client validation's
/// caCertificateRefs, resolve, reference by reference.
fn certificate_verdict(w: &World, gw: &Gateway, v: &ListenerView) -> CertificateVerdict {
    let gw_ns = &gw.meta.key.namespace;
    let mut verdict = CertificateVerdict::default();
    let mut failures: Vec<(Reason, String)> = vec![];
    let secret =
        |key: &ObjectKey| (w.secrets.iter().find(|s| s.key == *key)).map(|s| s.problem.clone());
    let config_map =
        |key: &ObjectKey| (w.config_maps.iter().find(|c| c.key == *key)).map(|c| c.problem.clone());
    let certificates = References {
        field: "tls.certificateRefs",
        kind: "Secret",
        invalid_kind: Reason::InvalidCertificateRef,
        invalid_ref: Reason::InvalidCertificateRef,
        lookup: &secret,
    };
    verdict.secrets = certificates.resolve(w, gw_ns, &v.certificate_refs, &mut failures);
    if let Some(c) = &v.client_validation {
        let cas = References {
            field: "client validation caCertificateRefs",
            kind: "ConfigMap",
            invalid_kind: Reason::InvalidCACertificateKind,
            invalid_ref: Reason::InvalidCACertificateRef,
            lookup: &config_map,
        };
        verdict.client_ca = Some(cas.resolve(w, gw_ns, &c.ca_refs, &mut failures));
    }
    if let Some((reason, _)) = failures.first() {
        let msgs: Vec<String> = failures.iter().map(|(_, m)| m.clone()).collect();
        verdict.problem = Some((*reason, msgs.join("; ")));
    }
    verdict
}

/// One kind of reference a listener makes (certificates, CA bundles).
struct References<'a> {
    field: &'a str,
    kind: &'a str,
    invalid_kind: Reason,
    invalid_ref: Reason,
    /// The object's problem (`Some(None)`: usable), `None` when it does not exist.
    lookup: &'a dyn Fn(&ObjectKey) -> Option<Option<String>>,
}

impl References<'_> {
    /// The names of the usable objects, in reference order; failures appended.
    fn resolve(
        &self,
        w: &World,
        gw_ns: &String,
        refs: &[SecretRef],
        failures: &mut Vec<(Reason, String)>,
    ) -> Vec<String> {
        let mut names = vec![];
        for (i, r) in refs.iter().enumerate() {
            let ns = r.namespace.clone().unwrap_or_else(|| gw_ns.clone());
            let what = format!("{}[{i}] {ns}/{}", self.field, r.name);
            if !(r.group.is_empty() && r.kind == self.kind) {
                let msg = format!(
                    "{what}: kind {}/{} is not supported (only core {}s)",
                    r.group, r.kind, self.kind
                );
                failures.push((self.invalid_kind, msg));
                continue;
            }
            let granted = w.grants.iter().any(|g| {
                g.key.namespace == ns
                    && g.from.iter().any(|f| {
                        f.group == GATEWAY_GROUP && f.kind == "Gateway" && f.namespace == *gw_ns
                    })
                    && g.to.iter().any(|t| {
                        t.group.is_empty()
                            && t.kind == self.kind
                            && t.name.as_ref().is_none_or(|n| *n == r.name)
                    })
            });
            if ns != *gw_ns && !granted {
                let msg =
                    format!("{what}: no ReferenceGrant in {ns} lets Gateways of {gw_ns} use it");
                failures.push((Reason::RefNotPermitted, msg));
                continue;
            }
            let key = ObjectKey::new(ns.clone(), r.name.clone());
            match (self.lookup)(&key) {
                None => {
                    failures.push((self.invalid_ref, format!("{what}: {} not found", self.kind)))
                }
                Some(Some(p)) => failures.push((self.invalid_ref, format!("{what}: {p}"))),
                Some(None) => {
                    let name = secret_name(&key);
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
        names
    }
}

/// Each virtual host lists every match of every rule of its routes, in precedence
/// order.
fn build_virtual_hosts(
    on_vhost: &BTreeMap<VhostKey, BTreeSet<ObjectKey>>,
    resolved: &BTreeMap<ObjectKey, ResolvedRoute>,
    out: &mut Reference,
) {
    for ((gateway, port, hostname), routes) in on_vhost {
        let mut entries: Vec<&(Precedence, RouteIr)> = routes
            .iter()
            .filter_map(|r| resolved.get(r))
            .flat_map(|r| r.entries.iter())
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let vh = VirtualHostIr {
            gateway: gateway.clone(),
            port: *port,
            hostname: hostname.clone(),
            routes: entries.into_iter().map(|(_, e)| e.clone()).collect(),
        };
        out.virtual_hosts
            .insert((gateway.clone(), *port, hostname.clone()), vh);
    }
}

/// A gateway needs every cluster its virtual hosts' routes reference; each cluster
/// gets the ready endpoints of its Service port.
fn build_clusters(
    w: &World,
    on_vhost: &BTreeMap<VhostKey, BTreeSet<ObjectKey>>,
    resolved: &BTreeMap<ObjectKey, ResolvedRoute>,
    out: &mut Reference,
) {
    for ((gateway, _, _), routes) in on_vhost {
        for r in routes.iter().filter_map(|r| resolved.get(r)) {
            for c in &r.clusters {
                out.gateway_clusters
                    .insert((gateway.clone(), c.name.clone()));
                out.clusters.insert(ClusterIr {
                    tls: cluster_tls(w, c),
                    ..c.clone()
                });
            }
        }
    }
    for c in &out.clusters {
        if let Some(e) = endpoints(w, c) {
            out.endpoints.insert(e);
        }
    }
}

/// The ready endpoints of a cluster: addresses of the Service's EndpointSlices (by
/// their `kubernetes.io/service-name` label) on the slice port named like the
/// Service port; `None` when there are none.
fn endpoints(w: &World, c: &ClusterIr) -> Option<EndpointsIr> {
    let service = w.services.iter().find(|s| s.key == c.service)?;
    let port = service.ports.iter().find(|p| p.port == c.port)?;
    let mut eps = BTreeSet::new();
    for s in &w.slices {
        if s.key.namespace != c.service.namespace
            || s.service_name.as_deref() != Some(c.service.name.as_str())
        {
            continue;
        }
        for sp in s.ports.iter().filter(|sp| sp.name == port.name) {
            for a in &s.addresses {
                eps.insert((a.clone(), sp.port));
            }
        }
    }
    (!eps.is_empty()).then(|| EndpointsIr {
        cluster: c.name.clone(),
        endpoints: eps.into_iter().collect(),
    })
}

// ---- BackendTLSPolicy -----------------------------------------------------------

/// The policies of the Service's namespace whose targetRefs name the Service with
/// exactly `section`, first by precedence.
fn contenders<'a>(
    w: &World<'a>,
    service: &ObjectKey,
    section: Option<&str>,
) -> Vec<&'a BackendTlsPolicy> {
    let mut found: Vec<&BackendTlsPolicy> = (w.policies.iter().copied())
        .filter(|p| {
            p.meta.key.namespace == service.namespace
                && p.targets.iter().any(|t| {
                    t.group.is_empty()
                        && t.kind == "Service"
                        && t.name == service.name
                        && t.section.as_deref() == section
                })
        })
        .collect();
    found.sort_by_key(|p| precedence(p));
    found
}

/// The policy's verdict over the ConfigMaps of its namespace that it names.
fn verdict_of(w: &World, p: &BackendTlsPolicy) -> PolicyVerdict {
    let found: Vec<&ConfigMap> = (w.config_maps.iter().copied())
        .filter(|c| {
            c.key.namespace == p.meta.key.namespace
                && (p.ca_refs.iter()).any(|r| r.is_config_map() && r.name == c.key.name)
        })
        .collect();
    policy_verdict(p, &found)
}

/// TLS to a cluster: the first policy naming its port, else the first naming its
/// whole Service.
fn cluster_tls(w: &World, c: &ClusterIr) -> Option<BackendTlsIr> {
    let service = w.services.iter().find(|s| s.key == c.service)?;
    let port = service.ports.iter().find(|p| p.port == c.port)?;
    let winner = (contenders(w, &c.service, Some(&port.name)).first().copied())
        .or_else(|| contenders(w, &c.service, None).first().copied())?;
    Some(verdict_of(w, winner).tls(winner))
}

/// Every policy's status, over the Gateways using a cluster of a Service it targets.
fn build_policy_status(w: &World, out: &mut Reference) {
    for p in &w.policies {
        let ns = &p.meta.key.namespace;
        let targets: Vec<(ObjectKey, Option<&str>)> = (p.targets.iter())
            .filter(|t| t.group.is_empty() && t.kind == "Service")
            .map(|t| {
                (
                    ObjectKey::new(ns.clone(), t.name.clone()),
                    t.section.as_deref(),
                )
            })
            .collect();
        let ancestors: BTreeSet<ObjectKey> = (out.gateway_clusters.iter())
            .filter(|(_, cluster)| {
                (out.clusters.iter())
                    .any(|c| c.name == *cluster && targets.iter().any(|(svc, _)| *svc == c.service))
            })
            .map(|(gateway, _)| gateway.clone())
            .collect();
        if ancestors.is_empty() {
            continue;
        }
        let lost_to = (targets.iter())
            .filter_map(|(service, section)| {
                let first = contenders(w, service, *section).first().copied()?;
                (first.meta.key != p.meta.key).then(|| first.meta.key.clone())
            })
            .min();
        out.policy_status.insert(PolicyStatus {
            policy: p.meta.key.clone(),
            generation: p.meta.generation,
            ancestors: ancestors.into_iter().take(16).collect(),
            conditions: verdict_of(w, p).conditions(lost_to.as_ref()),
        });
    }
}
