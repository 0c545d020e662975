use std::sync::Arc;

use bytes::Bytes;
use sluice_pipeline::model::ObjectKey;
use sluice_sinks::state::{GatewayResources, Resource, ResourceType};

use crate::dir::SnapshotDir;
use crate::{Error, HEADER_LEN, Loaded, Snapshot, file};

fn resources(seed: u8, n: usize) -> GatewayResources {
    let mut g = GatewayResources {
        time: u64::from(seed),
        ..Default::default()
    };
    for ty in ResourceType::ALL {
        for i in 0..n {
            let name = format!("{ty:?}-{i}");
            let body: Vec<u8> = (0..(i * 7 + 3)).map(|b| (b as u8) ^ seed).collect();
            let r = Resource::new(name.clone(), Bytes::from(body));
            g.by_type[ty.index()].insert(name, Arc::new(r));
        }
    }
    let r = Resource::new("api.example".into(), Bytes::from_static(b"listener"));
    g.api_listeners.insert(r.name.clone(), Arc::new(r));
    g
}

fn sample() -> (Vec<(ObjectKey, GatewayResources)>, Snapshot) {
    let gws = vec![
        (ObjectKey::new("infra", "public"), resources(1, 5)),
        (ObjectKey::new("a", "b"), resources(2, 3)),
        (ObjectKey::new("empty", "gw"), GatewayResources::default()),
    ];
    let snap = Snapshot::capture(
        42,
        Some(1234),
        gws.iter().map(|(k, g)| (k, g)),
        r#"{"gateways":[]}"#.into(),
    );
    (gws, snap)
}

/// A file image in 16-aligned memory, as a map would be.
fn image(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    file::write_to(snapshot, &mut out)
        .map_err(|_| "write")
        .expect("writes");
    out
}

fn aligned(bytes: &[u8]) -> Bytes {
    let mut v = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    v.extend_from_slice(bytes);
    Bytes::from_owner(v)
}

#[test]
fn a_written_snapshot_loads_back_to_the_same_state_sharing_the_mapped_bytes() {
    let dir = tempdir("roundtrip");
    let (gws, snap) = sample();
    let mut d = SnapshotDir::open(&dir, 3).expect("opens");
    let w = d.write(&snap).expect("writes");
    assert!(w.path.exists() && w.bytes > HEADER_LEN as u64);
    let newest = d.newest().expect("lists");
    assert!(newest.skipped.is_empty(), "{:?}", newest.skipped);
    let loaded = newest.loaded.expect("a snapshot");
    assert_eq!(loaded.time(), 42);
    assert_eq!(loaded.log_offset(), Some(1234));
    assert_eq!(loaded.status_json(), r#"{"gateways":[]}"#);
    let mut back = loaded.gateways().expect("gateways");
    back.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want: Vec<_> = gws.into_iter().map(|(k, g)| (k, Arc::new(g))).collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(back, want);
    // Bodies point into the file's bytes: no copy was made.
    let file = std::fs::read(&w.path).expect("reads");
    let (_, public) = back
        .iter()
        .find(|(k, _)| k.name == "public")
        .expect("public");
    for r in public.get(ResourceType::Route).values() {
        let pos = file
            .windows(r.body.len())
            .position(|w| w == &r.body[..])
            .expect("body is in the file");
        assert!(pos >= HEADER_LEN);
        assert_eq!(r.version, sluice_sinks::state::content_version(&r.body));
    }
}

#[test]
fn only_the_newest_n_are_kept_and_the_newest_wins_across_restarts() {
    let dir = tempdir("keep");
    let (_, mut snap) = sample();
    let mut d = SnapshotDir::open(&dir, 2).expect("opens");
    for t in [5, 9, 3] {
        snap.time = t;
        d.write(&snap).expect("writes");
    }
    // A restarted process starts its times over; its snapshot is still the newest.
    let mut d = SnapshotDir::open(&dir, 2).expect("reopens");
    snap.time = 1;
    d.write(&snap).expect("writes");
    let files = std::fs::read_dir(&dir).expect("lists").count();
    assert_eq!(files, 2);
    assert_eq!(d.newest().expect("lists").loaded.expect("one").time(), 1);
}

#[test]
fn a_damaged_newest_snapshot_is_reported_and_the_one_before_is_used() {
    let dir = tempdir("damaged");
    let (_, mut snap) = sample();
    let mut d = SnapshotDir::open(&dir, 3).expect("opens");
    snap.time = 7;
    d.write(&snap).expect("writes");
    snap.time = 8;
    let w = d.write(&snap).expect("writes");
    let mut bytes = std::fs::read(&w.path).expect("reads");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&w.path, &bytes).expect("writes");
    let newest = d.newest().expect("lists");
    assert_eq!(newest.loaded.expect("the older one").time(), 7);
    assert_eq!(newest.skipped.len(), 1);
    assert!(
        matches!(&newest.skipped[0], Error::Damaged { what, .. } if what.contains("checksum")),
        "{:?}",
        newest.skipped
    );
    // Truncated (a crash mid-copy) and foreign files are named as such.
    std::fs::write(&w.path, &bytes[..mid]).expect("writes");
    let e = Loaded::open(&w.path).expect_err("truncated");
    assert!(e.to_string().contains("truncated"), "{e}");
    std::fs::write(&w.path, b"apiVersion: v1\nkind: Gateway\n").expect("writes");
    let e = Loaded::open(&w.path).expect_err("foreign");
    assert!(matches!(e, Error::Foreign { .. }), "{e}");
    std::fs::write(&w.path, b"").expect("writes");
    assert!(Loaded::open(&w.path).is_err());
}

#[test]
fn an_unknown_version_is_refused_by_number() {
    let (_, snap) = sample();
    let mut bytes = image(&snap);
    bytes[8..12].copy_from_slice(&9u32.to_le_bytes());
    let e = Loaded::from_bytes("x", aligned(&bytes)).expect_err("version 9");
    assert!(matches!(e, Error::Version { version: 9, .. }), "{e}");
}

/// A valid checksum over a structurally broken archive (a foreign writer, or a bug
/// of ours) is caught by rkyv's validation, never read out of bounds.
#[test]
fn an_archive_with_a_valid_checksum_but_broken_structure_is_refused() {
    let (_, snap) = sample();
    let good = image(&snap);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut refused = 0;
    for _ in 0..300 {
        let mut bytes = good.clone();
        let at = HEADER_LEN + (next(&mut rng) as usize) % (bytes.len() - HEADER_LEN);
        bytes[at] = next(&mut rng) as u8;
        let crc = crc32fast::hash(&bytes[HEADER_LEN..]);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
        match Loaded::from_bytes("x", aligned(&bytes)) {
            Err(_) => refused += 1,
            // Some bytes are free (a body byte, padding): what loads must still
            // read within the file.
            Ok(l) => {
                let _ = l.gateways();
                let _ = l.status_json().len();
            }
        }
    }
    assert!(refused > 0, "no corruption was caught");
}

/// A small deterministic generator (splitmix64) for corruptions.
pub fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sluice-snapshot-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
