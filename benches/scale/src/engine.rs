//! The two ways of turning a change into xDS that `sluice scale` compares:
//! incremental (the pipeline and translator, kept running) and full (every time
//! from scratch: a fresh dataflow over all current objects and a fresh translator).

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_pipeline::model::{Change, Object, ObjectId, ObjectKey};
use sluice_pipeline::{PipelineConfig, evaluate};
use sluice_runtime::{Controller, ControllerConfig};
use sluice_sinks::encode::EncodeConfig;
use sluice_sinks::state::GatewayResources;
use sluice_sinks::translator::Translator;
use sluice_sources::generate;
use sluice_sources::log::Recorder;

/// Gateways' resource sets after one logical time.
#[derive(Debug)]
pub struct Published {
    /// Time spent in the dataflow (the rest of the latency is xDS encoding).
    pub pipeline: std::time::Duration,
    pub gateways: BTreeMap<ObjectKey, Arc<GatewayResources>>,
    /// True when `gateways` is every gateway (a gateway missing lost everything);
    /// false when it holds only the gateways that changed.
    pub complete: bool,
}

#[derive(Debug)]
pub struct Engine {
    inner: Inner,
    /// `--record`: the run as an event log, and the logical times applied so far.
    recorder: Option<Recorder>,
    times: u64,
}

#[derive(Debug)]
enum Inner {
    /// The runtime every mode drives. Boxed: it is much larger than the full
    /// engine's state.
    Incremental(Box<Controller>),
    Full {
        objects: BTreeMap<ObjectId, Object>,
        controller: String,
        time: u64,
    },
}

impl Engine {
    pub fn incremental(config: PipelineConfig) -> anyhow::Result<Self> {
        let controller = Controller::new(ControllerConfig {
            pipeline: config,
            encode: EncodeConfig::default(),
        })?;
        Ok(Self::new(Inner::Incremental(Box::new(controller))))
    }

    pub fn full(controller: String) -> Self {
        Self::new(Inner::Full {
            objects: BTreeMap::new(),
            controller,
            time: 0,
        })
    }

    fn new(inner: Inner) -> Self {
        Self {
            inner,
            recorder: None,
            times: 0,
        }
    }

    /// Writes every logical time's changes to `recorder` (before they are timed).
    pub fn record(&mut self, recorder: Recorder) {
        self.recorder = Some(recorder);
    }

    pub fn mode(&self) -> &'static str {
        match self.inner {
            Inner::Incremental(_) => "incremental",
            Inner::Full { .. } => "full",
        }
    }

    /// When recording: `changes` as log events at the next logical time (the objects
    /// as the generator writes them as manifests).
    pub fn log(&mut self, changes: &[Change]) -> anyhow::Result<()> {
        let Some(recorder) = &mut self.recorder else {
            return Ok(());
        };
        let mut events = Vec::with_capacity(changes.len());
        for change in changes {
            events.push(match change {
                Change::Apply(o) => {
                    sluice_sources::log::apply(&generate::to_yaml(o)).ok_or_else(|| {
                        anyhow::anyhow!("{:?} {} has no name", o.id().kind, o.id().key)
                    })?
                }
                Change::Delete(id) => sluice_sources::log::delete(id),
            });
        }
        recorder.write(self.times, events)?;
        Ok(())
    }

    /// Flushes the recording to the disk.
    pub fn sync(&mut self) -> anyhow::Result<()> {
        if let Some(recorder) = &mut self.recorder {
            recorder.sync()?;
        }
        Ok(())
    }

    /// Applies one logical time's changes; returns when the xDS is ready.
    pub fn apply(&mut self, changes: Vec<Change>) -> anyhow::Result<Published> {
        self.times += 1;
        match &mut self.inner {
            Inner::Incremental(controller) => {
                let step = controller.apply(changes)?;
                Ok(Published {
                    pipeline: step.timings.pipeline,
                    gateways: step.xds,
                    complete: false,
                })
            }
            Inner::Full {
                objects,
                controller,
                time,
            } => {
                for change in changes {
                    match change {
                        Change::Apply(o) => objects.insert(o.id(), o),
                        Change::Delete(id) => objects.remove(&id),
                    };
                }
                *time += 1;
                let start = std::time::Instant::now();
                let delta = evaluate(objects.values().cloned(), controller).into_delta(*time);
                let pipeline = start.elapsed();
                let mut translator = Translator::new(EncodeConfig::default());
                Ok(Published {
                    pipeline,
                    gateways: translator.apply(&delta)?,
                    complete: true,
                })
            }
        }
    }
}

/// What the proxies have: the last published set per gateway, to count the
/// resources (and bytes) each time actually changed.
#[derive(Debug, Default)]
pub struct XdsView {
    gateways: BTreeMap<ObjectKey, Arc<GatewayResources>>,
}

/// Resources added, changed or removed at one time, over all gateways.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Emitted {
    pub resources: u64,
    pub bytes: u64,
    /// Of the latency, the time spent in the dataflow.
    pub pipeline: std::time::Duration,
}

/// The gateways whose resources changed at one time, with their new state (an
/// empty set for a gateway that is gone): what proxies are sent.
pub type Changed = Vec<(ObjectKey, Arc<GatewayResources>)>;

impl XdsView {
    pub fn absorb(&mut self, published: Published) -> (Emitted, Changed) {
        let mut emitted = Emitted {
            pipeline: published.pipeline,
            ..Emitted::default()
        };
        let mut changed = Changed::new();
        if published.complete {
            let time = published.gateways.values().map(|g| g.time).max();
            let gone: Vec<ObjectKey> = self
                .gateways
                .keys()
                .filter(|k| !published.gateways.contains_key(*k))
                .cloned()
                .collect();
            for key in gone {
                if let Some(old) = self.gateways.remove(&key) {
                    let empty = Arc::new(GatewayResources {
                        time: time.unwrap_or(old.time + 1),
                        ..GatewayResources::default()
                    });
                    emitted.add(diff(Some(&old), &empty));
                    changed.push((key, empty));
                }
            }
        }
        for (key, new) in published.gateways {
            let d = diff(self.gateways.get(&key).map(|a| a.as_ref()), &new);
            if d.resources > 0 {
                changed.push((key.clone(), new.clone()));
            }
            emitted.add(d);
            self.gateways.insert(key, new);
        }
        (emitted, changed)
    }

    /// Every gateway's current state.
    pub fn gateways(&self) -> impl Iterator<Item = (&ObjectKey, &Arc<GatewayResources>)> {
        self.gateways.iter()
    }
}

impl Emitted {
    fn add(&mut self, other: Emitted) {
        self.resources += other.resources;
        self.bytes += other.bytes;
        self.pipeline += other.pipeline;
    }
}

/// Resources of `new` that differ from `old` (by version), plus removals.
fn diff(old: Option<&GatewayResources>, new: &GatewayResources) -> Emitted {
    let mut emitted = Emitted::default();
    for (ty, resources) in new.by_type.iter().enumerate() {
        let before = old.map(|o| &o.by_type[ty]);
        for (name, r) in resources {
            let same = before
                .and_then(|b| b.get(name))
                .is_some_and(|o| Arc::ptr_eq(o, r) || o.version == r.version);
            if !same {
                emitted.resources += 1;
                emitted.bytes += r.body.len() as u64;
            }
        }
        if let Some(before) = before {
            emitted.resources += before
                .keys()
                .filter(|n| !resources.contains_key(*n))
                .count() as u64;
        }
    }
    emitted
}
