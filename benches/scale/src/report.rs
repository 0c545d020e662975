//! The report: a JSON document with plainly named fields, and a terminal table.

use std::fmt::Write;

use serde_json::{Value, json};

use super::Config;
use super::measure::Summary;
use super::phases::Outcome;

const MIB: f64 = 1024.0 * 1024.0;

fn summary_json(s: &Summary, proxies: bool) -> Value {
    let mut v = json!({
        "count": s.count,
        "p50_ms": round(s.p50_ms),
        "p99_ms": round(s.p99_ms),
        "max_ms": round(s.max_ms),
        "throughput_per_s": round(s.throughput_per_s),
        "xds_resources": round(s.xds_resources),
        "xds_bytes": round(s.xds_bytes),
        "pipeline_p50_ms": round(s.pipeline_p50_ms),
        "pipeline_p99_ms": round(s.pipeline_p99_ms),
    });
    if proxies {
        v["proxies_count"] = json!(s.proxies_count);
        v["proxies_p50_ms"] = json!(round(s.proxies_p50_ms));
        v["proxies_p99_ms"] = json!(round(s.proxies_p99_ms));
        v["proxies_timeouts"] = json!(s.proxies_timeouts);
    }
    v
}

/// Four decimals: enough for microseconds in milliseconds, and stable text.
fn round(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

pub fn json(config: &Config, out: &Outcome) -> Value {
    let changes: serde_json::Map<String, Value> = out
        .churn
        .iter()
        .map(|(kind, s)| {
            (
                kind.name().to_owned(),
                summary_json(s, out.proxies.is_some()),
            )
        })
        .collect();
    let batched = out.batched.as_ref().map(|b| {
        json!({"changes": b.changes, "batch": config.batch, "times": b.times,
               "ms": round(b.ms), "per_s": round(b.per_s)})
    });
    let mix: serde_json::Map<String, Value> = config
        .mix
        .iter()
        .map(|(k, n)| (k.name().to_owned(), json!(n)))
        .collect();
    let m = &out.memory;
    let proxies = out.proxies.as_ref().map(|p| {
        json!({"count": p.count, "sync_ms": round(p.sync_ms),
               "rss_before_bytes": p.rss_before_bytes,
               "rss_connected_bytes": p.rss_connected_bytes,
               "rss_per_proxy_bytes": p.rss_per_proxy_bytes,
               "failed": p.failed})
    });
    json!({
        "preset": config.preset.name(),
        "mode": out.mode,
        "seed": config.seed,
        "workers": config.workers,
        "namespaces": out.counts.namespaces,
        "gateways": out.counts.gateways,
        "routes": out.counts.routes,
        "services": out.counts.services,
        "endpoints": out.counts.endpoints,
        "objects": out.counts.objects,
        "mix": mix,
        "churn_cycles": config.churn_cycles,
        "initial_load": {"ms": round(out.initial.max_ms),
                         "pipeline_ms": round(out.initial.pipeline_p50_ms),
                         "xds_resources": out.initial.xds_resources,
                         "xds_bytes": out.initial.xds_bytes},
        "changes": changes,
        "batched": batched,
        "teardown": {"ms": round(out.teardown.max_ms),
                     "pipeline_ms": round(out.teardown.pipeline_p50_ms)},
        "rss_before_load_bytes": m.before_load,
        "rss_after_initial_bytes": m.after_initial,
        "peak_rss_after_initial_bytes": m.peak_after_initial,
        "rss_after_cycle_bytes": m.after_cycles,
        "rss_after_churn_bytes": m.after_churn,
        "peak_rss_bytes": m.peak,
        "final_rss_bytes": m.final_,
        "proxies": out.proxies.as_ref().map_or(0, |p| p.count),
        "rss_per_proxy_bytes": out.proxies.as_ref().map(|p| p.rss_per_proxy_bytes),
        "proxy_fleet": proxies,
    })
}

/// The terminal table; "dd" columns are the dataflow's share of the latency.
pub fn table(config: &Config, out: &Outcome) -> String {
    let c = &out.counts;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "preset {} ({} mode, seed {}, {} worker(s)): {} namespaces, {} gateways, {} routes, {} services, {} endpoints",
        config.preset.name(),
        out.mode,
        config.seed,
        config.workers,
        c.namespaces,
        c.gateways,
        c.routes,
        c.services,
        c.endpoints
    );
    let _ = writeln!(
        t,
        "{:<18} {:>7} {:>10} {:>10} {:>10} {:>12} {:>9} {:>11} {:>10} {:>10}",
        "phase / change",
        "count",
        "p50 ms",
        "p99 ms",
        "max ms",
        "changes/s",
        "xds res",
        "xds bytes",
        "dd p50 ms",
        "dd p99 ms"
    );
    let mut row = |name: &str, s: &Summary| {
        let _ = writeln!(
            t,
            "{:<18} {:>7} {:>10.3} {:>10.3} {:>10.3} {:>12.0} {:>9.1} {:>11.0} {:>10.3} {:>10.3}",
            name,
            s.count,
            s.p50_ms,
            s.p99_ms,
            s.max_ms,
            s.throughput_per_s,
            s.xds_resources,
            s.xds_bytes,
            s.pipeline_p50_ms,
            s.pipeline_p99_ms
        );
    };
    row("initial load", &out.initial);
    for (kind, s) in &out.churn {
        row(kind.name(), s);
    }
    row("teardown", &out.teardown);
    if let Some(b) = &out.batched {
        let _ = writeln!(
            t,
            "batched endpoint churn: {} changes in {} times of {} : {:.1} ms, {:.0} changes/s",
            b.changes, b.times, config.batch, b.ms, b.per_s
        );
    }
    if let Some(p) = &out.proxies {
        let _ = writeln!(
            t,
            "{} proxies: initial sync {:.1} ms, {:.1} KiB RSS per proxy, {} streams failed",
            p.count,
            p.sync_ms,
            p.rss_per_proxy_bytes as f64 / 1024.0,
            p.failed
        );
        let _ = writeln!(
            t,
            "{:<18} {:>7} {:>14} {:>14} {:>9}",
            "until all proxies", "count", "p50 ms", "p99 ms", "timeouts"
        );
        for (kind, s) in &out.churn {
            let _ = writeln!(
                t,
                "{:<18} {:>7} {:>14.3} {:>14.3} {:>9}",
                kind.name(),
                s.proxies_count,
                s.proxies_p50_ms,
                s.proxies_p99_ms,
                s.proxies_timeouts
            );
        }
    }
    let m = &out.memory;
    let cycles: Vec<String> = m
        .after_cycles
        .iter()
        .map(|b| format!("{:.1}", *b as f64 / MIB))
        .collect();
    let _ = write!(
        t,
        "RSS MiB: before load {:.1}, after initial {:.1} (peak {:.1}), after each cycle [{}], after churn {:.1}, peak {:.1}, final {:.1}",
        m.before_load as f64 / MIB,
        m.after_initial as f64 / MIB,
        m.peak_after_initial as f64 / MIB,
        cycles.join(", "),
        m.after_churn as f64 / MIB,
        m.peak as f64 / MIB,
        m.final_ as f64 / MIB
    );
    t
}
