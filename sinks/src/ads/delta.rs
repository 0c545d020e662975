//! The incremental variant (`DeltaAggregatedResources`).
//!
//! Per type the stream keeps the version of every resource the proxy holds: what it
//! was sent, or on reconnect what it reported in `initial_resource_versions`. Every
//! request or publication sends, in [`WARMING_ORDER`], only resources whose version
//! differs, and names in `removed_resources` what the proxy holds but no longer
//! exists. A name the proxy subscribes to that does not exist is reported as
//! removed, so it need not wait for a timeout.
//!
//! Subscription changes are applied even when the request's nonce is stale: they
//! are incremental and the proxy does not repeat them. Only the ACK/NACK part of a
//! stale request is ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as DeltaResource,
};
use tonic::Status;

use crate::state::{GatewayResources, ResourceMap, ResourceType};

use super::sotw::to_any;
use super::stream::{Protocol, StreamCtx};
use super::subscription::Subscription;
use super::verdict::Inflight;
use super::warming::{Diff, WARMING_ORDER};

/// One stream's incremental state.
#[derive(Debug)]
pub struct Delta {
    ctx: StreamCtx,
    current: Arc<GatewayResources>,
    types: [TypeState; crate::state::TYPES],
}

#[derive(Debug, Default)]
struct TypeState {
    /// `None` until the proxy first asks for the type.
    sub: Option<Subscription>,
    /// Name → version the proxy holds, limited to the names it wants.
    known: BTreeMap<String, String>,
    /// Newly subscribed names, reported as removed if they do not exist.
    absent: BTreeSet<String>,
    /// The nonce of the latest response.
    nonce: Option<String>,
    /// A type's first request is always answered, if only with an empty response.
    must_respond: bool,
    /// Responses not answered yet, for the hub's verdicts.
    inflight: Inflight,
    /// The offered set `known` was last brought up to; `None` after a subscription
    /// change (the next sync diffs everything).
    base: Option<ResourceMap>,
}

impl Protocol for Delta {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
    const NAME: &'static str = "delta";

    fn node(request: &DeltaDiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }

    fn new(ctx: StreamCtx, current: Arc<GatewayResources>) -> Self {
        Self {
            ctx,
            current,
            types: Default::default(),
        }
    }

    fn on_request(
        &mut self,
        req: DeltaDiscoveryRequest,
    ) -> Result<Vec<DeltaDiscoveryResponse>, Status> {
        let Some(ty) = self.ctx.type_of(&req.type_url)? else {
            return Ok(Vec::new());
        };
        let t = &mut self.types[ty.index()];
        // Every answered response gets its verdict, stale or not.
        let detail = req.error_detail.as_ref();
        (self.ctx).verdict(ty, &mut t.inflight, &req.response_nonce, detail);
        let stale = self
            .ctx
            .is_stale(ty, &req.response_nonce, t.nonce.as_deref());
        match req.error_detail.as_ref() {
            _ if stale => {}
            // `known` keeps the rejected versions, so they are not resent.
            Some(detail) => self.ctx.nack(ty, &req.response_nonce, detail),
            None if !req.response_nonce.is_empty() => self.ctx.ack(),
            None => {}
        }
        let first = t.sub.is_none();
        if first
            || !req.resource_names_subscribe.is_empty()
            || !req.resource_names_unsubscribe.is_empty()
        {
            t.base = None;
        }
        let mut sub = t.sub.take().unwrap_or_default();
        let added = sub.apply_delta(
            ty,
            first,
            &req.resource_names_subscribe,
            &req.resource_names_unsubscribe,
        );
        if first {
            t.known = req.initial_resource_versions.into_iter().collect();
            t.must_respond = true;
        }
        t.known.retain(|name, _| sub.wants(name));
        t.absent.extend(added);
        t.sub = Some(sub);
        Ok(self.sync())
    }

    fn on_publish(&mut self, state: Arc<GatewayResources>) -> Vec<DeltaDiscoveryResponse> {
        self.current = state;
        self.sync()
    }
}

impl Delta {
    /// Brings every requested type up to `current`, in warming order.
    fn sync(&mut self) -> Vec<DeltaDiscoveryResponse> {
        let mut out = Vec::new();
        let mut diffs: [Option<Diff>; crate::state::TYPES] = Default::default();
        for ty in ResourceType::ALL {
            let t = &mut self.types[ty.index()];
            let Some(sub) = &t.sub else { continue };
            let diff = Diff::sync(ty, sub, &mut t.base, &self.current, &t.known);
            diffs[ty.index()] = Some(diff);
        }
        for phase in WARMING_ORDER {
            let t = &mut self.types[phase.ty.index()];
            let Some(diff) = diffs[phase.ty.index()].as_mut() else {
                continue;
            };
            let mut diff = diff.take(phase);
            // Names never held have no place in the warming order: report them
            // with the type's first message.
            if phase.upserts && !t.absent.is_empty() {
                let absent = std::mem::take(&mut t.absent);
                let offered = t.base.as_ref();
                diff.removals.extend(absent.into_iter().filter(|n| {
                    !offered.is_some_and(|o| o.contains_key(n)) && !t.known.contains_key(n)
                }));
            }
            if diff.is_empty() {
                continue;
            }
            for name in &diff.removals {
                t.known.remove(name);
            }
            for (name, r) in &diff.upserts {
                t.known.insert(name.clone(), r.version.clone());
            }
            out.push(self.respond(phase.ty, diff));
        }
        for ty in ResourceType::ALL {
            if self.types[ty.index()].must_respond {
                out.push(self.respond(ty, Diff::default()));
            }
        }
        out
    }

    /// A response carrying `diff`, recorded as the type's latest.
    fn respond(&mut self, ty: ResourceType, diff: Diff) -> DeltaDiscoveryResponse {
        let upserts = diff.upserts.iter().map(|(_, r)| r.clone()).collect();
        let resources = diff
            .upserts
            .into_iter()
            .map(|(name, r)| DeltaResource {
                name,
                version: r.version.clone(),
                resource: Some(to_any(ty, &r)),
                ..DeltaResource::default()
            })
            .collect();
        let nonce = self.ctx.nonce();
        let t = &mut self.types[ty.index()];
        t.inflight.sent(&nonce, upserts);
        t.nonce = Some(nonce.clone());
        t.must_respond = false;
        DeltaDiscoveryResponse {
            system_version_info: self.current.time.to_string(),
            resources,
            type_url: ty.type_url().to_string(),
            removed_resources: diff.removals,
            nonce,
            ..DeltaDiscoveryResponse::default()
        }
    }
}
