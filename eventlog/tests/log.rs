//! The event log read back exactly as written, and each kind of damage: a short last
//! frame (a crash mid-write) is reported, skipped and recovered by the writer at
//! every possible cut; a bad checksum, an unknown version, a wrong magic, an absurd
//! length or a malformed record is an error at the right byte offset, after every
//! event before it, and the writer refuses to append to such a log.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use sluice_eventlog::{Error, Event, FRAME_OVERHEAD, HEADER_LEN, Op, Reader, Writer, crc32};

fn temp(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sluice-eventlog-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn event(time: u64, op: Op, name: &str, object: &str) -> Event {
    Event {
        time,
        wall_micros: 0,
        op,
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "HTTPRoute".into(),
        namespace: "team-a".into(),
        name: name.into(),
        object: object.as_bytes().to_vec(),
    }
}

fn events() -> Vec<Event> {
    vec![
        event(
            1,
            Op::Apply,
            "r1",
            r#"{"spec":{"hostnames":["a.example.com"]}}"#,
        ),
        event(1, Op::Apply, "r2", "{}"),
        event(2, Op::Delete, "r1", ""),
        Event {
            time: 3,
            wall_micros: 0,
            op: Op::ResyncBegin,
            api_version: "v1".into(),
            kind: "Service".into(),
            namespace: String::new(),
            name: String::new(),
            object: vec![],
        },
    ]
}

fn write(path: &Path, events: &[Event]) -> Vec<u64> {
    let mut w = Writer::append(path).expect("open for append");
    let mut ends = vec![w.offset()];
    for e in events {
        w.write(e).expect("write");
        ends.push(w.offset());
    }
    w.sync().expect("sync");
    ends
}

fn read_all(path: &Path) -> (Vec<Event>, Option<Error>, Option<u64>) {
    let mut r = Reader::open(path).expect("header reads");
    let mut got = vec![];
    let mut error = None;
    for e in r.by_ref() {
        match e {
            Ok(e) => got.push(e),
            Err(e) => error = Some(e),
        }
    }
    (got, error, r.truncated_at())
}

fn damaged_at(error: Option<Error>) -> (u64, String) {
    match error {
        Some(Error::Damaged { offset, what, .. }) => (offset, what),
        other => panic!("expected damage, got {other:?}"),
    }
}

#[test]
fn events_read_back_as_written() {
    let path = temp("log");
    let ends = write(&path, &events());
    let bytes = std::fs::read(&path).expect("read");
    assert_eq!(&bytes[..8], b"SLUICELG");
    assert_eq!(&bytes[8..12], &2u32.to_le_bytes());
    assert_eq!(ends[0], HEADER_LEN);
    assert_eq!(*ends.last().expect("ends"), bytes.len() as u64);
    // Each frame: length, the CRC-32 of the record, the record.
    let len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    let sum = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    assert_eq!(sum, crc32(&bytes[20..20 + len]));
    assert_eq!(ends[1], HEADER_LEN + FRAME_OVERHEAD + len as u64);
    let (got, error, truncated) = read_all(&path);
    assert_eq!((got, error.is_none(), truncated), (events(), true, None));
    // Appending again continues the same log.
    write(&path, &events()[..1]);
    let (got, _, _) = read_all(&path);
    assert_eq!(got.len(), 5);
    assert_eq!(got[4], events()[0]);
}

#[test]
fn a_short_last_frame_is_reported_and_the_writer_recovers_at_every_cut() {
    let path = temp("whole");
    let ends = write(&path, &events()[..2]);
    let whole = std::fs::read(&path).expect("read");
    let (first_end, total) = (ends[1], ends[2]);
    for cut in first_end + 1..total {
        let cut_path = temp("cut");
        std::fs::write(&cut_path, &whole[..cut as usize]).expect("write cut");
        let (got, error, truncated) = read_all(&cut_path);
        assert!(error.is_none(), "cut at {cut}: {error:?}");
        assert_eq!(got, events()[..1], "cut at {cut}");
        assert_eq!(truncated, Some(first_end), "cut at {cut}");
        let mut w = Writer::append(&cut_path).expect("recovers");
        assert_eq!(w.recovered_at(), Some(first_end));
        w.write(&events()[2]).expect("append");
        drop(w);
        let (got, error, truncated) = read_all(&cut_path);
        assert!(error.is_none() && truncated.is_none(), "cut at {cut}");
        assert_eq!(got, vec![events()[0].clone(), events()[2].clone()]);
    }
}

#[test]
fn a_short_header_is_an_empty_log_and_a_new_one_starts_there() {
    let path = temp("short-header");
    std::fs::write(&path, b"SLUI").expect("write");
    let (got, error, truncated) = read_all(&path);
    assert!(got.is_empty() && error.is_none());
    assert_eq!(truncated, Some(0));
    write(&path, &events()[..1]);
    assert_eq!(read_all(&path).0, events()[..1]);
}

#[test]
fn a_bad_checksum_is_an_error_at_its_frame_after_the_events_before_it() {
    let path = temp("flipped");
    let ends = write(&path, &events());
    let mut bytes = std::fs::read(&path).expect("read");
    // One bit inside the second frame's record.
    let inside = (ends[1] + FRAME_OVERHEAD + 3) as usize;
    bytes[inside] ^= 0x10;
    std::fs::write(&path, &bytes).expect("write");
    let (got, error, truncated) = read_all(&path);
    assert_eq!(got, events()[..1]);
    assert_eq!(truncated, None);
    let (offset, what) = damaged_at(error);
    assert_eq!(offset, ends[1]);
    assert!(what.contains("checksum"), "{what}");
    // The writer does not append after damage, and changes nothing.
    let refused = Writer::append(&path).expect_err("refuses");
    assert!(
        refused.to_string().contains(&format!("byte {}", ends[1])),
        "{refused}"
    );
    assert_eq!(std::fs::read(&path).expect("read"), bytes);
}

#[test]
fn wrong_magic_unknown_version_and_absurd_length_name_their_offset() {
    let path = temp("header");
    let ends = write(&path, &events()[..1]);
    let good = std::fs::read(&path).expect("read");

    let mut bytes = good.clone();
    bytes[0] = b'X';
    std::fs::write(&path, &bytes).expect("write");
    let error = Reader::open(&path).expect_err("wrong magic");
    assert_eq!(damaged_at(Some(error)).0, 0);

    let mut bytes = good.clone();
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    std::fs::write(&path, &bytes).expect("write");
    let (offset, what) = damaged_at(Reader::open(&path).err());
    assert_eq!(offset, 8);
    assert!(what.contains("version 3"), "{what}");

    let mut bytes = good.clone();
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    std::fs::write(&path, &bytes).expect("write");
    let (got, error, _) = read_all(&path);
    assert_eq!(got, events()[..1]);
    let (offset, what) = damaged_at(error);
    assert_eq!(offset, ends[1]);
    assert!(what.contains("over the limit"), "{what}");
}

#[test]
fn a_malformed_record_with_a_good_checksum_is_an_error() {
    let path = temp("malformed");
    write(&path, &[]);
    let mut bytes = std::fs::read(&path).expect("read");
    // A time, a wall clock, an operation code 9, and nothing else.
    let mut record = 5u64.to_le_bytes().to_vec();
    record.extend_from_slice(&0u64.to_le_bytes());
    record.push(9);
    bytes.extend_from_slice(&(record.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32(&record).to_le_bytes());
    bytes.extend_from_slice(&record);
    std::fs::write(&path, &bytes).expect("write");
    let (offset, what) = damaged_at(read_all(&path).1);
    assert_eq!(offset, HEADER_LEN);
    assert!(what.contains("unknown operation 9"), "{what}");
    // Code 0 but the strings are missing.
    record[16] = 0;
    bytes.truncate(HEADER_LEN as usize);
    bytes.extend_from_slice(&(record.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32(&record).to_le_bytes());
    bytes.extend_from_slice(&record);
    std::fs::write(&path, &bytes).expect("write");
    let (_, what) = damaged_at(read_all(&path).1);
    assert!(what.contains("record ends inside its apiVersion"), "{what}");
}

/// A version 1 log (no wall clock in its records), written byte by byte from the
/// format's description, reads back; appending to it keeps writing version 1.
#[test]
fn a_version_1_log_is_read_and_appended_as_version_1() {
    let path = temp("v1");
    let record = |time: u64, name: &str| {
        let mut r = time.to_le_bytes().to_vec();
        r.push(0); // apply
        for field in ["v1", "Service", "ns", name, "{}"] {
            r.extend_from_slice(&(field.len() as u32).to_le_bytes());
            r.extend_from_slice(field.as_bytes());
        }
        r
    };
    let mut bytes = b"SLUICELG".to_vec();
    bytes.extend_from_slice(&1u32.to_le_bytes());
    let r = record(7, "a");
    bytes.extend_from_slice(&(r.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32(&r).to_le_bytes());
    bytes.extend_from_slice(&r);
    std::fs::write(&path, &bytes).expect("write");
    let (got, error, _) = read_all(&path);
    assert!(error.is_none(), "{error:?}");
    let expected = Event {
        time: 7,
        wall_micros: 0,
        op: Op::Apply,
        api_version: "v1".into(),
        kind: "Service".into(),
        namespace: "ns".into(),
        name: "a".into(),
        object: b"{}".to_vec(),
    };
    assert_eq!(got, std::slice::from_ref(&expected));

    let mut w = Writer::append(&path).expect("append");
    assert_eq!(w.next_time(), 8);
    let mut second = expected.clone();
    second.time = 8;
    second.wall_micros = 123;
    w.write(&second).expect("write");
    drop(w);
    let mut appended = bytes.clone();
    let r = record(8, "a");
    appended.extend_from_slice(&(r.len() as u32).to_le_bytes());
    appended.extend_from_slice(&crc32(&r).to_le_bytes());
    appended.extend_from_slice(&r);
    assert_eq!(
        std::fs::read(&path).expect("read"),
        appended,
        "a version 1 frame"
    );
}
