//! Kubernetes label selectors as the model's sorted list of requirements.

use std::collections::BTreeMap;

use sluice_pipeline::model::{LabelSelector, Requirement, SelectorOp};

use super::{ConvertError, Result};

/// Builds a selector from `matchLabels` (each an `In` requirement with one value)
/// and `matchExpressions` given as `(key, operator, values)`. Requirements and
/// their values are sorted, so equal selectors compare equal.
pub(crate) fn label_selector<'a>(
    match_labels: Option<&BTreeMap<String, String>>,
    match_expressions: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a [String]>)>,
) -> Result<LabelSelector> {
    let mut requirements: Vec<Requirement> = match_labels
        .into_iter()
        .flatten()
        .map(|(k, v)| Requirement {
            key: k.clone(),
            op: SelectorOp::In,
            values: vec![v.clone()],
        })
        .collect();
    for (i, (key, operator, values)) in match_expressions.into_iter().enumerate() {
        let requirement = expression(key, operator, values)
            .map_err(|e| e.within(format!("matchExpressions[{i}]")))?;
        requirements.push(requirement);
    }
    requirements.sort();
    requirements.dedup();
    Ok(LabelSelector { requirements })
}

fn expression(key: &str, operator: &str, values: Option<&[String]>) -> Result<Requirement> {
    let op = match operator {
        "In" => SelectorOp::In,
        "NotIn" => SelectorOp::NotIn,
        "Exists" => SelectorOp::Exists,
        "DoesNotExist" => SelectorOp::DoesNotExist,
        other => {
            let reason = format!("{other:?} is not one of In, NotIn, Exists, DoesNotExist");
            return Err(ConvertError::new("operator", reason));
        }
    };
    let mut values = values.unwrap_or_default().to_vec();
    let needs_values = matches!(op, SelectorOp::In | SelectorOp::NotIn);
    if needs_values == values.is_empty() {
        let reason = if needs_values {
            "required for In and NotIn"
        } else {
            "must be empty"
        };
        return Err(ConvertError::new("values", reason));
    }
    values.sort();
    values.dedup();
    Ok(Requirement {
        key: key.to_owned(),
        op,
        values,
    })
}
