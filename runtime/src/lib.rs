//! Sluice's runtime: one component, the [`Controller`], that every mode drives.
//!
//! ```text
//!            one logical time                     ┌─ xDS stream ──► Translator ──► Step::xds
//!  source ── Vec<Change> ──► Controller::apply ─► Pipeline ─ Delta ─┤              (gateways whose resources changed)
//!  (files, generator,                                              └─ status stream ► StatusBoard ─► Step::status
//!   event log, kube)                                                                  (the status records that changed)
//! ```
//!
//! `serve` (files), `translate`, `scale` and the coming `replay` and Kubernetes modes
//! are sources and sinks around it: a source hands the changes of one logical time to
//! [`Controller::apply`]; the [`Step`] it gets back carries the published xDS sets
//! (hand them to an `XdsHub`), the status changes (hand them to a status writer) and
//! the timings of each stage. No mode wires the pipeline, the translator or the status
//! board itself.
//!
//! # Contract
//! - Each call is one complete logical time: the pipeline's frontier has passed it,
//!   the translator has encoded all of it, and the board reflects all of it. A caller
//!   never sees half a change.
//! - `Step::xds` holds the new full resource set of exactly the gateways whose
//!   resources changed at that time (a gateway that lost everything appears once with
//!   an empty set). `Step::status` is the net change of the status records.
//! - The controller is single-threaded from the caller's point of view (the dataflow
//!   runs on its own timely worker threads); drive it from one thread.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_pipeline::ir::StatusOutput;
use sluice_pipeline::model::{Change, Object, ObjectId, ObjectKey};
use sluice_pipeline::{Pipeline, PipelineConfig};
use sluice_sinks::encode::EncodeConfig;
use sluice_sinks::state::GatewayResources;
use sluice_sinks::status::StatusBoard;
use sluice_sinks::translator::Translator;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Pipeline(#[from] sluice_pipeline::Error),
    #[error(transparent)]
    Sinks(#[from] sluice_sinks::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a controller is built from, fixed before it starts.
#[derive(Clone, Debug, Default)]
pub struct ControllerConfig {
    pub pipeline: PipelineConfig,
    /// Where Envoy listeners bind (addresses, port offset).
    pub encode: EncodeConfig,
}

/// The gateways whose xDS resources changed at one time, with their new full sets.
pub type Published = BTreeMap<ObjectKey, Arc<GatewayResources>>;

/// How long each stage of one logical time took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timings {
    /// The dataflow, from the changes in to the complete output delta.
    pub pipeline: Duration,
    /// Encoding the xDS stream into the gateways' resource sets.
    pub translate: Duration,
    /// Applying the status stream to the status board.
    pub status: Duration,
}

impl Timings {
    pub fn total(&self) -> Duration {
        self.pipeline + self.translate + self.status
    }
}

/// What one logical time produced.
#[derive(Debug)]
pub struct Step {
    pub time: u64,
    /// Input changes handed in (before the pipeline drops no-ops).
    pub changes: usize,
    /// Output records that changed (xDS and status, added plus removed).
    pub outputs: usize,
    pub xds: Published,
    /// The net change of the status records (consolidated: +1 added, -1 removed).
    pub status: Vec<(StatusOutput, isize)>,
    pub timings: Timings,
}

/// The pipeline, the translator and the status board, driven one logical time at a
/// time. See the crate docs for the contract.
#[derive(Debug)]
pub struct Controller {
    pipeline: Pipeline,
    translator: Translator,
    board: StatusBoard,
    controller_name: String,
    encode: EncodeConfig,
}

impl Controller {
    pub fn new(config: ControllerConfig) -> Result<Self> {
        let ControllerConfig {
            mut pipeline,
            encode,
        } = config;
        // One offset: what the encoder binds is what the pipeline validates.
        pipeline.port_offset = encode.port_offset;
        pipeline.bind_addresses = encode.bind.clone();
        let controller_name = pipeline.controller_name.clone();
        Ok(Self {
            pipeline: Pipeline::new(pipeline)?,
            translator: Translator::new(encode.clone()),
            board: StatusBoard::default(),
            controller_name,
            encode,
        })
    }

    /// Applies one logical time's changes and returns what they produced.
    pub fn apply(&mut self, changes: impl IntoIterator<Item = Change>) -> Result<Step> {
        let changes: Vec<Change> = changes.into_iter().collect();
        let n = changes.len();
        let started = Instant::now();
        let delta = self.pipeline.apply(changes)?;
        let pipeline = started.elapsed();
        let outputs = delta.len();

        let started = Instant::now();
        let published = self.translator.apply(&delta)?;
        let translate = started.elapsed();

        let started = Instant::now();
        self.board.apply(delta.time, &delta.status);
        let status_time = started.elapsed();

        Ok(Step {
            time: delta.time,
            changes: n,
            outputs,
            xds: published,
            status: delta.status,
            timings: Timings {
                pipeline,
                translate,
                status: status_time,
            },
        })
    }

    /// The next logical time [`Controller::apply`] will use.
    pub fn time(&self) -> u64 {
        self.pipeline.time()
    }

    /// The current objects, as the changes so far left them.
    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.pipeline.objects()
    }

    /// A copy of the current objects (O(1): the map is persistent).
    pub fn object_map(&self) -> imbl::OrdMap<ObjectId, Object> {
        self.pipeline.object_map()
    }

    /// The last published resource set of every gateway that has resources.
    pub fn gateways(&self) -> impl Iterator<Item = (&ObjectKey, &Arc<GatewayResources>)> {
        self.translator.gateways()
    }

    pub fn translator(&self) -> &Translator {
        &self.translator
    }

    /// The current status of every Gateway and route (cheap to clone: persistent maps).
    pub fn status(&self) -> &StatusBoard {
        &self.board
    }

    /// The `controllerName` this controller answers for.
    pub fn controller_name(&self) -> &str {
        &self.controller_name
    }

    pub fn encode_config(&self) -> &EncodeConfig {
        &self.encode
    }
}
