//! Every Gateway API conformance manifest loads without an error: the upstream
//! suite's YAML is the widest real-world input we have, so a document it contains
//! must at worst be skipped with a warning (Deployments, TLSRoutes, ...), never
//! stop the load. Reads the manifests of `../shared/gateway-api/conformance` (or
//! `$SLUICE_CONFORMANCE_CASES`) at run time; fails when they are absent, unless
//! `SLUICE_CONFORMANCE_OPTIONAL=1` says that is intended.

use std::path::{Path, PathBuf};

use sluice_pipeline::model::Object;
use sluice_sources::{Parsed, parse_manifests};

/// The manifests directory and a sentence saying where it comes from.
fn manifests_dir() -> (PathBuf, &'static str) {
    match std::env::var_os("SLUICE_CONFORMANCE_CASES") {
        Some(dir) => (
            PathBuf::from(dir).join("manifests"),
            "$SLUICE_CONFORMANCE_CASES",
        ),
        None => (
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/gateway-api/conformance/manifests"),
            "the default ../shared/gateway-api/conformance next to the workspace; \
             set $SLUICE_CONFORMANCE_CASES to use another copy",
        ),
    }
}

/// The suite's placeholders, filled in as the suite itself would.
fn fill_placeholders(text: &str) -> String {
    text.replace("{GATEWAY_CLASS_NAME}", "sluice")
        .replace("{GATEWAY_CONTROLLER_NAME}", "sluice.dev/gateway-controller")
}

fn manifest_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = vec![dir.join("base/manifests.yaml")];
    let mut tests: Vec<PathBuf> = std::fs::read_dir(dir.join("tests"))
        .expect("tests directory is readable")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    tests.sort();
    files.extend(tests);
    files
}

fn load(file: &Path) -> Parsed {
    let text = std::fs::read_to_string(file).expect("manifest is readable");
    let origin = file.display().to_string();
    match parse_manifests(&fill_placeholders(&text), &origin) {
        Ok(parsed) => parsed,
        Err(error) => panic!("{error}"),
    }
}

#[test]
fn every_conformance_manifest_loads() {
    let (dir, source) = manifests_dir();
    if !dir.is_dir() {
        let missing = format!("no conformance manifests in {} ({source})", dir.display());
        assert!(
            std::env::var_os("SLUICE_CONFORMANCE_OPTIONAL").is_some(),
            "{missing}; set SLUICE_CONFORMANCE_OPTIONAL=1 to accept running without them"
        );
        println!("skipped (SLUICE_CONFORMANCE_OPTIONAL): {missing}");
        return;
    }
    let files = manifest_files(&dir);
    assert!(files.len() > 1, "no test manifests in {}", dir.display());
    let (mut gateways, mut routes, mut warnings) = (0, 0, 0);
    for file in files {
        let parsed = load(&file);
        for warning in &parsed.warnings {
            println!("{warning}");
        }
        warnings += parsed.warnings.len();
        gateways += parsed
            .objects
            .iter()
            .filter(|o| matches!(o, Object::Gateway(_)))
            .count();
        routes += parsed
            .objects
            .iter()
            .filter(|o| matches!(o, Object::HttpRoute(_)))
            .count();
    }
    println!("{gateways} Gateways, {routes} HTTPRoutes, {warnings} warnings");
    assert!(
        gateways > 0 && routes > 0,
        "{gateways} Gateways, {routes} HTTPRoutes"
    );
}

/// The log's fast path (JSON text straight into the typed object) gives exactly the
/// record the general path (parse, then convert the tree) gives, for every object of
/// the conformance manifests; and it decides most of them itself, else it would not
/// be the fast path.
#[test]
fn fast_json_path_agrees_with_the_general_one() {
    let (dir, _) = manifests_dir();
    if !dir.is_dir() {
        assert!(
            std::env::var_os("SLUICE_CONFORMANCE_OPTIONAL").is_some(),
            "no conformance manifests in {}",
            dir.display()
        );
        return;
    }
    let (mut converted, mut fast) = (0, 0);
    for file in manifest_files(&dir) {
        let text = fill_placeholders(&std::fs::read_to_string(&file).expect("readable"));
        let (objects, _) = sluice_sources::raw_objects(&text, "f").expect("parses");
        for raw in objects {
            let value: serde_json::Value = serde_json::from_slice(&raw.json).expect("json");
            let general = sluice_sources::object_from_json(&value);
            let quick =
                sluice_sources::object_from_json_text(&raw.api_version, &raw.kind, &raw.json);
            if let Some(Ok(object)) = &general {
                converted += 1;
                fast += usize::from(quick.is_some());
                if let Some(quick) = quick {
                    assert_eq!(
                        &quick, object,
                        "{} {}/{}",
                        raw.kind, raw.namespace, raw.name
                    );
                }
            } else {
                assert_eq!(
                    quick, None,
                    "{} {}/{}: {general:?}",
                    raw.kind, raw.namespace, raw.name
                );
            }
        }
    }
    println!("{fast} of {converted} objects on the fast path");
    assert!(
        converted > 100 && fast * 10 >= converted * 9,
        "{fast} of {converted}"
    );
}
