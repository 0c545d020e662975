//! Latency samples, their summary, process memory, and a progress bar.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::engine::Emitted;
use super::proxies::Delivery;

/// Latencies (and emitted xDS) of one change type in one phase.
#[derive(Debug, Default)]
pub struct Samples {
    latencies: Vec<Duration>,
    pipeline: Vec<Duration>,
    emitted: Emitted,
    /// With `--proxies`: from publication until every affected proxy had the change.
    proxies: Vec<Duration>,
    proxy_timeouts: usize,
}

/// The summary a report shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub total_ms: f64,
    pub throughput_per_s: f64,
    /// Means per change.
    pub xds_resources: f64,
    pub xds_bytes: f64,
    /// Percentiles of the dataflow's share of the latency alone.
    pub pipeline_p50_ms: f64,
    pub pipeline_p99_ms: f64,
    /// With `--proxies`: changes that reached proxies, their delivery percentiles
    /// (until all affected proxies had them), and changes not delivered in time.
    pub proxies_count: usize,
    pub proxies_p50_ms: f64,
    pub proxies_p99_ms: f64,
    pub proxies_timeouts: usize,
}

impl Samples {
    pub fn push(&mut self, latency: Duration, emitted: Emitted) {
        self.latencies.push(latency);
        self.pipeline.push(emitted.pipeline);
        self.emitted.resources += emitted.resources;
        self.emitted.bytes += emitted.bytes;
    }

    pub fn push_delivery(&mut self, delivery: Delivery) {
        match delivery {
            Delivery::All(d) => self.proxies.push(d),
            Delivery::TimedOut => self.proxy_timeouts += 1,
            Delivery::NoProxies => {}
        }
    }

    pub fn summary(&self) -> Summary {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let count = sorted.len();
        let mut pipeline = self.pipeline.clone();
        pipeline.sort();
        let mut proxies = self.proxies.clone();
        proxies.sort();
        let total: Duration = sorted.iter().sum();
        let per_change = |x: u64| {
            if count == 0 {
                0.0
            } else {
                x as f64 / count as f64
            }
        };
        Summary {
            count,
            p50_ms: ms(percentile(&sorted, 50.0)),
            p99_ms: ms(percentile(&sorted, 99.0)),
            max_ms: ms(sorted.last().copied().unwrap_or_default()),
            total_ms: ms(total),
            throughput_per_s: if total.is_zero() {
                0.0
            } else {
                count as f64 / total.as_secs_f64()
            },
            xds_resources: per_change(self.emitted.resources),
            xds_bytes: per_change(self.emitted.bytes),
            pipeline_p50_ms: ms(percentile(&pipeline, 50.0)),
            pipeline_p99_ms: ms(percentile(&pipeline, 99.0)),
            proxies_count: proxies.len(),
            proxies_p50_ms: ms(percentile(&proxies, 50.0)),
            proxies_p99_ms: ms(percentile(&proxies, 99.0)),
            proxies_timeouts: self.proxy_timeouts,
        }
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Resident memory from `/proc/self/status`: (current VmRSS, peak VmHWM) in bytes;
/// zeros where the file is not there (not Linux).
pub fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A one-line progress bar on stderr, redrawn at most every 200 ms (only on a
/// terminal; elsewhere one line per phase when it finishes).
#[derive(Debug)]
pub struct Progress {
    label: String,
    terminal: bool,
    total: usize,
    done: usize,
    last: Instant,
}

const BAR: usize = 30;

impl Progress {
    pub fn new(label: &str, total: usize) -> Self {
        let p = Self {
            label: label.to_owned(),
            terminal: std::io::stderr().is_terminal(),
            total,
            done: 0,
            last: Instant::now(),
        };
        if p.terminal {
            p.draw();
        }
        p
    }

    pub fn tick(&mut self, n: usize) {
        self.done += n;
        if self.terminal && self.last.elapsed() >= Duration::from_millis(200) {
            self.last = Instant::now();
            self.draw();
        }
    }

    pub fn finish(mut self) {
        self.done = self.done.max(self.total);
        self.draw();
        eprintln!();
    }

    fn draw(&self) {
        let filled = (self.done * BAR)
            .checked_div(self.total)
            .unwrap_or(BAR)
            .min(BAR);
        let mut err = std::io::stderr().lock();
        // Progress is best effort: a closed stderr must not stop the run.
        let _ = write!(
            err,
            "\r{:<12} [{}{}] {}/{}",
            self.label,
            "#".repeat(filled),
            ".".repeat(BAR - filled),
            self.done,
            self.total
        );
        let _ = err.flush();
    }
}
