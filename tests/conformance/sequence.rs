//! The extension set's `sequence` custom checks: object changes and status checks run
//! in order after a case's statuses and requests (the extension README's "`custom`
//! types"). A change goes to what sluice reads: the manifest file is rewritten
//! atomically (the runner bumps `metadata.generation` when `spec` changes, as the API
//! server would), or, with the kube source, the objects are applied to the API
//! server, which numbers generations itself.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::cases::SequenceStep;
use crate::{CaseEnv, kube_source, manifests, wait_statuses};

/// A value a `read` step saved, and where it was read from (for `assert`).
struct Saved {
    value: Value,
    kind: String,
    namespace: String,
    name: String,
}

/// Runs `steps` in order; the first that fails names itself.
pub async fn run(steps: &[SequenceStep], env: &mut CaseEnv) -> Result<(), String> {
    let mut saved: BTreeMap<String, Saved> = BTreeMap::new();
    for (i, step) in steps.iter().enumerate() {
        run_step(step, env, &mut saved)
            .await
            .map_err(|e| format!("sequence step {i}: {e}"))?;
    }
    Ok(())
}

async fn run_step(
    step: &SequenceStep,
    env: &mut CaseEnv,
    saved: &mut BTreeMap<String, Saved>,
) -> Result<(), String> {
    match step {
        SequenceStep::Read {
            kind,
            namespace,
            name,
            key,
            field,
            save_as,
        } => {
            let object = current(env, kind, namespace, name)?;
            let value = match (key, field) {
                (Some(key), None) => object["data"][key].clone(),
                (None, Some(field)) => at_field(&object, field).clone(),
                _ => return Err("a read names exactly one of key and field".into()),
            };
            if value.is_null() {
                return Err(format!("{kind} {namespace}/{name} has no {key:?}{field:?}"));
            }
            saved.insert(
                save_as.clone(),
                Saved {
                    value,
                    kind: kind.clone(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                },
            );
            Ok(())
        }
        SequenceStep::Patch {
            patch_type,
            kind,
            namespace,
            name,
            patch,
        } => {
            if patch_type != "merge" {
                return Err(format!("unsupported patch type {patch_type:?}"));
            }
            let patch = substitute(patch, saved)?;
            let doc = (env.docs.iter_mut())
                .find(|d| is(d, kind, namespace, name))
                .ok_or_else(|| format!("no {kind} {namespace}/{name} in the manifests"))?;
            merge_patch(doc, &patch);
            if patch.get("spec").is_some()
                && let Some(generation) = doc.pointer_mut("/metadata/generation")
            {
                *generation = json!(generation.as_i64().unwrap_or_default() + 1);
            }
            publish(env)
        }
        SequenceStep::Create { object } => {
            let mut object = substitute(object, saved)?;
            manifests::set_generation(std::slice::from_mut(&mut object), manifests::GENERATION);
            env.docs.push(object);
            publish(env)
        }
        SequenceStep::Status { status } => {
            wait_statuses(std::slice::from_ref(status.as_ref()), env).await
        }
        SequenceStep::Assert { expect } => assert(expect, env, saved),
        SequenceStep::Unsupported => Err("an op this runner does not implement".into()),
    }
}

/// Makes sluice see the changed manifests.
fn publish(env: &mut CaseEnv) -> Result<(), String> {
    manifests::write(&env.dir.join("manifests"), &env.docs)
        .map_err(|e| format!("rewriting the manifests: {e:#}"))?;
    if let Some((server, _)) = &env.kube {
        tokio::task::block_in_place(|| kube_source::reapply(server, &env.dir, &env.docs))?;
    }
    Ok(())
}

/// The object as sluice's source has it: from the API server with the kube source
/// (which owns `metadata.generation`), else from the manifests.
fn current(env: &CaseEnv, kind: &str, namespace: &str, name: &str) -> Result<Value, String> {
    match &env.kube {
        Some((server, _)) => {
            tokio::task::block_in_place(|| kube_source::get(server, kind, namespace, name))
        }
        None => (env.docs.iter())
            .find(|d| is(d, kind, namespace, name))
            .cloned()
            .ok_or_else(|| format!("no {kind} {namespace}/{name} in the manifests")),
    }
}

/// `<dotted field> != ${name}`, the field read again from the object `name` came from.
fn assert(expect: &str, env: &CaseEnv, saved: &BTreeMap<String, Saved>) -> Result<(), String> {
    let unsupported = || format!("unsupported assertion {expect:?}");
    let (field, variable) = expect.split_once(" != ").ok_or_else(unsupported)?;
    let variable = (variable.trim().strip_prefix("${"))
        .and_then(|v| v.strip_suffix('}'))
        .ok_or_else(unsupported)?;
    let before = saved
        .get(variable)
        .ok_or_else(|| format!("nothing was read as {variable}"))?;
    let object = current(env, &before.kind, &before.namespace, &before.name)?;
    let now = at_field(&object, field.trim());
    if *now == before.value {
        Err(format!(
            "{} {}/{}: {field} is still {now}",
            before.kind, before.namespace, before.name
        ))
    } else {
        Ok(())
    }
}

fn is(doc: &Value, kind: &str, namespace: &str, name: &str) -> bool {
    manifests::kind(doc) == kind
        && manifests::str_at(doc, "/metadata/namespace") == namespace
        && manifests::str_at(doc, "/metadata/name") == name
}

/// The value at a dotted path (`metadata.generation`).
fn at_field<'a>(object: &'a Value, field: &str) -> &'a Value {
    field.split('.').fold(object, |v, part| &v[part])
}

/// `value` with every string `${name}` replaced by what was saved as `name`.
fn substitute(value: &Value, saved: &BTreeMap<String, Saved>) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) if s.contains("${") => {
            let mut out = s.clone();
            for (name, v) in saved {
                let text = v
                    .value
                    .as_str()
                    .map_or_else(|| v.value.to_string(), str::to_owned);
                out = out.replace(&format!("${{{name}}}"), &text);
            }
            if out.contains("${") {
                return Err(format!("{s:?} names a value no step read"));
            }
            Value::String(out)
        }
        Value::Array(items) => Value::Array(
            (items.iter())
                .map(|v| substitute(v, saved))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            (map.iter())
                .map(|(k, v)| Ok((k.clone(), substitute(v, saved)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// RFC 7386 JSON merge patch: objects merge key by key, `null` removes a key,
/// anything else (arrays included) replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(entries) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(map) = target {
        for (key, value) in entries {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}
