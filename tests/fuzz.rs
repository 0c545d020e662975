//! Fault injection at the source boundary: every conformance manifest (and the
//! examples), mutated at random — lines deleted, duplicated, swapped and re-indented,
//! values replaced by hostile ones (huge and negative numbers, invalid regexes and
//! hostnames, control characters, YAML tags, anchors and aliases, 10 KB strings),
//! bytes flipped, text cut — goes through the manifest parser and, when it parses,
//! through the whole runtime (pipeline, translator, encoder, status) as one logical
//! time on top of the conformance base (namespaces, Gateways, Services, endpoints,
//! applied once, unmutated), and is taken back at the next time (its new objects
//! deleted, base objects it replaced restored).
//!
//! Each input must give objects or an error naming the input, never a panic, and
//! within a deadline (a hang fails the test, naming the input); taking an input back
//! must restore exactly the xDS resources and the statuses of the base. The budget
//! is bounded (`SLUICE_FUZZ_INPUTS`, default 4,000 inputs; `SLUICE_FUZZ_SEED` picks
//! the sequence, default fixed so CI is reproducible). A failing input is written to
//! `target/fuzz-failures/`.
//!
//! The corpus is `../shared/gateway-api/conformance/manifests` (or
//! `$SLUICE_CONFORMANCE_CASES/manifests`) and `examples/`; without the conformance
//! data the test fails, unless `SLUICE_CONFORMANCE_OPTIONAL` is set.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::collections::{BTreeMap, BTreeSet};

use sluice_pipeline::ir::{GatewayStatus, RouteParentStatus};
use sluice_pipeline::model::{Change, Object, ObjectId, ObjectKey};
use sluice_runtime::{Controller, ControllerConfig};
use sluice_sinks::encode::EncodeConfig;
use sluice_sinks::state::ResourceMap;

/// xorshift64*: a fixed, dependency-free sequence for a given seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that have broken parsers and translators before, or that the spec or
/// Envoy treat as invalid.
const HOSTILE: &[&str] = &[
    "0",
    "-1",
    "65536",
    "4294967296",
    "99999999999999999999999",
    "1e400",
    "-0.0",
    ".nan",
    "''",
    "null",
    "~",
    "[]",
    "{}",
    "true",
    "\"\\u0000\"",
    "\"a\\r\\nb\"",
    "\"\\t\"",
    "*",
    "bad_host!",
    "1.2.3.4",
    "\"(\"",
    "\"[z-a]\"",
    "\"\\\\u00e9\"",
    "\"a{2,1}\"",
    ":authority",
    "Host",
    "!!binary AAAA",
    "!!map {}",
    "&anchor x",
    "*anchor",
    "<<: *anchor",
    "\"ü∂\u{202e}\"",
    "/../..//%2e%2e/",
    "PathPrefix",
    "RegularExpression",
    "Selector",
    "gateway.networking.k8s.io",
    "Service",
    "v1",
    "'10000ms'",
    "'1h'",
    "'-5s'",
];

/// One mutation of `text`.
fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let n = lines.len();
    // Half of all mutations replace a value: they keep the YAML well-formed and
    // reach conversion, validation and translation.
    match rng.below(14) {
        0 => {
            lines.remove(rng.below(n));
        }
        1 => {
            let i = rng.below(n);
            let line = lines[i].clone();
            lines.insert(rng.below(n), line);
        }
        2 => lines.swap(rng.below(n), rng.below(n)),
        3 | 4 | 10 | 11 | 12 | 13 => {
            // A value replaced (after the first ": " or "- ").
            let i = rng.below(n);
            let line = &lines[i];
            let value = match rng.below(4) {
                0 => "a".repeat(10_000),
                _ => HOSTILE[rng.below(HOSTILE.len())].to_owned(),
            };
            if let Some(at) = line.find(": ") {
                lines[i] = format!("{}: {value}", &line[..at]);
            } else if let Some(at) = line.find("- ") {
                lines[i] = format!("{}- {value}", &line[..at]);
            }
        }
        5 => {
            let i = rng.below(n);
            lines[i] = if rng.below(2) == 0 {
                format!("  {}", lines[i])
            } else {
                lines[i].trim_start().to_owned()
            };
        }
        6 => {
            // A key renamed to another key of the document.
            let keys: Vec<String> = (lines.iter())
                .filter_map(|l| l.split_once(": ").map(|(k, _)| k.trim().to_owned()))
                .filter(|k| !k.is_empty())
                .collect();
            let i = rng.below(n);
            if let (Some((_, v)), false) = (lines[i].split_once(": "), keys.is_empty()) {
                let indent = lines[i].len() - lines[i].trim_start().len();
                let key = &keys[rng.below(keys.len())];
                lines[i] = format!("{}{key}: {v}", " ".repeat(indent));
            }
        }
        7 => {
            let mut bytes = lines.join("\n").into_bytes();
            if !bytes.is_empty() {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        8 => {
            let joined = lines.join("\n");
            let mut cut = rng.below(joined.len() + 1);
            while !joined.is_char_boundary(cut) {
                cut -= 1;
            }
            return joined[..cut].to_owned();
        }
        _ => {
            let joined = lines.join("\n");
            let mut at = rng.below(joined.len() + 1);
            while !joined.is_char_boundary(at) {
                at -= 1;
            }
            let punct = [
                "{", "}", "[", "]", ":", "- ", "'", "\"", "#", "&", "*", "!", "|", ">", "%", "@",
                "`", "\t", "\n---\n",
            ];
            let p = punct[rng.below(punct.len())];
            return format!("{}{p}{}", &joined[..at], &joined[at..]);
        }
    }
    lines.join("\n")
}

/// The conformance base manifests (placeholders filled in, with our GatewayClass),
/// and the corpus: every YAML file of the conformance manifests and the examples.
fn corpus() -> Option<(String, Vec<(PathBuf, String)>)> {
    let root = match std::env::var_os("SLUICE_CONFORMANCE_CASES") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/gateway-api/conformance"),
    };
    let manifests = root.join("manifests");
    if !manifests.is_dir() {
        let missing = format!(
            "no manifests/ in {} (set $SLUICE_CONFORMANCE_CASES to the conformance data)",
            root.display()
        );
        assert!(
            std::env::var_os("SLUICE_CONFORMANCE_OPTIONAL").is_some(),
            "{missing}; set SLUICE_CONFORMANCE_OPTIONAL=1 to accept running without it"
        );
        eprintln!("skipping (SLUICE_CONFORMANCE_OPTIONAL): {missing}");
        return None;
    }
    let mut files = vec![];
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut dirs = vec![manifests, examples];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable corpus directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let text = std::fs::read_to_string(&path).expect("corpus file");
                files.push((path, text));
            }
        }
    }
    files.sort();
    assert!(files.len() > 20, "a corpus of {} files", files.len());
    let fill = |t: &str| {
        t.replace("{GATEWAY_CLASS_NAME}", "sluice")
            .replace("{GATEWAY_CONTROLLER_NAME}", "sluice.dev/gateway-controller")
    };
    for (_, text) in &mut files {
        *text = fill(text);
    }
    let base = std::fs::read_to_string(root.join("manifests/base/manifests.yaml"))
        .expect("conformance base manifests");
    let class = "\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
                 metadata: {name: sluice}\nspec: {controllerName: sluice.dev/gateway-controller}\n";
    Some((fill(&base) + class, files))
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one input did.
enum Outcome {
    Parsed { objects: usize },
    Refused,
}

/// What proxies and status readers see: every Gateway's resources and every status.
type Seen = (
    Vec<(
        ObjectKey,
        [ResourceMap; sluice_sinks::state::TYPES],
        ResourceMap,
    )>,
    Vec<GatewayStatus>,
    Vec<(ObjectKey, Vec<RouteParentStatus>)>,
);

fn seen(controller: &Controller) -> Seen {
    let resources = (controller.gateways())
        .filter(|(_, r)| !r.is_empty())
        .map(|(k, r)| (k.clone(), r.by_type.clone(), r.api_listeners.clone()))
        .collect();
    let board = controller.status();
    let gateways = board.gateways().cloned().collect();
    let routes = (board.routes().into_iter())
        .map(|(k, parents)| (k.clone(), parents.into_iter().cloned().collect()))
        .collect();
    (resources, gateways, routes)
}

/// Parses `text`; what parses is applied as one time and taken back at the next
/// (new objects deleted, replaced base objects restored). What proxies and status
/// readers see must then be `base` again.
fn run_one(
    controller: &mut Controller,
    base: &BTreeMap<ObjectId, Object>,
    expected: &Seen,
    text: &str,
) -> Result<Outcome, String> {
    let parsed = match sluice_sources::parse_manifests(text, "fuzz.yaml") {
        Ok(parsed) => parsed,
        Err(e) => {
            // The error names where: a file, and a line or a document.
            let said = e.to_string();
            if !said.contains("fuzz.yaml") {
                return Err(format!("an error that does not name the input: {said}"));
            }
            return Ok(Outcome::Refused);
        }
    };
    let ids: BTreeSet<ObjectId> = parsed.objects.iter().map(|o| o.id()).collect();
    let objects = parsed.objects.len();
    controller
        .apply(parsed.objects.into_iter().map(Change::Apply))
        .map_err(|e| format!("applying: {e:#}"))?;
    let undo = ids.into_iter().map(|id| match base.get(&id) {
        Some(object) => Change::Apply(object.clone()),
        None => Change::Delete(id),
    });
    controller
        .apply(undo)
        .map_err(|e| format!("taking back: {e:#}"))?;
    if seen(controller) != *expected {
        return Err("taking the input back did not restore the base's xDS and status".into());
    }
    Ok(Outcome::Parsed { objects })
}

#[test]
fn mutated_manifests_give_objects_or_errors_never_panics_or_hangs() {
    let Some((base_text, corpus)) = corpus() else {
        return;
    };
    let base = sluice_sources::parse_manifests(&base_text, "base.yaml").expect("the base parses");
    // Deployments and ConfigMaps are skipped with a warning; nothing else may be.
    let unexpected: Vec<_> = (base.warnings.iter())
        .filter(|w| !w.message.contains("is not read by Sluice"))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    let base: BTreeMap<ObjectId, Object> = base.objects.into_iter().map(|o| (o.id(), o)).collect();
    let inputs = env_number("SLUICE_FUZZ_INPUTS", 4_000);
    let seed = env_number("SLUICE_FUZZ_SEED", 0x5eed_5107) | 1;
    let deadline = Duration::from_secs(env_number("SLUICE_FUZZ_DEADLINE_SECS", 20));
    let (work, todo) = mpsc::channel::<(u64, String)>();
    let (report, done) = mpsc::channel::<(u64, std::thread::Result<Result<Outcome, String>>)>();
    // The worker owns the runtime; a panic is caught per input and the runtime is
    // rebuilt (its state after a panic is not to be trusted).
    let worker = std::thread::spawn(move || {
        let config = || ControllerConfig {
            pipeline: Default::default(),
            encode: EncodeConfig::default(),
        };
        let start = || {
            let mut controller = Controller::new(config()).expect("runtime");
            let load = base.values().cloned().map(Change::Apply);
            controller.apply(load).expect("the base translates");
            controller
        };
        let mut controller = start();
        let expected = seen(&controller);
        assert!(!expected.0.is_empty(), "the base serves xDS");
        for (i, text) in todo {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_one(&mut controller, &base, &expected, &text)
            }));
            if !matches!(outcome, Ok(Ok(_))) {
                controller = start();
            }
            if report.send((i, outcome)).is_err() {
                return;
            }
        }
    });
    let failures = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
    let keep = |i: u64, text: &str| {
        let _ = std::fs::create_dir_all(&failures);
        let path = failures.join(format!("seed-{seed:x}-input-{i}.yaml"));
        let _ = std::fs::write(&path, text);
        path
    };
    let mut rng = Rng(seed);
    let (mut parsed, mut refused, mut objects) = (0u64, 0u64, 0usize);
    let started = Instant::now();
    for i in 0..inputs {
        let (path, original) = &corpus[rng.below(corpus.len())];
        let mut text = original.clone();
        for _ in 0..1 + rng.below(4) {
            text = mutate(&text, &mut rng);
        }
        work.send((i, text.clone())).expect("worker alive");
        match done.recv_timeout(deadline) {
            Ok((_, Ok(Ok(Outcome::Parsed { objects: n })))) => {
                parsed += 1;
                objects += n;
            }
            Ok((_, Ok(Ok(Outcome::Refused)))) => refused += 1,
            Ok((_, Ok(Err(why)))) => {
                let kept = keep(i, &text);
                panic!(
                    "input {i} (from {}, kept in {}): {why}",
                    path.display(),
                    kept.display()
                );
            }
            Ok((_, Err(panic))) => {
                let kept = keep(i, &text);
                let what = (panic.downcast_ref::<String>().cloned())
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!(
                    "input {i} (from {}, kept in {}) panicked: {what}",
                    path.display(),
                    kept.display()
                );
            }
            Err(_) => {
                let kept = keep(i, &text);
                panic!(
                    "input {i} (from {}, kept in {}) took longer than {deadline:?}: a hang",
                    path.display(),
                    kept.display()
                );
            }
        }
    }
    drop(work);
    worker.join().expect("worker ends");
    eprintln!(
        "{inputs} inputs (seed {seed:#x}) in {:.1?}: {parsed} parsed ({objects} objects applied and deleted), {refused} refused with an error",
        started.elapsed()
    );
    // The mutations must leave most inputs parseable, or the runtime is not exercised.
    assert!(
        parsed * 4 >= inputs,
        "only {parsed} of {inputs} inputs parsed"
    );
    assert!(
        refused > 0,
        "no input was refused: the mutations are too tame"
    );
}
