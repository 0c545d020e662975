//! `--plot`: latency against cluster size, from a directory of reports, as a
//! hand-written SVG. One colour per change type; p99 solid, p50 dashed; full-
//! recompute reports dotted. Both axes are logarithmic.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

/// (mode, change type) → points (routes, p50 ms, p99 ms), sorted by routes.
type Series = BTreeMap<(String, String), Vec<(f64, f64, f64)>>;

const WIDTH: f64 = 980.0;
const HEIGHT: f64 = 600.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 250.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLOURS: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

pub fn render(dir: &Path, svg: &Path) -> anyhow::Result<()> {
    let series = read_reports(dir)?;
    anyhow::ensure!(
        !series.is_empty(),
        "no reports with changes in {}",
        dir.display()
    );
    let text = draw(&series);
    std::fs::write(svg, text).with_context(|| format!("writing {}", svg.display()))?;
    eprintln!("wrote {}", svg.display());
    Ok(())
}

fn read_reports(dir: &Path) -> anyhow::Result<Series> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let mut series = Series::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)?;
        let report: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let mode = report["mode"].as_str().unwrap_or("incremental").to_owned();
        let routes = report["routes"].as_f64().unwrap_or(0.0);
        let Some(changes) = report["changes"].as_object() else {
            continue;
        };
        for (kind, s) in changes {
            let (p50, p99) = (s["p50_ms"].as_f64(), s["p99_ms"].as_f64());
            if let (Some(p50), Some(p99)) = (p50, p99) {
                let key = (mode.clone(), kind.clone());
                series.entry(key).or_default().push((routes, p50, p99));
            }
        }
    }
    for points in series.values_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Ok(series)
}

/// A log10 axis over `[lo, hi]` decades mapped onto `[from, to]` pixels.
struct Axis {
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
}

impl Axis {
    fn fit(values: impl Iterator<Item = f64>, from: f64, to: f64) -> Self {
        let (mut lo, mut hi) = (f64::MAX, f64::MIN);
        for v in values.filter(|v| *v > 0.0) {
            lo = lo.min(v.log10());
            hi = hi.max(v.log10());
        }
        let (lo, hi) = if lo > hi {
            (0.0, 1.0)
        } else {
            (lo.floor(), hi.ceil().max(lo.floor() + 1.0))
        };
        Axis { lo, hi, from, to }
    }

    fn at(&self, v: f64) -> f64 {
        let t = (v.max(1e-9).log10() - self.lo) / (self.hi - self.lo);
        self.from + t * (self.to - self.from)
    }

    fn decades(&self) -> impl Iterator<Item = f64> {
        (self.lo as i32..=self.hi as i32).map(|e| 10f64.powi(e))
    }
}

fn draw(series: &Series) -> String {
    let points = || series.values().flatten();
    let x = Axis::fit(points().map(|p| p.0), LEFT, WIDTH - RIGHT);
    let y = Axis::fit(points().flat_map(|p| [p.1, p.2]), HEIGHT - BOTTOM, TOP);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="24" font-size="15">Sluice: change → xDS latency vs routes (p99 solid, p50 dashed; full recompute dotted)</text>"#
    );
    grid(&mut s, &x, &y);
    let kinds: Vec<&String> = {
        let mut k: Vec<&String> = series.keys().map(|(_, kind)| kind).collect();
        k.sort();
        k.dedup();
        k
    };
    for (i, ((mode, kind), pts)) in series.iter().enumerate() {
        let colour = COLOURS[kinds.iter().position(|k| *k == kind).unwrap_or(i) % COLOURS.len()];
        let full = mode == "full";
        line(
            &mut s,
            pts.iter().map(|p| (x.at(p.0), y.at(p.2))),
            colour,
            if full { "2,3" } else { "" },
        );
        line(
            &mut s,
            pts.iter().map(|p| (x.at(p.0), y.at(p.1))),
            colour,
            if full { "2,3" } else { "6,4" },
        );
    }
    legend(&mut s, &kinds);
    s.push_str("</svg>\n");
    s
}

fn grid(s: &mut String, x: &Axis, y: &Axis) {
    for v in x.decades() {
        let px = x.at(v);
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#ddd"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM + 18.0,
            v
        );
    }
    for v in y.decades() {
        let py = y.at(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            v
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">HTTPRoutes</text><text x="18" y="{:.1}" transform="rotate(-90 18 {:.1})" text-anchor="middle">ms</text>"#,
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 20.0,
        (TOP + HEIGHT - BOTTOM) / 2.0,
        (TOP + HEIGHT - BOTTOM) / 2.0
    );
}

fn line(s: &mut String, points: impl Iterator<Item = (f64, f64)>, colour: &str, dash: &str) {
    let pts: Vec<(f64, f64)> = points.collect();
    let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ = writeln!(
        s,
        r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="1.8" stroke-dasharray="{dash}"/>"#,
        path.join(" ")
    );
    for (x, y) in pts {
        let _ = writeln!(
            s,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{colour}"/>"#
        );
    }
}

fn legend(s: &mut String, kinds: &[&String]) {
    let x = WIDTH - RIGHT + 20.0;
    for (i, kind) in kinds.iter().enumerate() {
        let y = TOP + 20.0 + 20.0 * i as f64;
        let colour = COLOURS[i % COLOURS.len()];
        let _ = writeln!(
            s,
            r#"<line x1="{x}" y1="{y}" x2="{:.1}" y2="{y}" stroke="{colour}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{kind}</text>"#,
            x + 24.0,
            x + 30.0,
            y + 4.0
        );
    }
}
