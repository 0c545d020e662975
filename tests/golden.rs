//! Golden tests: each directory under `tests/golden/` holds `input.yaml` (manifests,
//! with a header saying which spec rules it exercises) and `expected.yaml`, the full
//! output of `sluice translate` (xDS per Gateway and every status). Regenerate with
//! `SLUICE_BLESS=1 cargo test --test golden` and review the diff against the spec.

use std::path::{Path, PathBuf};
use std::process::Command;

fn golden_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/golden exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("input.yaml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn translate(input: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("translate")
        .arg(input)
        .env("SLUICE_LOG", "warn")
        .output()
        .expect("run sluice");
    assert!(
        out.status.success(),
        "sluice translate {} failed: {}",
        input.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn golden_outputs_match() {
    let bless = std::env::var_os("SLUICE_BLESS").is_some();
    let dirs = golden_dirs();
    assert!(dirs.len() >= 6, "expected the golden cases, found {dirs:?}");
    let mut failures = vec![];
    for dir in dirs {
        let actual = translate(&dir.join("input.yaml"));
        let expected_path = dir.join("expected.yaml");
        if bless {
            std::fs::write(&expected_path, &actual).expect("write expected.yaml");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            let first = expected
                .lines()
                .zip(actual.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
            failures.push(format!(
                "{}: output differs from expected.yaml at line {} (rerun with SLUICE_BLESS=1 and review the diff)",
                dir.display(),
                first + 1
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
