//! Virtual hosts: the entries of attached routes grouped by (gateway, port, hostname)
//! and ordered by precedence ([`crate::spec::precedence`]). One route change
//! re-sorts only the virtual hosts it is on.

use crate::ir::RouteIr;
use crate::ir::VirtualHostIr;
use crate::model::ObjectKey;
use crate::spec::precedence::Precedence;
use crate::spec::routes::ResolvedRoute;

use super::attach::Attachment;
use super::col::{Col, distinct_named};

type HostKey = (ObjectKey, u16, String);

/// Reduce hands values sorted and the precedence key leads, so the entries come
/// in precedence order. Every serving listener's own hostname gets a virtual host,
/// even without routes, so Envoy never hands its requests to a less specific
/// listener's routes.
pub fn virtual_hosts<'s>(
    serving: Col<'s, (ObjectKey, Attachment)>,
    resolved: Col<'s, (ObjectKey, ResolvedRoute)>,
    listener_hosts: Col<'s, HostKey>,
) -> Col<'s, VirtualHostIr> {
    let resolved = resolved.arrange_by_key_named("resolved routes by route");
    let markers = distinct_named("listener hostnames", listener_hosts).map(|key| (key, None));
    let entries: Col<'s, (HostKey, Option<(Precedence, RouteIr)>)> = serving
        .arrange_by_key_named("serving attachments by route")
        .join_core(resolved, |_route, a, r| {
            let key = (a.gateway.clone(), a.port, a.hostname.clone());
            r.entries
                .clone()
                .into_iter()
                .map(move |e| (key.clone(), Some(e)))
        });
    entries
        .concat(markers)
        .reduce_named(
            "virtual host routes",
            |(gateway, port, hostname), entries, out| {
                let routes = entries
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .filter_map(|(e, _)| e.as_ref().map(|e| e.1.clone()))
                    .collect();
                out.push((
                    VirtualHostIr {
                        gateway: gateway.clone(),
                        port: *port,
                        hostname: hostname.clone(),
                        routes,
                    },
                    1,
                ));
            },
        )
        .map(|(_, vh)| vh)
}
