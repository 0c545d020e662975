//! Status expectations checked against the JSON status file `sluice serve` rewrites
//! after every complete update, mirroring the upstream helpers named in `check`
//! (conformance/utils/kubernetes/helpers.go).

use serde_json::Value;

use crate::cases::{
    Condition, ListenerExpectation, ParentExpectation, RouteParentExpectation, StatusCheck,
};
use crate::manifests::{CONTROLLER_NAME, str_at};

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// Checks one expectation against a parsed status file; `Err` says what is missing.
/// `generation` is the named object's `metadata.generation` (`None`: not in the
/// manifests); every condition in that object's status must observe it.
pub fn check(file: &Value, c: &StatusCheck, generation: Option<i64>) -> Result<(), String> {
    let namespace = c.namespace.as_deref().unwrap_or_default();
    let name = c.name.as_deref().unwrap_or_default();
    let what = format!(
        "{} {} {namespace}/{name}",
        c.check,
        c.kind.as_deref().unwrap_or_default()
    );
    let result = match (c.check.as_str(), c.kind.as_deref()) {
        (
            "GatewayAndHTTPRoutesMustBeAccepted"
            | "GatewayAndRoutesMustBeAccepted"
            | "HTTPRouteMustHaveResolvedRefsConditionsTrue",
            Some("HTTPRoute"),
        ) => route_parent_has(file, namespace, name, c),
        (
            "GatewayAndHTTPRoutesMustBeAccepted"
            | "GatewayAndRoutesMustBeAccepted"
            | "GatewayListenerMustHaveConditions",
            Some("Gateway"),
        ) => gateway(file, namespace, name).and_then(|gw| gateway_listeners_have(gw, c)),
        ("GatewayMustHaveCondition", _) => gateway(file, namespace, name).and_then(|gw| {
            conditions_match(
                &gw["conditions"],
                c.conditions.as_deref().unwrap_or_default(),
            )
        }),
        ("GatewayMustHaveLatestConditions", _) => gateway(file, namespace, name)
            .and_then(|gw| latest_generation(gw, generation.ok_or("not in the manifests")?)),
        ("GatewayStatusMustHaveListeners", _) => gateway(file, namespace, name)
            .and_then(|gw| listeners_match(gw, c.listener_status.as_deref().unwrap_or_default())),
        ("GatewayMustHaveZeroRoutes", _) => gateway(file, namespace, name).and_then(zero_routes),
        ("HTTPRouteMustHaveCondition", _) => route_condition_any_parent(file, namespace, name, c),
        ("HTTPRouteMustHaveNoAcceptedParents", _) => no_accepted_parents(file, namespace, name),
        ("HTTPRouteMustHaveParents", _) => route_parents_match(file, namespace, name, c),
        ("NamespacesMustBeReady", Some("Gateway")) => gateway(file, namespace, name)
            .and_then(|gw| conditions_match(&gw["conditions"], &ready_conditions())),
        ("BackendTLSPolicyMustHaveCondition", _) => policy_ancestor_has(file, namespace, name, c),
        // Vacuously true without ancestors; the generations are checked below.
        ("BackendTLSPolicyMustHaveLatestConditions", _) => Ok(()),
        (other, _) => Err(format!("unsupported status check {other}")),
    };
    result
        .and_then(|()| observed_generations(file, c, generation))
        .map_err(|e| format!("{what}: {e}"))
}

/// Every condition in the status of the object `c` names (a Gateway's own and its
/// listeners', an HTTPRoute's per parent) has `observedGeneration` equal to the
/// object's `metadata.generation`.
fn observed_generations(
    file: &Value,
    c: &StatusCheck,
    generation: Option<i64>,
) -> Result<(), String> {
    let list = match c.kind.as_deref() {
        Some("Gateway") => "gateways",
        Some("HTTPRoute") => "httproutes",
        Some("BackendTLSPolicy") => "backendtlspolicies",
        _ => return Ok(()),
    };
    let namespace = c.namespace.as_deref().unwrap_or_default();
    let name = c.name.as_deref().unwrap_or_default();
    let Some(object) = find(file, list, namespace, name) else {
        return Ok(());
    };
    let generation = generation.ok_or("the object is not in the manifests")?;
    let status = &object["status"];
    let conditions = status["conditions"]
        .as_array()
        .into_iter()
        .chain(
            status["listeners"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["conditions"].as_array()),
        )
        .chain(
            status["parents"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["conditions"].as_array()),
        )
        .chain(
            (status["ancestors"].as_array().into_iter().flatten())
                .filter_map(|a| a["conditions"].as_array()),
        )
        .flatten();
    match conditions
        .into_iter()
        .find(|cond| cond["observedGeneration"].as_i64() != Some(generation))
    {
        None => Ok(()),
        Some(cond) => Err(format!(
            "condition {cond} does not observe the object's generation {generation}"
        )),
    }
}

fn find<'a>(file: &'a Value, list: &str, namespace: &str, name: &str) -> Option<&'a Value> {
    file[list]
        .as_array()?
        .iter()
        .find(|o| str_at(o, "/namespace") == namespace && str_at(o, "/name") == name)
}

fn gateway<'a>(file: &'a Value, namespace: &str, name: &str) -> Result<&'a Value, String> {
    find(file, "gateways", namespace, name)
        .map(|g| &g["status"])
        .ok_or_else(|| "no status for this Gateway".into())
}

/// Upstream's `NamespacesMustBeReady` as one check per Gateway in the named
/// namespaces (all but those annotated `gateway-api/skip-this-for-readiness`): each
/// must be Accepted and Programmed, for its current generation. (Its other half,
/// every Pod ready, holds here: the backends are in-process and listening before
/// Sluice starts.) Other checks pass through.
pub fn expand(checks: &[StatusCheck], docs: &[Value]) -> Vec<StatusCheck> {
    let mut out = vec![];
    for c in checks {
        let Some(namespaces) = c
            .namespaces
            .as_ref()
            .filter(|_| c.check == "NamespacesMustBeReady")
        else {
            out.push(c.clone());
            continue;
        };
        let gateways = docs.iter().filter(|d| {
            str_at(d, "/kind") == "Gateway"
                && namespaces
                    .iter()
                    .any(|n| n == str_at(d, "/metadata/namespace"))
                && str_at(
                    d,
                    "/metadata/annotations/gateway-api~1skip-this-for-readiness",
                ) != "true"
        });
        out.extend(gateways.map(|g| StatusCheck {
            kind: Some("Gateway".into()),
            namespace: Some(str_at(g, "/metadata/namespace").into()),
            name: Some(str_at(g, "/metadata/name").into()),
            ..c.clone()
        }));
    }
    out
}

fn ready_conditions() -> Vec<Condition> {
    ["Accepted", "Programmed"]
        .map(|t| Condition {
            type_: t.into(),
            status: "True".into(),
            reason: None,
        })
        .into()
}

/// Some `status.ancestors[]` entry of the policy whose ancestorRef names the
/// expected Gateway (namespace compared when both say one) has every condition.
fn policy_ancestor_has(
    file: &Value,
    namespace: &str,
    name: &str,
    c: &StatusCheck,
) -> Result<(), String> {
    let expected = c.ancestor.as_ref().ok_or("case has no ancestor")?;
    let ancestors = find(file, "backendtlspolicies", namespace, name)
        .and_then(|p| p.pointer("/status/ancestors"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let wanted = c.conditions.as_deref().unwrap_or_default();
    let candidates: Vec<&Value> = (ancestors.iter())
        .filter(|a| {
            str_at(a, "/ancestorRef/name") == expected.name
                && match (opt_str(a, "/ancestorRef/namespace"), &expected.namespace) {
                    (Some(actual), Some(e)) => actual == e,
                    _ => true,
                }
        })
        .collect();
    if candidates.is_empty() {
        return Err(format!(
            "no ancestor {} in {}",
            expected.name,
            Value::from(ancestors.to_vec())
        ));
    }
    let mut last = String::new();
    for a in candidates {
        match conditions_match(&a["conditions"], wanted) {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn route_parents<'a>(file: &'a Value, namespace: &str, name: &str) -> &'a [Value] {
    find(file, "httproutes", namespace, name)
        .and_then(|r| r.pointer("/status/parents"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn has_condition(actual: &Value, expected: &Condition) -> bool {
    actual.as_array().into_iter().flatten().any(|a| {
        str_at(a, "/type") == expected.type_
            && str_at(a, "/status") == expected.status
            && expected
                .reason
                .as_deref()
                .is_none_or(|r| r.is_empty() || str_at(a, "/reason") == r)
    })
}

fn conditions_match(actual: &Value, expected: &[Condition]) -> Result<(), String> {
    match expected.iter().find(|e| !has_condition(actual, e)) {
        None => Ok(()),
        Some(e) => Err(format!(
            "no condition {}={} (reason {}) in {}",
            e.type_,
            e.status,
            e.reason.as_deref().unwrap_or("any"),
            actual
        )),
    }
}

fn opt_str<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Whether a status parentRef names Gateway `expected` (see [`section_matches`]).
fn parent_ref_is(actual: &Value, route_namespace: &str, expected: &ParentExpectation) -> bool {
    let group = opt_str(actual, "/group").unwrap_or(GATEWAY_GROUP);
    let kind = opt_str(actual, "/kind").unwrap_or("Gateway");
    let namespace = opt_str(actual, "/namespace").unwrap_or(route_namespace);
    group == GATEWAY_GROUP
        && kind == "Gateway"
        && str_at(actual, "/name") == expected.name
        && namespace == expected.namespace
        && section_matches(
            opt_str(actual, "/sectionName"),
            expected.section_name.as_deref(),
        )
}

/// Section names are compared when both sides have one. Status echoes the route's
/// own parentRef, and the extracted expectations sometimes name a section where the
/// route's parentRef has none or only a port (HTTPRouteListenerPortMatching) or have
/// `null` where the route names one (GatewayHTTPListenerIsolation).
fn section_matches(actual: Option<&str>, expected: Option<&str>) -> bool {
    match (actual, expected) {
        (Some(a), Some(e)) => a == e,
        _ => true,
    }
}

fn route_parent_has(
    file: &Value,
    namespace: &str,
    name: &str,
    c: &StatusCheck,
) -> Result<(), String> {
    let expected = c.parent.as_ref().ok_or("case has no parent")?;
    let parents = route_parents(file, namespace, name);
    let parent = parents
        .iter()
        .find(|p| parent_ref_is(&p["parentRef"], namespace, expected))
        .ok_or_else(|| {
            format!(
                "no parent {}/{} in {}",
                expected.namespace,
                expected.name,
                Value::from(parents)
            )
        })?;
    if str_at(parent, "/controllerName") != CONTROLLER_NAME {
        return Err(format!(
            "controllerName is {:?}",
            str_at(parent, "/controllerName")
        ));
    }
    conditions_match(
        &parent["conditions"],
        c.conditions.as_deref().unwrap_or_default(),
    )
}

fn gateway_listeners_have(gw: &Value, c: &StatusCheck) -> Result<(), String> {
    if c.address_required && gw["addresses"].as_array().is_none_or(Vec::is_empty) {
        return Err("no addresses".into());
    }
    let listeners = gw["listeners"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let wanted: Option<Vec<&str>> = c
        .listeners
        .as_ref()
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect());
    if let Some(names) = &wanted
        && let Some(missing) = names
            .iter()
            .find(|n| !listeners.iter().any(|l| str_at(l, "/name") == **n))
    {
        return Err(format!("no listener {missing}"));
    }
    if listeners.is_empty() {
        return Err("no listener status".into());
    }
    for listener in listeners {
        let lname = str_at(listener, "/name");
        if wanted.as_ref().is_some_and(|names| !names.contains(&lname)) {
            continue;
        }
        conditions_match(
            &listener["conditions"],
            c.listener_conditions.as_deref().unwrap_or_default(),
        )
        .map_err(|e| format!("listener {lname}: {e}"))?;
    }
    Ok(())
}

fn latest_generation(gw: &Value, generation: i64) -> Result<(), String> {
    let conditions = gw["conditions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if conditions.is_empty() {
        return Err("no conditions".into());
    }
    match conditions
        .iter()
        .find(|c| c["observedGeneration"].as_i64() != Some(generation))
    {
        None => Ok(()),
        Some(c) => Err(format!(
            "condition {c} does not observe generation {generation}"
        )),
    }
}

fn listeners_match(gw: &Value, expected: &[ListenerExpectation]) -> Result<(), String> {
    let actual = gw["listeners"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if actual.len() != expected.len() {
        return Err(format!(
            "{} listeners, expected {}: {}",
            actual.len(),
            expected.len(),
            gw["listeners"]
        ));
    }
    for e in expected {
        let a = actual
            .iter()
            .find(|l| str_at(l, "/name") == e.name)
            .ok_or_else(|| format!("no listener {}", e.name))?;
        let kinds = a["supportedKinds"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if e.supported_kinds.is_empty() && !kinds.is_empty() {
            return Err(format!(
                "listener {}: supportedKinds {} should be empty",
                e.name, a["supportedKinds"]
            ));
        }
        for k in &e.supported_kinds {
            let group = k.group.as_deref().unwrap_or(GATEWAY_GROUP);
            if !kinds.iter().any(|ak| {
                opt_str(ak, "/group").unwrap_or(GATEWAY_GROUP) == group
                    && str_at(ak, "/kind") == k.kind
            }) {
                return Err(format!(
                    "listener {}: supportedKinds lacks {group}/{}",
                    e.name, k.kind
                ));
            }
        }
        if a["attachedRoutes"].as_i64().unwrap_or_default() != e.attached_routes {
            return Err(format!(
                "listener {}: attachedRoutes {} != {}",
                e.name, a["attachedRoutes"], e.attached_routes
            ));
        }
        conditions_match(&a["conditions"], &e.conditions)
            .map_err(|err| format!("listener {}: {err}", e.name))?;
    }
    Ok(())
}

fn zero_routes(gw: &Value) -> Result<(), String> {
    let listeners = gw["listeners"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    match listeners {
        [] => Ok(()),
        [one] if one["attachedRoutes"].as_i64().unwrap_or_default() == 0 => Ok(()),
        _ => Err(format!(
            "expected no listener or one with 0 attachedRoutes: {}",
            gw["listeners"]
        )),
    }
}

fn route_condition_any_parent(
    file: &Value,
    namespace: &str,
    name: &str,
    c: &StatusCheck,
) -> Result<(), String> {
    let expected = c.parent.as_ref().ok_or("case has no parent")?;
    let parents = route_parents(file, namespace, name);
    let found = parents.iter().any(|p| {
        let pr = &p["parentRef"];
        str_at(pr, "/name") == expected.name
            && opt_str(pr, "/namespace").is_none_or(|ns| ns == expected.namespace)
            && conditions_match(
                &p["conditions"],
                c.conditions.as_deref().unwrap_or_default(),
            )
            .is_ok()
    });
    if found {
        Ok(())
    } else {
        Err(format!(
            "no parent {}/{} with {:?} in {}",
            expected.namespace,
            expected.name,
            c.conditions,
            Value::from(parents)
        ))
    }
}

fn no_accepted_parents(file: &Value, namespace: &str, name: &str) -> Result<(), String> {
    match route_parents(file, namespace, name) {
        [] => Ok(()),
        [one]
            if has_condition(
                &one["conditions"],
                &Condition {
                    type_: "Accepted".into(),
                    status: "False".into(),
                    reason: None,
                },
            ) =>
        {
            Ok(())
        }
        parents => Err(format!(
            "expected no accepted parent: {}",
            Value::from(parents)
        )),
    }
}

fn route_parents_match(
    file: &Value,
    namespace: &str,
    name: &str,
    c: &StatusCheck,
) -> Result<(), String> {
    let expected = c.parents.as_deref().unwrap_or_default();
    let actual = route_parents(file, namespace, name);
    if actual.len() != expected.len() {
        return Err(format!(
            "{} parents, expected {}: {}",
            actual.len(),
            expected.len(),
            Value::from(actual)
        ));
    }
    for e in expected {
        if !actual
            .iter()
            .any(|a| route_parent_is(a, namespace, e, c.namespace_required))
        {
            return Err(format!("no parent like {e:?} in {}", Value::from(actual)));
        }
    }
    Ok(())
}

fn route_parent_is(
    a: &Value,
    route_namespace: &str,
    e: &RouteParentExpectation,
    namespace_required: bool,
) -> bool {
    let pr = &a["parentRef"];
    let e_ref = &e.parent_ref;
    let namespace_ok = match (opt_str(pr, "/namespace"), e_ref.namespace.as_deref()) {
        (Some(a), Some(e)) => a == e,
        (None, Some(e)) => !namespace_required && e == route_namespace,
        (a, None) => a.is_none_or(|a| a == route_namespace),
    };
    let controller = e
        .controller_name
        .replace("{{controller_name}}", CONTROLLER_NAME);
    opt_str(pr, "/group").unwrap_or(GATEWAY_GROUP)
        == e_ref.group.as_deref().unwrap_or(GATEWAY_GROUP)
        && opt_str(pr, "/kind").unwrap_or("Gateway") == e_ref.kind.as_deref().unwrap_or("Gateway")
        && str_at(pr, "/name") == e_ref.name
        && namespace_ok
        && section_matches(opt_str(pr, "/sectionName"), e_ref.section_name.as_deref())
        && str_at(a, "/controllerName") == controller
        && conditions_match(&a["conditions"], &e.conditions).is_ok()
}
