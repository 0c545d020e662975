//! The phases of a scale run: initial load, churn cycles, batched endpoint churn,
//! teardown. Each change's latency runs from handing it to the engine until the
//! engine has the xDS ready (pipeline and translator done). With `--proxies`, the
//! churn cycles also publish each change to in-process proxies and time its
//! delivery (see [`super::proxies`]); the proxies are stopped before the batched
//! churn and the teardown.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sluice_pipeline::model::{Change, Object, ObjectKey};
use sluice_sources::generate::{ChangeType, Churn, Labelled, endpoint_mix};

use super::Config;
use super::engine::{Changed, Emitted, Engine, XdsView};
use super::measure::{Progress, Samples, Summary, ms, rss};
use super::proxies::{Delivery, Fleet};

/// How long every proxy may take to get one change.
const DELIVERY_LIMIT: Duration = Duration::from_secs(5);
/// How long all proxies may take to connect and get the initial state.
const SYNC_LIMIT: Duration = Duration::from_secs(120);

/// Sizes of the generated cluster.
#[derive(Debug, Default)]
pub struct Counts {
    pub objects: usize,
    pub namespaces: usize,
    pub gateways: usize,
    pub routes: usize,
    pub services: usize,
    pub endpoints: usize,
}

#[derive(Debug)]
pub struct Batched {
    pub changes: usize,
    pub times: usize,
    pub ms: f64,
    pub per_s: f64,
}

#[derive(Debug, Default)]
pub struct Memory {
    pub before_load: u64,
    pub after_initial: u64,
    /// The peak so far when the initial load is done (teardown may raise it).
    pub peak_after_initial: u64,
    pub after_cycles: Vec<u64>,
    pub after_churn: u64,
    pub peak: u64,
    pub final_: u64,
}

/// With `--proxies`: the fleet's initial sync and memory.
#[derive(Debug)]
pub struct Proxies {
    pub count: usize,
    /// From publishing the initial state until every proxy had it.
    pub sync_ms: f64,
    pub rss_before_bytes: u64,
    pub rss_connected_bytes: u64,
    pub rss_per_proxy_bytes: u64,
    /// Streams that failed during the run.
    pub failed: usize,
}

#[derive(Debug)]
pub struct Outcome {
    pub mode: &'static str,
    pub counts: Counts,
    pub initial: Summary,
    pub churn: BTreeMap<ChangeType, Summary>,
    pub batched: Option<Batched>,
    pub teardown: Summary,
    pub memory: Memory,
    pub proxies: Option<Proxies>,
}

pub fn run(config: &Config, mut engine: Engine, objects: Vec<Object>) -> anyhow::Result<Outcome> {
    let counts = counts(&objects);
    let mut churn = Churn::new(&config.shape, &objects, config.seed);
    let mut view = XdsView::default();
    let mut memory = Memory {
        before_load: rss().0,
        ..Memory::default()
    };

    let initial = one_time(
        &mut engine,
        &mut view,
        "initial",
        objects.into_iter().map(Change::Apply),
    )?;
    (memory.after_initial, memory.peak_after_initial) = rss();
    let mut fleet = match config.proxies {
        0 => None,
        n => Some(connect(n, &view)?),
    };

    let mut samples: BTreeMap<ChangeType, Samples> = BTreeMap::new();
    for cycle in 0..config.churn_cycles {
        let changes = churn.cycle(&config.mix);
        single_changes(
            &mut engine,
            &mut view,
            &format!("churn {}", cycle + 1),
            changes,
            &mut samples,
            fleet.as_mut().map(|(f, _)| f),
        )?;
        memory.after_cycles.push(rss().0);
    }
    let proxies = fleet.map(|(f, mut stats)| {
        stats.failed = f.failed();
        f.stop();
        stats
    });
    let churn_summary = samples.iter().map(|(k, s)| (*k, s.summary())).collect();

    let batched = if config.batch > 0 && config.batch_rounds > 0 {
        let changes = churn.cycle(&endpoint_mix(config.batch * config.batch_rounds));
        Some(batched(&mut engine, &mut view, changes, config.batch)?)
    } else {
        None
    };
    memory.after_churn = rss().0;

    let ids: Vec<Change> = churn.objects().map(|o| Change::Delete(o.id())).collect();
    let teardown = one_time(&mut engine, &mut view, "teardown", ids)?;
    engine.sync()?;
    (memory.final_, memory.peak) = rss();
    Ok(Outcome {
        mode: engine.mode(),
        counts,
        initial,
        churn: churn_summary,
        batched,
        teardown,
        memory,
        proxies,
    })
}

/// Starts `n` proxies over the gateways of `view`, publishes the current state and
/// waits until every proxy has it; measures the memory the proxies added.
fn connect(n: usize, view: &XdsView) -> anyhow::Result<(Fleet, Proxies)> {
    let before = rss().0;
    let gateways: Vec<ObjectKey> = view.gateways().map(|(k, _)| k.clone()).collect();
    let mut fleet = Fleet::start(n, &gateways)?;
    let progress = Progress::new("proxies", n);
    let since = Instant::now();
    let mut targets = Vec::new();
    for (key, state) in view.gateways() {
        fleet.publish(key, state.clone());
        targets.push((key.clone(), state.time));
    }
    let sync = match fleet.wait(&targets, since, SYNC_LIMIT) {
        Delivery::All(d) => d,
        Delivery::TimedOut | Delivery::NoProxies => {
            let failed = fleet.failed();
            fleet.stop();
            anyhow::bail!(
                "not all {n} proxies had the initial state within {SYNC_LIMIT:?} \
                 ({failed} streams failed)"
            )
        }
    };
    progress.finish();
    let connected = rss().0;
    Ok((
        fleet,
        Proxies {
            count: n,
            sync_ms: ms(sync),
            rss_before_bytes: before,
            rss_connected_bytes: connected,
            rss_per_proxy_bytes: connected.saturating_sub(before) / n as u64,
            failed: 0,
        },
    ))
}

/// Publishes what changed to the proxies and waits until all affected have it.
fn deliver(fleet: &mut Fleet, changed: &Changed) -> Delivery {
    let since = Instant::now();
    for (key, state) in changed {
        fleet.publish(key, state.clone());
    }
    let targets: Vec<(ObjectKey, u64)> = changed.iter().map(|(k, s)| (k.clone(), s.time)).collect();
    fleet.wait(&targets, since, DELIVERY_LIMIT)
}

fn counts(objects: &[Object]) -> Counts {
    let mut c = Counts {
        objects: objects.len(),
        ..Counts::default()
    };
    for o in objects {
        match o {
            Object::Namespace(_) => c.namespaces += 1,
            Object::Gateway(_) => c.gateways += 1,
            Object::HttpRoute(_) => c.routes += 1,
            Object::Service(_) => c.services += 1,
            Object::EndpointSlice(s) => c.endpoints += s.addresses.len(),
            Object::GatewayClass(_)
            | Object::ReferenceGrant(_)
            | Object::Secret(_)
            | Object::ConfigMap(_)
            | Object::BackendTlsPolicy(_) => {}
        }
    }
    c
}

/// Applies `changes` at one logical time, timed.
fn one_time(
    engine: &mut Engine,
    view: &mut XdsView,
    label: &str,
    changes: impl IntoIterator<Item = Change>,
) -> anyhow::Result<Summary> {
    let changes: Vec<Change> = changes.into_iter().collect();
    let progress = Progress::new(label, changes.len());
    let (latency, emitted, _) = timed(engine, view, changes)?;
    progress.finish();
    let mut samples = Samples::default();
    samples.push(latency, emitted);
    Ok(samples.summary())
}

fn timed(
    engine: &mut Engine,
    view: &mut XdsView,
    changes: Vec<Change>,
) -> anyhow::Result<(Duration, Emitted, Changed)> {
    engine.log(&changes)?;
    let start = Instant::now();
    let published = engine.apply(changes)?;
    let latency = start.elapsed();
    let (emitted, changed) = view.absorb(published);
    Ok((latency, emitted, changed))
}

/// One change per logical time, each timed and filed under its type.
fn single_changes(
    engine: &mut Engine,
    view: &mut XdsView,
    label: &str,
    changes: Vec<Labelled>,
    samples: &mut BTreeMap<ChangeType, Samples>,
    mut fleet: Option<&mut Fleet>,
) -> anyhow::Result<()> {
    let mut progress = Progress::new(label, changes.len());
    for Labelled { kind, change } in changes {
        let (latency, emitted, changed) = timed(engine, view, vec![change])?;
        let entry = samples.entry(kind).or_default();
        entry.push(latency, emitted);
        if let Some(fleet) = fleet.as_deref_mut() {
            entry.push_delivery(deliver(fleet, &changed));
        }
        progress.tick(1);
    }
    progress.finish();
    Ok(())
}

/// `batch` changes per logical time; throughput over the whole run.
fn batched(
    engine: &mut Engine,
    view: &mut XdsView,
    changes: Vec<Labelled>,
    batch: usize,
) -> anyhow::Result<Batched> {
    let total = changes.len();
    let mut progress = Progress::new("batched", total);
    let mut elapsed = Duration::ZERO;
    let mut times = 0;
    let mut changes = changes.into_iter().map(|l| l.change).peekable();
    while changes.peek().is_some() {
        let chunk: Vec<Change> = changes.by_ref().take(batch).collect();
        let n = chunk.len();
        elapsed += timed(engine, view, chunk)?.0;
        times += 1;
        progress.tick(n);
    }
    progress.finish();
    Ok(Batched {
        changes: total,
        times,
        ms: ms(elapsed),
        per_s: total as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
    })
}
