//! The state-of-the-world variant (`StreamAggregatedResources`).
//!
//! Per type the stream keeps what it last sent. On every request or publication it
//! diffs that against the current state and sends, in [`WARMING_ORDER`]:
//! - LDS and CDS: the whole wanted set, but only when something in it changed
//!   (the protocol treats a missing listener or cluster as deleted). Clusters are
//!   sent first as the union of the new set and the ones being removed, and once
//!   more without the removed ones after listeners and routes.
//! - RDS and EDS: only the new or changed resources among the requested names.
//!   Their removal is implicit (the proxy drops them with their listener/cluster).
//!
//! `version_info` is a hash of the names and versions the proxy was sent for the
//! type; a reconnecting proxy that already has the current version gets nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use tonic::Status;

use crate::state::{GatewayResources, Resource, ResourceMap, ResourceType, content_version};

use super::stream::{Protocol, StreamCtx};
use super::subscription::Subscription;
use super::verdict::Inflight;
use super::warming::{Diff, WARMING_ORDER};

/// One stream's state-of-the-world state.
#[derive(Debug)]
pub struct Sotw {
    ctx: StreamCtx,
    current: Arc<GatewayResources>,
    types: [TypeState; crate::state::TYPES],
}

#[derive(Debug, Default)]
struct TypeState {
    /// `None` until the proxy first asks for the type.
    sub: Option<Subscription>,
    /// What the proxy was last sent, limited to the names it wants.
    sent: BTreeMap<String, Arc<Resource>>,
    /// The nonce of the latest response.
    nonce: Option<String>,
    /// A first LDS/CDS request is answered even when the set is empty.
    must_respond: bool,
    /// Responses not answered yet, for the hub's verdicts.
    inflight: Inflight,
    /// The offered set `sent` was last brought up to; `None` after a subscription
    /// change (the next sync diffs everything).
    base: Option<ResourceMap>,
}

impl Protocol for Sotw {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
    const NAME: &'static str = "sotw";

    fn node(request: &DiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }

    fn new(ctx: StreamCtx, current: Arc<GatewayResources>) -> Self {
        Self {
            ctx,
            current,
            types: Default::default(),
        }
    }

    fn on_request(&mut self, req: DiscoveryRequest) -> Result<Vec<DiscoveryResponse>, Status> {
        let Some(ty) = self.ctx.type_of(&req.type_url)? else {
            return Ok(Vec::new());
        };
        let t = &mut self.types[ty.index()];
        // Every answered response gets its verdict, stale or not.
        let detail = req.error_detail.as_ref();
        (self.ctx).verdict(ty, &mut t.inflight, &req.response_nonce, detail);
        if self
            .ctx
            .is_stale(ty, &req.response_nonce, t.nonce.as_deref())
        {
            return Ok(Vec::new());
        }
        if let Some(detail) = &req.error_detail {
            // Nothing is resent: `sent` keeps the rejected version, so only a
            // later change of the type produces a new response.
            self.ctx.nack(ty, &req.response_nonce, detail);
        } else if !req.response_nonce.is_empty() {
            self.ctx.ack();
        }
        let first = t.sub.is_none();
        let sub = Subscription::from_sotw(ty, &req.resource_names, t.sub.as_ref());
        if t.sub.as_ref() != Some(&sub) {
            t.base = None;
        }
        t.sent.retain(|name, _| sub.wants(name));
        if first {
            t.must_respond = ty.is_wildcard();
            let offered = sub.offered(ty, &self.current);
            let wanted: BTreeMap<_, _> = sub
                .select(&offered)
                .map(|(n, r)| (n.clone(), r.clone()))
                .collect();
            if !req.version_info.is_empty() && req.version_info == version_of(&wanted) {
                // A reconnecting proxy that already has exactly this.
                t.sent = wanted;
                t.must_respond = false;
            }
        }
        t.sub = Some(sub);
        Ok(self.sync())
    }

    fn on_publish(&mut self, state: Arc<GatewayResources>) -> Vec<DiscoveryResponse> {
        self.current = state;
        self.sync()
    }
}

impl Sotw {
    /// Brings every requested type up to `current`, in warming order.
    fn sync(&mut self) -> Vec<DiscoveryResponse> {
        let mut out = Vec::new();
        let mut diffs: [Option<Diff>; crate::state::TYPES] = Default::default();
        for ty in ResourceType::ALL {
            let t = &mut self.types[ty.index()];
            let Some(sub) = &t.sub else { continue };
            let diff = Diff::sync(ty, sub, &mut t.base, &self.current, &t.sent);
            diffs[ty.index()] = Some(diff);
        }
        for phase in WARMING_ORDER {
            let t = &mut self.types[phase.ty.index()];
            let Some(diff) = diffs[phase.ty.index()].as_mut() else {
                continue;
            };
            let diff = diff.take(phase);
            if diff.is_empty() {
                continue;
            }
            for name in &diff.removals {
                t.sent.remove(name);
            }
            for (name, r) in &diff.upserts {
                t.sent.insert(name.clone(), r.clone());
            }
            let upserts: Vec<_> = diff.upserts.iter().map(|(_, r)| r.clone()).collect();
            if phase.ty.is_wildcard() {
                let resources = t.sent.values().map(|r| to_any(phase.ty, r)).collect();
                out.push(respond(&self.ctx, phase.ty, t, resources, upserts));
            } else if !diff.upserts.is_empty() {
                let resources = upserts.iter().map(|r| to_any(phase.ty, r)).collect();
                out.push(respond(&self.ctx, phase.ty, t, resources, upserts));
            }
        }
        for ty in ResourceType::ALL {
            let t = &mut self.types[ty.index()];
            if t.must_respond {
                let resources = t.sent.values().map(|r| to_any(ty, r)).collect();
                out.push(respond(&self.ctx, ty, t, resources, Vec::new()));
            }
        }
        out
    }
}

/// A response carrying `resources` (`upserts` new or changed among them), recorded
/// as the type's latest.
fn respond(
    ctx: &StreamCtx,
    ty: ResourceType,
    t: &mut TypeState,
    resources: Vec<Any>,
    upserts: Vec<Arc<Resource>>,
) -> DiscoveryResponse {
    let nonce = ctx.nonce();
    t.inflight.sent(&nonce, upserts);
    t.nonce = Some(nonce.clone());
    t.must_respond = false;
    DiscoveryResponse {
        version_info: version_of(&t.sent),
        resources,
        type_url: ty.type_url().to_string(),
        nonce,
        ..DiscoveryResponse::default()
    }
}

/// Wraps the resource's encoded bytes. `Any::value` is a `Vec<u8>` in
/// envoy-types, so this is one copy of the shared bytes, never a re-encode.
pub fn to_any(ty: ResourceType, r: &Resource) -> Any {
    Any {
        type_url: ty.type_url().to_string(),
        value: r.body.to_vec(),
    }
}

/// A type's version: a hash of the names and versions the proxy holds.
fn version_of(held: &BTreeMap<String, Arc<Resource>>) -> String {
    let mut buf = Vec::with_capacity(held.len() * 32);
    for (name, r) in held {
        buf.extend_from_slice(name.as_bytes());
        buf.push(0);
        buf.extend_from_slice(r.version.as_bytes());
        buf.push(0);
    }
    content_version(&buf)
}
