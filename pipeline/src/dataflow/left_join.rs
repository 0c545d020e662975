//! The left join by concat-and-reduce: per key, one object (a Gateway, a route, a
//! parentRef) and every fact about it (attached-route counts, resolutions, verdicts),
//! turned into one result, also when there are no facts. A key with facts but no
//! object gives nothing.
//!
//! One `reduce` sees the whole group, so the result can depend on the absence of
//! facts (a listener with no attached route, a parentRef that no listener matched),
//! which a join cannot express. Groups are one object's facts: keep them small.

use differential_dataflow::{ExchangeData, Hashable};
use serde::{Deserialize, Serialize};

use super::col::Col;

/// A group member. Facts sort before the object, and among themselves by value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Side<O, F> {
    Fact(F),
    Object(Box<O>),
}

/// For every key with an object: `logic(key, object, facts)`, facts in their order.
pub fn left_join_named<'s, K, O, F, R>(
    name: &str,
    objects: Col<'s, (K, O)>,
    facts: Col<'s, (K, F)>,
    logic: impl Fn(&K, &O, &[&F]) -> Option<R> + 'static,
) -> Col<'s, (K, R)>
where
    K: ExchangeData + Hashable,
    O: ExchangeData,
    F: ExchangeData,
    R: ExchangeData,
{
    let objects = objects.map(|(k, o)| (k, Side::Object(Box::new(o))));
    let facts = facts.map(|(k, f)| (k, Side::Fact(f)));
    objects
        .concat(facts)
        .reduce_named(name, move |key, group, out| {
            let mut object = None;
            let mut facts = Vec::with_capacity(group.len());
            for (side, n) in group {
                if *n <= 0 {
                    continue;
                }
                match side {
                    Side::Fact(f) => facts.push(f),
                    Side::Object(o) => object = Some(&**o),
                }
            }
            if let Some(result) = object.and_then(|o| logic(key, o, &facts)) {
                out.push((result, 1));
            }
        })
}
