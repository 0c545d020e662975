//! BackendTLSPolicies ([`crate::spec::backend_tls`]): each policy's CA references
//! joined to ConfigMaps (one verdict per policy), conflicts resolved per targeted
//! Service and `sectionName`, the winners joined to the Services' ports (a port's
//! own policy ahead of the Service's), and each policy's status for the Gateways
//! whose routes use a Service it targets. A CA change re-derives only its policies
//! and the clusters they apply to.

use serde::{Deserialize, Serialize};

use crate::ir::{BackendTlsIr, ClusterKey, PolicyStatus};
use crate::model::{BackendTlsPolicy, ConfigMap, ObjectKey, Service};
use crate::spec::backend_tls::{PolicyVerdict, precedence, verdict};
use crate::spec::routes::ResolvedRoute;

use super::attach::Attachment;
use super::col::{ByKey, Col, distinct_named, join_named};
use super::left_join::left_join_named;

/// The most ancestors a policy's status lists (the CRD's `maxItems`).
pub const MAX_ANCESTORS: usize = 16;

pub struct Policies<'s> {
    /// The TLS settings of each Service port a policy applies to.
    pub cluster_tls: Col<'s, (ClusterKey, BackendTlsIr)>,
    pub status: Col<'s, PolicyStatus>,
}

/// What a policy's status is made of besides the policy.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Fact {
    /// Its verdict comes first in the group (facts sort by value).
    Verdict(PolicyVerdict),
    /// It lost a conflict to this policy.
    Conflicted(ObjectKey),
    Ancestor(ObjectKey),
}

/// `(Service, sectionName)` a policy targets.
type Target = (ObjectKey, Option<String>);

pub fn policies<'s>(
    policies: Col<'s, BackendTlsPolicy>,
    config_maps: Col<'s, ConfigMap>,
    services_arranged: ByKey<'s, (String, String), Service>,
    serving: Col<'s, (ObjectKey, Attachment)>,
    resolved: Col<'s, (ObjectKey, ResolvedRoute)>,
) -> Policies<'s> {
    let by_key = policies.clone().map(|p| (p.meta.key.clone(), p));
    // Verdicts: the ConfigMaps a policy names ⋈ the ConfigMaps, then per policy.
    let wanted = distinct_named(
        "policy ca refs",
        policies.clone().flat_map(|p| {
            let key = p.meta.key.clone();
            (p.ca_refs.into_iter())
                .filter(|r| r.is_config_map())
                .map(move |r| (ObjectKey::new(&key.namespace, &r.name), key.clone()))
                .collect::<Vec<_>>()
        }),
    );
    let config_maps = config_maps.map(|c| (c.key.clone(), c));
    let found = join_named("policy ca config maps", wanted, config_maps)
        .map(|(_, (policy, c))| (policy, c));
    let verdicts = left_join_named("policy verdicts", by_key.clone(), found, |_, p, found| {
        Some(verdict(p, found))
    });

    // Conflicts: per (Service, sectionName), the policy first by precedence wins.
    let targets = policies.clone().flat_map(|p| {
        let order = precedence(&p);
        (p.targets.iter())
            .filter(|t| t.is_service())
            .map(|t| {
                let service = ObjectKey::new(&p.meta.key.namespace, &t.name);
                ((service, t.section.clone()), order.clone())
            })
            .collect::<Vec<_>>()
    });
    let targets = distinct_named("policy targets", targets);
    let ranked = targets
        .clone()
        .reduce_named("policy precedence", |_, group, out| {
            let mut policies: Vec<&(String, ObjectKey)> = (group.iter())
                .filter(|(_, n)| *n > 0)
                .map(|(p, _)| *p)
                .collect();
            policies.sort();
            if let Some((winner, losers)) = policies.split_first() {
                out.push(((winner.1.clone(), None), 1));
                for (_, loser) in losers {
                    out.push(((loser.clone(), Some(winner.1.clone())), 1));
                }
            }
        });
    let winners: Col<'s, (ObjectKey, Target)> = ranked
        .clone()
        .flat_map(|(target, (policy, lost_to))| lost_to.is_none().then_some((policy, target)));
    let conflicted = ranked.flat_map(|(_, (policy, lost_to))| lost_to.map(|w| (policy, w)));

    // The winners' settings, per port of the Service: a port's own policy first.
    let settings = join_named(
        "winning policies",
        winners,
        join_named("policies with verdicts", by_key.clone(), verdicts.clone())
            .map(|(k, (p, v))| (k, v.tls(&p))),
    )
    .map(|(_, ((service, section), tls))| {
        (
            (service.namespace.clone(), service.name.clone()),
            (section, tls),
        )
    });
    let per_port = settings
        .arrange_by_key_named("winning policies by service")
        .join_core(services_arranged, |_, (section, tls), service| {
            (service.ports.iter())
                .filter(|p| section.as_ref().is_none_or(|s| *s == p.name))
                .map(|p| {
                    let key = ClusterKey::new(service.key.clone(), p.port);
                    (key, (section.is_none(), tls.clone()))
                })
                .collect::<Vec<_>>()
        });
    let cluster_tls = per_port.reduce_named("policy per port", |_, group, out| {
        // The group sorts by (whole Service?, ...): the port's own policy first.
        if let Some(((_, tls), _)) = group.iter().find(|(_, n)| *n > 0) {
            out.push((tls.clone(), 1));
        }
    });

    // Ancestors: the Gateways whose routes use a targeted Service.
    let route_gateways = distinct_named(
        "policy: gateways of routes",
        serving.map(|(route, a)| (route, a.gateway)),
    );
    let route_services = distinct_named(
        "policy: services of routes",
        resolved.flat_map(|(route, r)| {
            (r.clusters.into_iter())
                .map(move |c| (route.clone(), c.service))
                .collect::<Vec<_>>()
        }),
    );
    let gateway_services = distinct_named(
        "policy: services of gateways",
        join_named("policy: routes", route_services, route_gateways)
            .map(|(_, (service, gateway))| (service, gateway)),
    );
    let targeted = distinct_named(
        "policy: targeted services",
        targets.map(|((service, _), (_, policy))| (service, policy)),
    );
    let ancestors = join_named("policy ancestors", targeted, gateway_services)
        .map(|(_, (policy, gateway))| (policy, Fact::Ancestor(gateway)));
    let ancestors = distinct_named("policy ancestors, once", ancestors);
    let facts = verdicts
        .map(|(k, v)| (k, Fact::Verdict(v)))
        .concat(conflicted.map(|(k, w)| (k, Fact::Conflicted(w))))
        .concat(ancestors);
    let status = left_join_named("policy status", by_key, facts, |key, p, facts| {
        let mut verdict = None;
        let mut lost_to = None;
        let mut ancestors = vec![];
        for f in facts {
            match f {
                Fact::Verdict(v) => verdict = Some(v),
                Fact::Conflicted(w) => lost_to = Some(lost_to.map_or(w, |l: &ObjectKey| l.min(w))),
                Fact::Ancestor(g) => ancestors.push(g.clone()),
            }
        }
        ancestors.truncate(MAX_ANCESTORS);
        let verdict = verdict?;
        (!ancestors.is_empty()).then(|| PolicyStatus {
            policy: key.clone(),
            generation: p.meta.generation,
            ancestors,
            conditions: verdict.conditions(lost_to),
        })
    });
    Policies {
        cluster_tls,
        status: status.map(|(_, s)| s),
    }
}
