//! The collection types every stage uses, and named forms of the relational
//! operators (differential-dataflow's `join`, `semijoin`, `antijoin`, `distinct` and
//! `count_total` arrange under generic names; these name each arrangement, so a
//! trace or a profile says which join costs what).

use differential_dataflow::operators::arrange::{Arranged, TraceAgent};
use differential_dataflow::operators::count::CountTotal;
use differential_dataflow::trace::implementations::ValSpine;
use differential_dataflow::{ExchangeData, Hashable, VecCollection};

/// A collection at logical times `u64` with integer multiplicities.
pub type Col<'s, D> = VecCollection<'s, u64, D, isize>;

/// A collection of `(K, V)` arranged by `K`, to share between joins.
pub type ByKey<'s, K, V> = Arranged<'s, TraceAgent<ValSpine<K, V, u64, isize>>>;

/// The dataflow's scope, or a region of it (a stage's operators, grouped under the
/// stage's name in timely's logs).
pub type Scope<'s> = timely::dataflow::Scope<'s, u64>;

/// `(k, (v, w))` for every `(k, v)` and `(k, w)` of the two collections.
pub fn join_named<'s, K, V, W>(
    name: &str,
    left: Col<'s, (K, V)>,
    right: Col<'s, (K, W)>,
) -> Col<'s, (K, (V, W))>
where
    K: ExchangeData + Hashable,
    V: ExchangeData,
    W: ExchangeData,
{
    let right = right.arrange_by_key_named(&format!("{name}: right"));
    left.arrange_by_key_named(&format!("{name}: left"))
        .join_core(right, |k, v, w| Some((k.clone(), (v.clone(), w.clone()))))
}

/// The records of `left` whose key is in `keys` (which holds each key at most once).
pub fn semijoin_named<'s, K, V>(
    name: &str,
    left: Col<'s, (K, V)>,
    keys: Col<'s, K>,
) -> Col<'s, (K, V)>
where
    K: ExchangeData + Hashable,
    V: ExchangeData,
{
    let keys = keys.arrange_by_self_named(&format!("{name}: keys"));
    left.arrange_by_key_named(&format!("{name}: records"))
        .join_core(keys, |k, v, _| Some((k.clone(), v.clone())))
}

/// The records of `left` whose key is not in `keys` (which holds each key at most
/// once).
pub fn antijoin_named<'s, K, V>(
    name: &str,
    left: Col<'s, (K, V)>,
    keys: Col<'s, K>,
) -> Col<'s, (K, V)>
where
    K: ExchangeData + Hashable,
    V: ExchangeData,
{
    left.clone()
        .concat(semijoin_named(name, left, keys).negate())
}

/// Each record once.
pub fn distinct_named<'s, D>(name: &str, records: Col<'s, D>) -> Col<'s, D>
where
    D: ExchangeData + Hashable,
{
    records.threshold_named(name, |_, _| 1)
}

/// `(record, how many times it occurs)`.
pub fn count_named<'s, D>(name: &str, records: Col<'s, D>) -> Col<'s, (D, isize)>
where
    D: ExchangeData + Hashable,
{
    records.arrange_by_self_named(name).count_total()
}
