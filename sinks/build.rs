//! Compiles the `.proto` files that envoy-types ships into a `FileDescriptorSet`
//! (`$OUT_DIR/envoy.bin`), so `json.rs` can print any xDS message as proto3 JSON.
//!
//! The directory is `$SLUICE_ENVOY_PROTO_DIR`, or the registry source directory of
//! the envoy-types version locked in `Cargo.lock` (`build/locate.rs`; not `cargo
//! metadata`, which resolves dev-dependencies too and fails offline on a machine that
//! never downloaded them): no protoc and no network needed. Every
//! `envoy/**/*.proto` is compiled, each root file with its own `protox::Compiler`
//! (sharing one compiler resolves some relative type names differently from
//! protoc), and the resulting files are merged by name. All of `envoy/**` is needed
//! because printing an `Any` whose type is missing from the set fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message;
use prost_reflect::prost_types::{FileDescriptorProto, FileDescriptorSet};
use protox::file::{
    ChainFileResolver, File, FileResolver, GoogleFileResolver, IncludeFileResolver,
};

/// Import roots under envoy-types' `proto/`.
const INCLUDES: [&str; 8] = [
    "data-plane-api",
    "xds",
    "protoc-gen-validate",
    "googleapis",
    "cel-spec/proto",
    "opentelemetry-proto",
    "client_model",
    "ratelimit/api",
];

#[path = "build/locate.rs"]
mod locate;

type BoxError = Box<dyn std::error::Error>;

fn main() {
    if let Err(e) = run() {
        // Display, not the Debug of `main() -> Result`: the message has paths and fixes.
        eprintln!("error: sluice-sinks build script: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), BoxError> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build/locate.rs");
    let proto = envoy_types_proto_dir()?;
    let includes: Vec<PathBuf> = INCLUDES.iter().map(|i| proto.join(i)).collect();
    let api = proto.join("data-plane-api");

    let mut roots = Vec::new();
    collect_protos(&api.join("envoy"), &mut roots)?;
    roots.sort();

    let mut files: BTreeMap<String, FileDescriptorProto> = BTreeMap::new();
    for root in &roots {
        let name = root.strip_prefix(&api)?;
        let mut compiler = protox::Compiler::with_file_resolver(PatchingResolver::new(&includes));
        compiler.include_imports(true);
        compiler
            .open_file(name)
            .map_err(|e| format!("{}: {e}", name.display()))?;
        for file in compiler.file_descriptor_set().file {
            files.entry(file.name().to_owned()).or_insert(file);
        }
    }

    let set = FileDescriptorSet {
        file: files.into_values().collect(),
    };
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("envoy.bin");
    std::fs::write(out, set.encode_to_vec())?;
    Ok(())
}

/// Source fixes for files that protox resolves differently from protoc: (file,
/// text, replacement). protox looks the relative name `common.x.v3.T` up from the
/// innermost package scope that has a `common` child and stops there; protoc keeps
/// searching outward.
const PATCHES: [(&str, &str, &str); 1] = [(
    "envoy/extensions/clusters/dynamic_forward_proxy/v3/cluster.proto",
    " common.dynamic_forward_proxy.v3.DnsCacheConfig ",
    " .envoy.extensions.common.dynamic_forward_proxy.v3.DnsCacheConfig ",
)];

/// The include paths and protox's bundled Google files, with [`PATCHES`] applied.
struct PatchingResolver(ChainFileResolver);

impl PatchingResolver {
    fn new(includes: &[PathBuf]) -> Self {
        let mut chain = ChainFileResolver::new();
        for include in includes {
            chain.add(IncludeFileResolver::new(include.clone()));
        }
        chain.add(GoogleFileResolver::new());
        Self(chain)
    }
}

impl FileResolver for PatchingResolver {
    fn resolve_path(&self, path: &Path) -> Option<String> {
        self.0.resolve_path(path)
    }

    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        let file = self.0.open_file(name)?;
        let Some((_, from, to)) = PATCHES.iter().find(|(n, ..)| *n == name) else {
            return Ok(file);
        };
        let source = file.source().unwrap_or_default().replace(from, to);
        File::from_source(name, &source)
    }
}

/// `<envoy-types package dir>/proto`: see `build/locate.rs` for where it looks.
fn envoy_types_proto_dir() -> Result<PathBuf, BoxError> {
    println!("cargo:rerun-if-env-changed={}", locate::OVERRIDE_ENV);
    println!("cargo:rerun-if-env-changed=CARGO_HOME");
    let inputs = locate::Inputs {
        override_dir: std::env::var_os(locate::OVERRIDE_ENV).map(PathBuf::from),
        manifest_dir: PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?),
        cargo_home: locate::cargo_home(
            std::env::var_os("CARGO_HOME").map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        ),
    };
    let (dir, depends_on) = locate::proto_dir(&inputs)?;
    for file in depends_on {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    Ok(dir)
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), BoxError> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
