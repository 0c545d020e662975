//! Pure rules of the status write-back: what we write given what the API server has.

use serde_json::{Value, json};

/// The CRDs' limit on a condition message (`maxLength: 32768`).
pub const MAX_MESSAGE_BYTES: usize = 32768;

/// `conditions` with each condition's `lastTransitionTime` taken from the condition of
/// the same type in `current` when its status is unchanged, else `now`; messages cut
/// to the CRD's limit.
pub fn with_transition_times(conditions: &Value, current: Option<&Value>, now: &str) -> Value {
    let Some(list) = conditions.as_array() else {
        return conditions.clone();
    };
    let old = |type_: &Value| {
        current
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c.get("type") == Some(type_)))
    };
    let out = list
        .iter()
        .map(|c| {
            let mut c = c.clone();
            let kept = old(&c["type"])
                .filter(|o| o.get("status") == c.get("status"))
                .and_then(|o| o.get("lastTransitionTime"))
                .cloned();
            c["lastTransitionTime"] = kept.unwrap_or_else(|| json!(now));
            if let Some(message) = c.get("message").and_then(Value::as_str)
                && message.len() > MAX_MESSAGE_BYTES
            {
                c["message"] = json!(truncate(message, MAX_MESSAGE_BYTES));
            }
            c
        })
        .collect();
    Value::Array(out)
}

/// `s` cut to at most `max` bytes at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A Gateway's status to write: `desired` (conditions, listeners, addresses) with
/// transition times kept from `current` (the object's status on the server).
pub fn gateway_status(desired: &Value, current: &Value, now: &str) -> Value {
    let mut out = desired.clone();
    out["conditions"] =
        with_transition_times(&desired["conditions"], current.get("conditions"), now);
    if let Some(listeners) = out.get_mut("listeners").and_then(Value::as_array_mut) {
        for l in listeners {
            let old = current
                .get("listeners")
                .and_then(Value::as_array)
                .and_then(|ls| ls.iter().find(|o| o.get("name") == l.get("name")))
                .and_then(|o| o.get("conditions"));
            l["conditions"] = with_transition_times(&l["conditions"], old, now);
        }
    }
    out
}

/// Whether the server's Gateway status already says what `status` says (the fields we
/// own: addresses, conditions, listeners).
pub fn gateway_up_to_date(status: &Value, current: &Value) -> bool {
    ["addresses", "conditions", "listeners"]
        .iter()
        .all(|f| field(status, f) == field(current, f))
}

fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    match v.get(name) {
        Some(Value::Array(a)) if a.is_empty() => &Value::Null,
        Some(x) => x,
        None => &Value::Null,
    }
}

/// A route's `status.parents` (`reference` = `parentRef`) or a policy's
/// `status.ancestors` (`ancestorRef`) to write: the entries of other controllers as
/// they are (in their order), then ours (`desired`, transition times kept from our
/// current entries for the same reference). `None` when that is what the server has.
pub fn controller_entries(
    desired: &[Value],
    current: &[Value],
    controller: &str,
    reference: &str,
    now: &str,
) -> Option<Vec<Value>> {
    let ours = |p: &&Value| p.get("controllerName").and_then(Value::as_str) == Some(controller);
    let mut out: Vec<Value> = current.iter().filter(|p| !ours(p)).cloned().collect();
    for entry in desired {
        let mut entry = entry.clone();
        let old = current
            .iter()
            .filter(ours)
            .find(|p| p.get(reference) == entry.get(reference))
            .and_then(|p| p.get("conditions"));
        entry["conditions"] = with_transition_times(&entry["conditions"], old, now);
        out.push(entry);
    }
    (out != current).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(type_: &str, status: &str, ltt: Option<&str>) -> Value {
        let mut c = json!({"type": type_, "status": status, "reason": "R", "message": "m", "observedGeneration": 1});
        if let Some(t) = ltt {
            c["lastTransitionTime"] = json!(t);
        }
        c
    }

    #[test]
    fn transition_time_changes_only_with_the_status() {
        let current = json!([
            cond("Accepted", "True", Some("T0")),
            cond("ResolvedRefs", "True", Some("T0"))
        ]);
        let desired = json!([
            cond("Accepted", "True", None),
            cond("ResolvedRefs", "False", None)
        ]);
        let out = with_transition_times(&desired, Some(&current), "T1");
        assert_eq!(out[0]["lastTransitionTime"], "T0");
        assert_eq!(out[1]["lastTransitionTime"], "T1");
        let fresh = with_transition_times(&desired, None, "T1");
        assert_eq!(fresh[0]["lastTransitionTime"], "T1");
    }

    #[test]
    fn long_messages_are_cut_to_the_crd_limit_at_a_character() {
        let mut c = cond("Accepted", "True", None);
        c["message"] = json!("é".repeat(MAX_MESSAGE_BYTES));
        let out = with_transition_times(&json!([c]), None, "T");
        let m = out[0]["message"].as_str().unwrap_or_default();
        assert!(m.len() <= MAX_MESSAGE_BYTES && m.len() >= MAX_MESSAGE_BYTES - 1);
    }

    fn parent(controller: &str, gateway: &str, status: &str, ltt: Option<&str>) -> Value {
        json!({
            "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "ns", "name": gateway},
            "controllerName": controller,
            "conditions": [cond("Accepted", status, ltt)],
        })
    }

    #[test]
    fn other_controllers_entries_stay_and_ours_are_replaced() {
        let current = vec![
            parent("example.com/other", "theirs", "True", Some("T0")),
            parent("sluice.dev/c", "old", "True", Some("T0")),
            parent("sluice.dev/c", "kept", "True", Some("T0")),
        ];
        let desired = vec![parent("sluice.dev/c", "kept", "True", None)];
        let out = controller_entries(&desired, &current, "sluice.dev/c", "parentRef", "T1")
            .unwrap_or_default();
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(
            out[0], current[0],
            "the other controller's entry is untouched"
        );
        assert_eq!(out[1]["parentRef"]["name"], "kept");
        assert_eq!(out[1]["conditions"][0]["lastTransitionTime"], "T0");
        // Written again, nothing changes: no write.
        assert_eq!(
            controller_entries(&desired, &out, "sluice.dev/c", "parentRef", "T2"),
            None
        );
        // Detached from every parent of ours: only the other controller's entry is left.
        let out = controller_entries(&[], &current, "sluice.dev/c", "parentRef", "T1")
            .unwrap_or_default();
        assert_eq!(out, vec![current[0].clone()]);
    }

    #[test]
    fn policy_ancestors_are_matched_by_ancestor_ref() {
        let ancestor = |controller: &str, gateway: &str, status: &str, ltt: Option<&str>| {
            json!({
                "ancestorRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "ns", "name": gateway},
                "controllerName": controller,
                "conditions": [cond("Accepted", status, ltt)],
            })
        };
        let current = vec![
            ancestor("example.com/other", "gw", "False", Some("T0")),
            ancestor("sluice.dev/c", "gw", "True", Some("T0")),
        ];
        let desired = vec![
            ancestor("sluice.dev/c", "gw", "True", None),
            ancestor("sluice.dev/c", "new", "True", None),
        ];
        let out = controller_entries(&desired, &current, "sluice.dev/c", "ancestorRef", "T1")
            .unwrap_or_default();
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(
            out[0], current[0],
            "the other controller's entry, same Gateway, stays"
        );
        assert_eq!(out[1]["conditions"][0]["lastTransitionTime"], "T0");
        assert_eq!(out[2]["ancestorRef"]["name"], "new");
        assert_eq!(out[2]["conditions"][0]["lastTransitionTime"], "T1");
    }

    #[test]
    fn a_gateway_is_up_to_date_when_our_fields_match() {
        let desired = json!({"addresses": [], "conditions": [cond("Accepted", "True", None)], "listeners": []});
        let current = json!({"conditions": [cond("Accepted", "True", Some("T0"))]});
        let status = gateway_status(&desired, &current, "T1");
        assert_eq!(status["conditions"][0]["lastTransitionTime"], "T0");
        assert!(gateway_up_to_date(&status, &current));
        let pending = json!({"conditions": [cond("Accepted", "Unknown", Some("T0"))]});
        assert!(!gateway_up_to_date(
            &gateway_status(&desired, &pending, "T1"),
            &pending
        ));
    }
}
