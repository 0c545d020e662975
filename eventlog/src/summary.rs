//! What `sluice log inspect` prints: counts by kind and operation, the time range,
//! the size, and whether the log ends in a short frame.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::{Event, Op, Reader, Result};

/// A log, summed up in one streaming pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub events: u64,
    /// `(kind, operation)` → events.
    pub by_kind: BTreeMap<(String, Op), u64>,
    /// First and last logical time.
    pub times: Option<(u64, u64)>,
    /// Bytes up to the end of the last whole frame.
    pub bytes: u64,
    /// Where a short last frame starts, if the log ends in one.
    pub truncated_at: Option<u64>,
}

impl Summary {
    /// Reads the log at `path`, calling `each` on every event. Damage is an error;
    /// `each` has seen every event before it.
    pub fn read(path: &Path, mut each: impl FnMut(&Event)) -> Result<Self> {
        let mut reader = Reader::open(path)?;
        let mut s = Summary::default();
        while let Some(event) = reader.next_event()? {
            each(&event);
            s.events += 1;
            *s.by_kind.entry((event.kind.clone(), event.op)).or_default() += 1;
            s.times = Some(match s.times {
                None => (event.time, event.time),
                Some((first, last)) => (first.min(event.time), last.max(event.time)),
            });
        }
        s.bytes = reader.offset();
        s.truncated_at = reader.truncated_at();
        Ok(s)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "events: {}", self.events)?;
        match self.times {
            Some((first, last)) => writeln!(f, "logical times: {first}..={last}")?,
            None => writeln!(f, "logical times: none")?,
        }
        writeln!(f, "bytes: {}", self.bytes)?;
        if let Some(at) = self.truncated_at {
            writeln!(f, "truncated: a short last frame at byte {at} (ignored)")?;
        }
        for ((kind, op), n) in &self.by_kind {
            writeln!(f, "{kind} {}: {n}", op.as_str())?;
        }
        Ok(())
    }
}
