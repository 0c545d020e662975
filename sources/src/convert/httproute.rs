//! HTTPRoute: parent refs, hostnames and rules, with the CRD defaults filled in.

use gateway_api::httproutes::{
    HttpRoute, HttpRouteParentRefs, HttpRouteRules, HttpRouteRulesBackendRefs,
    HttpRouteRulesMatches, HttpRouteRulesMatchesHeadersType as HeaderType,
    HttpRouteRulesMatchesMethod as Method, HttpRouteRulesMatchesPath,
    HttpRouteRulesMatchesPathType as PathType, HttpRouteRulesMatchesQueryParamsType as QueryType,
};
use sluice_pipeline::model::{
    self, BackendRef, GATEWAY_GROUP, Object, ParentRef, PathMatch, RouteMatch, Rule, Timeouts,
    ValueMatch,
};

use super::duration::opt_duration_ms;
use super::filter::{backend_filter, rule_filter};
use super::{ConvertError, Result, ToModel, each, meta, opt_port};

impl ToModel for HttpRoute {
    type Model = model::HttpRoute;

    fn to_object(&self) -> Result<Object> {
        self.to_model().map(Object::HttpRoute)
    }

    fn to_model(&self) -> Result<model::HttpRoute> {
        let route = self;
        let spec = &route.spec;
        Ok(model::HttpRoute {
            meta: meta::namespaced_meta(&route.metadata)?,
            parent_refs: each("spec.parentRefs", spec.parent_refs.as_deref(), parent_ref)?,
            hostnames: spec
                .hostnames
                .iter()
                .flatten()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            rules: each("spec.rules", spec.rules.as_deref(), rule)?,
        })
    }
}

/// A parent ref; group and kind default to the Gateway API `Gateway`.
fn parent_ref(p: &HttpRouteParentRefs) -> Result<ParentRef> {
    Ok(ParentRef {
        group: p.group.clone().unwrap_or_else(|| GATEWAY_GROUP.to_owned()),
        kind: p
            .kind
            .clone()
            .unwrap_or_else(|| model::kinds::GATEWAY.to_owned()),
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        section_name: p.section_name.clone(),
        port: opt_port("port", p.port)?,
    })
}

fn rule(r: &HttpRouteRules) -> Result<Rule> {
    let mut matches = each("matches", r.matches.as_deref(), route_match)?;
    if matches.is_empty() {
        matches.push(RouteMatch::default());
    }
    let timeouts = r.timeouts.as_ref();
    let timeouts = Timeouts {
        request_ms: opt_duration_ms(
            "timeouts.request",
            timeouts.and_then(|t| t.request.as_deref()),
        )?,
        backend_request_ms: opt_duration_ms(
            "timeouts.backendRequest",
            timeouts.and_then(|t| t.backend_request.as_deref()),
        )?,
    };
    Ok(Rule {
        name: r.name.clone(),
        matches,
        filters: each("filters", r.filters.as_deref(), rule_filter)?,
        backends: each("backendRefs", r.backend_refs.as_deref(), backend_ref)?,
        timeouts,
    })
}

fn route_match(m: &HttpRouteRulesMatches) -> Result<RouteMatch> {
    let headers = m.headers.iter().flatten().map(|h| ValueMatch {
        name: h.name.clone(),
        value: h.value.clone(),
        regex: matches!(h.r#type, Some(HeaderType::RegularExpression)),
    });
    let query = m.query_params.iter().flatten().map(|q| ValueMatch {
        name: q.name.clone(),
        value: q.value.clone(),
        regex: matches!(q.r#type, Some(QueryType::RegularExpression)),
    });
    Ok(RouteMatch {
        path: path_match(m.path.as_ref()),
        // "If multiple entries specify equivalent header names, only the first entry
        // with an equivalent name MUST be considered for a match" (case-insensitive);
        // the same for query params, whose names match exactly.
        headers: super::first_per_name(headers, |h| &h.name, true),
        query: super::first_per_name(query, |q| &q.name, false),
        method: m.method.as_ref().map(|m| method(m).to_owned()),
    })
}

/// A path match; type defaults to `PathPrefix` and value to `/`.
fn path_match(path: Option<&HttpRouteRulesMatchesPath>) -> PathMatch {
    let value = path
        .and_then(|p| p.value.clone())
        .unwrap_or_else(|| "/".to_owned());
    match path.and_then(|p| p.r#type.as_ref()) {
        Some(PathType::Exact) => PathMatch::Exact(value),
        Some(PathType::RegularExpression) => PathMatch::Regex(value),
        Some(PathType::PathPrefix) | None => PathMatch::Prefix(value),
    }
}

fn method(m: &Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
    }
}

/// A backend ref; group defaults to core, kind to `Service`, weight to 1.
fn backend_ref(b: &HttpRouteRulesBackendRefs) -> Result<BackendRef> {
    let weight = b.weight.unwrap_or(1);
    let weight = u32::try_from(weight)
        .map_err(|_| ConvertError::new("weight", format!("{weight} is negative")))?;
    Ok(BackendRef {
        group: b.group.clone().unwrap_or_default(),
        kind: b
            .kind
            .clone()
            .unwrap_or_else(|| model::kinds::SERVICE.to_owned()),
        namespace: b.namespace.clone(),
        name: b.name.clone(),
        port: opt_port("port", b.port)?,
        weight,
        filters: each("filters", b.filters.as_deref(), backend_filter)?,
    })
}
