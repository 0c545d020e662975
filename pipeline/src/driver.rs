//! Running the dataflow: timely workers on dedicated threads, fed one logical time
//! at a time.
//!
//! [`Pipeline::apply`] takes the changes of one logical time, turns them into
//! record updates (a replace retracts the previous record, a delete retracts it,
//! repeated applies of an identical object are no-ops), runs every worker until the
//! dataflow's frontier has passed that time, and returns the consolidated net output
//! changes. A caller therefore only ever sees complete times.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::input::{Input, InputSession};
use timely::WorkerConfig;
use timely::dataflow::ProbeHandle;
use timely::worker::Worker;

use crate::dataflow::{Translation, translate};
use crate::ir::{Delta, Outputs, StatusOutput, XdsOutput};
use crate::model::{Change, Object, ObjectId};
use crate::{Error, Result};

/// The default `controllerName` Sluice answers for.
pub const DEFAULT_CONTROLLER: &str = "sluice.dev/gateway-controller";

#[derive(Clone, Debug)]
pub struct PipelineConfig {
    pub workers: usize,
    pub controller_name: String,
    /// Added to every listener port for the port the proxies bind: a listener whose
    /// port plus this is past 65535 is not accepted (`PortUnavailable`).
    pub port_offset: u16,
    /// Where the proxies bind each Gateway's listeners (the encoder's setting): a
    /// Gateway's `spec.addresses` are judged against it.
    pub bind_addresses: crate::spec::gateway::BindAddresses,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            controller_name: DEFAULT_CONTROLLER.to_string(),
            port_offset: 0,
            bind_addresses: Default::default(),
        }
    }
}

enum Command {
    Step {
        time: u64,
        updates: Vec<(Object, isize)>,
    },
}

/// One worker's share of one time's output changes, per stream.
#[derive(Default)]
struct Captured {
    xds: Vec<(XdsOutput, isize)>,
    status: Vec<(StatusOutput, isize)>,
}

struct WorkerReport {
    time: u64,
    captured: Captured,
}

/// A running translation pipeline.
pub struct Pipeline {
    commands: Vec<Sender<Command>>,
    reports: Receiver<std::result::Result<WorkerReport, String>>,
    guards: Option<timely::communication::initialize::WorkerGuards<()>>,
    /// Persistent, so that a copy of the current objects is cheap ([`Pipeline::object_map`]).
    objects: imbl::OrdMap<ObjectId, Object>,
    next_time: u64,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("workers", &self.commands.len())
            .field("time", &self.next_time)
            .finish()
    }
}

type Inbox = Arc<Mutex<Vec<Option<Receiver<Command>>>>>;

impl Pipeline {
    pub fn new(config: PipelineConfig) -> Result<Self> {
        let workers = config.workers.max(1);
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..workers).map(|_| channel()).unzip();
        let inbox: Inbox = Arc::new(Mutex::new(receivers.into_iter().map(Some).collect()));
        let (report_tx, reports) = channel();
        let report_tx = Mutex::new(report_tx);
        let controller = config.controller_name;
        let max_port = u16::MAX - config.port_offset;
        let bind = config.bind_addresses;
        let timely_config = timely::Config {
            communication: timely::CommunicationConfig::Process(workers),
            worker: WorkerConfig::default(),
        };
        let guards = timely::execute(timely_config, move |worker| {
            let rx = inbox
                .lock()
                .ok()
                .and_then(|mut v| v.get_mut(worker.index()).and_then(Option::take));
            let tx = report_tx.lock().map(|t| t.clone());
            if let (Some(rx), Ok(tx)) = (rx, tx) {
                run_worker(worker, rx, tx, controller.clone(), max_port, bind.clone());
            }
        })
        .map_err(Error::Timely)?;
        Ok(Self {
            commands: senders,
            reports,
            guards: Some(guards),
            objects: imbl::OrdMap::new(),
            next_time: 0,
        })
    }

    /// The current objects, as the changes so far left them.
    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.objects.values()
    }

    /// A copy of the current objects (O(1): the map is persistent).
    pub fn object_map(&self) -> imbl::OrdMap<ObjectId, Object> {
        self.objects.clone()
    }

    /// The next logical time `apply` will use.
    pub fn time(&self) -> u64 {
        self.next_time
    }

    /// Apply one logical time's changes; returns the net output changes.
    pub fn apply(&mut self, changes: impl IntoIterator<Item = Change>) -> Result<Delta> {
        let updates = self.record_updates(changes);
        self.step(updates)
    }

    fn record_updates(
        &mut self,
        changes: impl IntoIterator<Item = Change>,
    ) -> Vec<(Object, isize)> {
        let mut updates = vec![];
        for change in changes {
            match change {
                Change::Apply(obj) => {
                    let id = obj.id();
                    if let Some(old) = self.objects.insert(id, obj.clone()) {
                        updates.push((old, -1));
                    }
                    updates.push((obj, 1));
                }
                Change::Delete(id) => {
                    if let Some(old) = self.objects.remove(&id) {
                        updates.push((old, -1));
                    }
                }
            }
        }
        consolidate(&mut updates);
        updates
    }

    fn step(&mut self, updates: Vec<(Object, isize)>) -> Result<Delta> {
        let time = self.next_time;
        self.next_time += 1;
        let mut updates = Some(updates);
        for tx in &self.commands {
            let batch = updates.take().unwrap_or_default();
            tx.send(Command::Step {
                time,
                updates: batch,
            })
            .map_err(|_| Error::WorkerGone)?;
        }
        let mut delta = Delta {
            time,
            ..Delta::default()
        };
        for _ in 0..self.commands.len() {
            let report = self
                .reports
                .recv()
                .map_err(|_| Error::WorkerGone)?
                .map_err(Error::Worker)?;
            debug_assert_eq!(report.time, time);
            delta.xds.extend(report.captured.xds);
            delta.status.extend(report.captured.status);
        }
        consolidate(&mut delta.xds);
        consolidate(&mut delta.status);
        Ok(delta)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.commands.clear(); // workers see their inbox close and return
        if let Some(guards) = self.guards.take() {
            drop(guards.join());
        }
    }
}

/// The translation dataflow on one worker: its input, and the output updates of
/// each time, captured per stream for the caller.
struct Dataflow {
    input: InputSession<u64, Object, isize>,
    probe: ProbeHandle<u64>,
    captured: Rc<RefCell<Captured>>,
}

impl Dataflow {
    fn build(
        worker: &mut Worker,
        controller: String,
        max_port: u16,
        bind: crate::spec::gateway::BindAddresses,
    ) -> Self {
        let captured: Rc<RefCell<Captured>> = Rc::default();
        let (xds_sink, status_sink) = (captured.clone(), captured.clone());
        let probe = ProbeHandle::new();
        let input = worker.dataflow::<u64, _, _>(|scope| {
            let (input, objects) = scope.new_collection::<Object, isize>();
            let Translation { xds, status } = translate(objects, controller, max_port, bind);
            xds.inspect_batch(move |_time, batch| {
                let xds = &mut xds_sink.borrow_mut().xds;
                xds.extend(batch.iter().map(|(d, _, r)| (d.clone(), *r)));
            })
            .probe_with(&probe);
            status
                .inspect_batch(move |_time, batch| {
                    let status = &mut status_sink.borrow_mut().status;
                    status.extend(batch.iter().map(|(d, _, r)| (d.clone(), *r)));
                })
                .probe_with(&probe);
            input
        });
        Self {
            input,
            probe,
            captured,
        }
    }

    /// Feed one time's updates and step until the outputs for it are complete.
    fn step(&mut self, worker: &mut Worker, time: u64, updates: Vec<(Object, isize)>) -> Captured {
        for (obj, diff) in updates {
            self.input.update(obj, diff);
        }
        self.input.advance_to(time + 1);
        self.input.flush();
        while self.probe.less_than(self.input.time()) {
            worker.step();
        }
        std::mem::take(&mut *self.captured.borrow_mut())
    }
}

fn run_worker(
    worker: &mut Worker,
    commands: Receiver<Command>,
    reports: Sender<std::result::Result<WorkerReport, String>>,
    controller: String,
    max_port: u16,
    bind: crate::spec::gateway::BindAddresses,
) {
    let mut dataflow = Dataflow::build(worker, controller, max_port, bind);
    while let Ok(Command::Step { time, updates }) = commands.recv() {
        let captured = dataflow.step(worker, time, updates);
        if reports.send(Ok(WorkerReport { time, captured })).is_err() {
            return;
        }
    }
}

/// Translate `objects` from scratch in a fresh dataflow on the calling thread: the
/// full-recompute reference for tests and baselines. Returns both output streams,
/// each sorted.
pub fn evaluate(objects: impl IntoIterator<Item = Object>, controller: &str) -> Outputs {
    let objects: Vec<Object> = objects.into_iter().collect();
    let controller = controller.to_string();
    timely::execute_directly(move |worker| {
        let mut dataflow = Dataflow::build(worker, controller, u16::MAX, Default::default());
        let updates = objects.into_iter().map(|o| (o, 1)).collect();
        let Captured { xds, status } = dataflow.step(worker, 0, updates);
        Outputs {
            xds: present(xds),
            status: present(status),
        }
    })
}

/// The records of consolidated updates from an empty state, sorted.
fn present<T: Ord>(mut updates: Vec<(T, isize)>) -> Vec<T> {
    consolidate(&mut updates);
    updates
        .into_iter()
        .filter(|(_, d)| *d > 0)
        .map(|(o, _)| o)
        .collect()
}
