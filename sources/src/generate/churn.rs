//! Seeded change streams over a generated cluster, labelled by change type.
//!
//! The generator keeps its own copy of the objects, so every change it emits is
//! valid for the state the previous ones left (a route is updated only while it
//! exists, an endpoint removed only from a slice that has it). Each change also
//! records its inverse; [`Churn::cycle`] emits the changes of a mix and then their
//! inverses in reverse order, which returns the cluster exactly to where it was.

use std::collections::BTreeMap;

use sluice_pipeline::model::*;

use super::Shape;
use super::cluster::{self, EXPOSED_LABEL, exposed_selector, namespace_name};
use super::rng::Rng;

/// The kinds of change the churn generator makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeType {
    EndpointAdd,
    EndpointRemove,
    /// An endpoint goes unready (removed from its slice), later ready again.
    EndpointFlap,
    RouteAdd,
    RouteUpdate,
    RouteDelete,
    ServiceAdd,
    ServiceDelete,
    /// A namespace's `sluice.dev/exposed` label flips, so listener selectors
    /// admit or drop all its routes.
    NamespaceRelabel,
    /// A listener switches between admitting all namespaces and a selector.
    GatewayListener,
}

impl ChangeType {
    pub const ALL: [ChangeType; 10] = [
        ChangeType::EndpointAdd,
        ChangeType::EndpointRemove,
        ChangeType::EndpointFlap,
        ChangeType::RouteAdd,
        ChangeType::RouteUpdate,
        ChangeType::RouteDelete,
        ChangeType::ServiceAdd,
        ChangeType::ServiceDelete,
        ChangeType::NamespaceRelabel,
        ChangeType::GatewayListener,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ChangeType::EndpointAdd => "endpoint_add",
            ChangeType::EndpointRemove => "endpoint_remove",
            ChangeType::EndpointFlap => "endpoint_flap",
            ChangeType::RouteAdd => "route_add",
            ChangeType::RouteUpdate => "route_update",
            ChangeType::RouteDelete => "route_delete",
            ChangeType::ServiceAdd => "service_add",
            ChangeType::ServiceDelete => "service_delete",
            ChangeType::NamespaceRelabel => "namespace_relabel",
            ChangeType::GatewayListener => "gateway_listener",
        }
    }

    /// The type of the change that undoes one of this type.
    pub fn inverse(self) -> ChangeType {
        match self {
            ChangeType::EndpointAdd => ChangeType::EndpointRemove,
            ChangeType::EndpointRemove => ChangeType::EndpointAdd,
            ChangeType::RouteAdd => ChangeType::RouteDelete,
            ChangeType::RouteDelete => ChangeType::RouteAdd,
            ChangeType::ServiceAdd => ChangeType::ServiceDelete,
            ChangeType::ServiceDelete => ChangeType::ServiceAdd,
            same => same,
        }
    }
}

impl std::str::FromStr for ChangeType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChangeType::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| format!("unknown change type {s:?}"))
    }
}

/// How many changes of each type one cycle makes (before its undo half).
pub type Mix = BTreeMap<ChangeType, usize>;

/// One change and its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Labelled {
    pub kind: ChangeType,
    pub change: Change,
}

/// What undoes one emitted change.
#[derive(Debug)]
struct Undo {
    kind: ChangeType,
    id: ObjectId,
    previous: Option<Object>,
}

/// A seeded change generator over a cluster's objects.
#[derive(Debug)]
pub struct Churn {
    shape: Shape,
    rng: Rng,
    state: BTreeMap<ObjectId, Object>,
    /// Ids by kind, for picking: every id ever seen (some may be gone now).
    ids: BTreeMap<Kind, Vec<ObjectId>>,
    /// A counter for fresh names and addresses.
    fresh: u64,
}

const PICK_ATTEMPTS: usize = 32;
const CHURN_ADDRESSES: u32 = (172 << 24) | (16 << 16);

impl Churn {
    pub fn new(shape: &Shape, objects: &[Object], seed: u64) -> Self {
        let mut ids: BTreeMap<Kind, Vec<ObjectId>> = BTreeMap::new();
        let state: BTreeMap<ObjectId, Object> = objects
            .iter()
            .map(|o| {
                let id = o.id();
                ids.entry(id.kind).or_default().push(id.clone());
                (id, o.clone())
            })
            .collect();
        Self {
            shape: shape.clone(),
            rng: Rng::new(seed ^ 0x00c4_a5e0),
            state,
            ids,
            fresh: 0,
        }
    }

    /// The objects as the changes so far left them.
    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.state.values()
    }

    /// The changes of `mix`, shuffled, followed by their inverses in reverse order:
    /// afterwards the state equals the state before. A type whose change cannot be
    /// made (nothing to pick) is skipped.
    pub fn cycle(&mut self, mix: &Mix) -> Vec<Labelled> {
        let mut order: Vec<ChangeType> = mix
            .iter()
            .flat_map(|(t, n)| std::iter::repeat_n(*t, *n))
            .collect();
        self.rng.shuffle(&mut order);
        let mut out = vec![];
        let mut undos = vec![];
        for kind in order {
            if let Some((changes, undo)) = self.make(kind) {
                out.extend(changes);
                undos.extend(undo);
            }
        }
        for undo in undos.into_iter().rev() {
            let change = match undo.previous {
                Some(obj) => Change::Apply(obj),
                None => Change::Delete(undo.id),
            };
            self.record(&change);
            out.push(Labelled {
                kind: undo.kind,
                change,
            });
        }
        out
    }

    /// One change of `kind` (two for a flap: down and up), applied to the state.
    fn make(&mut self, kind: ChangeType) -> Option<(Vec<Labelled>, Vec<Undo>)> {
        if kind == ChangeType::EndpointFlap {
            return self.flap();
        }
        let change = match kind {
            ChangeType::EndpointAdd => self.endpoint_add(),
            ChangeType::EndpointRemove => self.endpoint_remove(),
            ChangeType::RouteAdd => self.route_add(),
            ChangeType::RouteUpdate => self.route_update(),
            ChangeType::RouteDelete => self.pick_existing(Kind::HttpRoute).map(Change::Delete),
            ChangeType::ServiceAdd => self.service_add(),
            ChangeType::ServiceDelete => self.pick_existing(Kind::Service).map(Change::Delete),
            ChangeType::NamespaceRelabel => self.relabel(),
            ChangeType::GatewayListener => self.listener_change(),
            ChangeType::EndpointFlap => None,
        }?;
        let undo = self.record(&change);
        let undo = Undo {
            kind: kind.inverse(),
            ..undo
        };
        Some((vec![Labelled { kind, change }], vec![undo]))
    }

    /// An endpoint goes away and comes back: two changes, nothing to undo.
    fn flap(&mut self) -> Option<(Vec<Labelled>, Vec<Undo>)> {
        let down = self.endpoint_remove()?;
        let undo = self.record(&down);
        let up = Change::Apply(undo.previous?);
        self.record(&up);
        let label = |change| Labelled {
            kind: ChangeType::EndpointFlap,
            change,
        };
        Some((vec![label(down), label(up)], vec![]))
    }

    /// Applies a change to the state; returns what undoes it.
    fn record(&mut self, change: &Change) -> Undo {
        let (id, previous) = match change {
            Change::Apply(obj) => {
                let id = obj.id();
                if !self.state.contains_key(&id) {
                    self.ids.entry(id.kind).or_default().push(id.clone());
                }
                (id.clone(), self.state.insert(id, obj.clone()))
            }
            Change::Delete(id) => (id.clone(), self.state.remove(id)),
        };
        Undo {
            kind: ChangeType::EndpointFlap,
            id,
            previous,
        }
    }

    fn pick_existing(&mut self, kind: Kind) -> Option<ObjectId> {
        let ids = self.ids.get(&kind)?;
        for _ in 0..PICK_ATTEMPTS {
            let id = &ids[self.rng.below(ids.len())];
            if self.state.contains_key(id) {
                return Some(id.clone());
            }
        }
        None
    }

    /// An existing object of `kind` for which `accept` returns a changed copy.
    fn modify(
        &mut self,
        kind: Kind,
        accept: impl Fn(&mut Self, &Object) -> Option<Object>,
    ) -> Option<Change> {
        for _ in 0..PICK_ATTEMPTS {
            let id = self.pick_existing(kind)?;
            let obj = self.state.get(&id)?.clone();
            if let Some(new) = accept(self, &obj) {
                return Some(Change::Apply(new));
            }
        }
        None
    }

    fn fresh(&mut self) -> u64 {
        self.fresh += 1;
        self.fresh
    }

    fn endpoint_add(&mut self) -> Option<Change> {
        self.modify(Kind::EndpointSlice, |this, obj| {
            let Object::EndpointSlice(mut s) = obj.clone() else {
                return None;
            };
            let n = this.fresh();
            s.addresses.push(cluster::address(CHURN_ADDRESSES, n));
            s.addresses.sort();
            Some(Object::EndpointSlice(s))
        })
    }

    /// Removes one address from a slice that keeps at least one.
    fn endpoint_remove(&mut self) -> Option<Change> {
        self.modify(Kind::EndpointSlice, |this, obj| {
            let Object::EndpointSlice(mut s) = obj.clone() else {
                return None;
            };
            if s.addresses.len() < 2 {
                return None;
            }
            let i = this.rng.below(s.addresses.len());
            s.addresses.remove(i);
            Some(Object::EndpointSlice(s))
        })
    }

    fn route_add(&mut self) -> Option<Change> {
        let ns = self.rng.below(self.shape.namespaces.max(1));
        let name = format!("churn-route-{}", self.fresh());
        let route = cluster::route(&self.shape, &mut self.rng, ns, &name);
        Some(Change::Apply(Object::HttpRoute(route)))
    }

    /// Changes one rule's first path and its backends' weights.
    fn route_update(&mut self) -> Option<Change> {
        self.modify(Kind::HttpRoute, |this, obj| {
            let Object::HttpRoute(mut r) = obj.clone() else {
                return None;
            };
            let n = this.fresh();
            let i = this.rng.below(r.rules.len());
            let rule = r.rules.get_mut(i)?;
            if let Some(m) = rule.matches.first_mut() {
                m.path = PathMatch::Prefix(format!("/{}/updated-{n}", r.meta.key.name));
            }
            for b in &mut rule.backends {
                b.weight = this.rng.between(1, 100) as u32;
            }
            r.meta.generation += 1;
            Some(Object::HttpRoute(r))
        })
    }

    fn service_add(&mut self) -> Option<Change> {
        let ns = namespace_name(self.rng.below(self.shape.namespaces.max(1)));
        let name = format!("churn-svc-{}", self.fresh());
        Some(Change::Apply(super::records::service(&ns, &name)))
    }

    /// Flips a route namespace's `sluice.dev/exposed` label.
    fn relabel(&mut self) -> Option<Change> {
        self.modify(Kind::Namespace, |_, obj| {
            let Object::Namespace(mut ns) = obj.clone() else {
                return None;
            };
            let label = ns.labels.iter_mut().find(|(k, _)| k == EXPOSED_LABEL)?;
            label.1 = if label.1 == "true" { "false" } else { "true" }.into();
            Some(Object::Namespace(ns))
        })
    }

    /// Switches one listener between `All` and the exposed-namespaces selector.
    fn listener_change(&mut self) -> Option<Change> {
        self.modify(Kind::Gateway, |this, obj| {
            let Object::Gateway(mut g) = obj.clone() else {
                return None;
            };
            let i = this.rng.below(g.listeners.len());
            let l = g.listeners.get_mut(i)?;
            l.allowed_namespaces = match l.allowed_namespaces {
                FromNamespaces::All => exposed_selector(),
                _ => FromNamespaces::All,
            };
            g.meta.generation += 1;
            Some(Object::Gateway(g))
        })
    }
}

/// Endpoint churn of about `count` changes: a third each of adds, removes and
/// flaps (a flap is two changes, down and up).
pub fn endpoint_mix(count: usize) -> Mix {
    [
        (ChangeType::EndpointAdd, count / 3),
        (ChangeType::EndpointRemove, count / 3),
        (ChangeType::EndpointFlap, (count - 2 * (count / 3)) / 2),
    ]
    .into_iter()
    .collect()
}
