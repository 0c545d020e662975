//! Streaming reads: one frame at a time, never the whole file.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::{
    Error, Event, FRAME_OVERHEAD, HEADER_LEN, MAGIC, MAX_RECORD, MIN_VERSION, Result, VERSION,
};

/// Reads a log's events in order. A short last frame ends the events and is
/// reported by [`Reader::truncated_at`]; other damage is an [`Error`].
#[derive(Debug)]
pub struct Reader {
    path: String,
    input: BufReader<File>,
    /// The end of the header or of the last whole frame read.
    offset: u64,
    truncated_at: Option<u64>,
    finished: bool,
    /// The log's format version.
    version: u32,
    /// The frame being read (kept between frames: one allocation, not one per frame).
    buffer: Vec<u8>,
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl Reader {
    /// Opens the log at `path` and checks its header.
    pub fn open(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| Error::Io {
            path: name.clone(),
            source,
        })?;
        let mut reader = Reader {
            path: name,
            input: BufReader::new(file),
            offset: 0,
            truncated_at: None,
            finished: false,
            version: VERSION,
            buffer: Vec::new(),
        };
        reader.header()?;
        Ok(reader)
    }

    fn damaged(&self, offset: u64, what: impl Into<String>) -> Error {
        Error::Damaged {
            path: self.path.clone(),
            offset,
            what: what.into(),
        }
    }

    fn io(&self, source: std::io::Error) -> Error {
        Error::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn header(&mut self) -> Result<()> {
        let mut header = [0u8; HEADER_LEN as usize];
        let n = read_full(&mut self.input, &mut header).map_err(|e| self.io(e))?;
        let magic_seen = n.min(MAGIC.len());
        if header[..magic_seen] != MAGIC[..magic_seen] {
            return Err(self.damaged(0, "not a Sluice event log (wrong magic)"));
        }
        if n < header.len() {
            // A crash before the header was whole: an empty log.
            self.truncated_at = Some(0);
            self.finished = true;
            return Ok(());
        }
        let mut version = [0u8; 4];
        version.copy_from_slice(&header[8..12]);
        let version = u32::from_le_bytes(version);
        if !(MIN_VERSION..=VERSION).contains(&version) {
            let what = format!(
                "format version {version}, this build reads versions {MIN_VERSION} to {VERSION}"
            );
            return Err(self.damaged(8, what));
        }
        self.version = version;
        self.offset = HEADER_LEN;
        Ok(())
    }

    /// Continues reading at `offset`, which must be a frame boundary this log's
    /// reader or writer gave (a snapshot's log position): the end of the header or of
    /// a whole frame. An offset past the end is an error; an offset inside a frame
    /// shows as damage at that offset on the next read.
    pub fn seek(&mut self, offset: u64) -> Result<()> {
        let len = self
            .input
            .get_ref()
            .metadata()
            .map_err(|e| self.io(e))?
            .len();
        if offset < HEADER_LEN || offset > len {
            let what = format!(
                "cannot continue at byte {offset}: the log has {len} bytes (frames start at {HEADER_LEN})"
            );
            return Err(self.damaged(offset, what));
        }
        self.input
            .seek(SeekFrom::Start(offset))
            .map_err(|e| self.io(e))?;
        self.offset = offset;
        self.finished = false;
        self.truncated_at = None;
        Ok(())
    }

    /// The next event; `None` at the end (or at a short last frame).
    pub fn next_event(&mut self) -> Result<Option<Event>> {
        if self.finished {
            return Ok(None);
        }
        let mut head = [0u8; FRAME_OVERHEAD as usize];
        let n = read_full(&mut self.input, &mut head).map_err(|e| self.io(e))?;
        if n == 0 {
            self.finished = true;
            return Ok(None);
        }
        if n < head.len() {
            return Ok(self.truncate());
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let sum = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len > MAX_RECORD {
            let what = format!("frame length {len} is over the limit of {MAX_RECORD}");
            return Err(self.fail(what));
        }
        // One buffer for every frame: the event copies out what it keeps.
        let mut record = std::mem::take(&mut self.buffer);
        record.resize(len as usize, 0);
        let n = read_full(&mut self.input, &mut record).map_err(|e| self.io(e))?;
        if n < record.len() {
            return Ok(self.truncate());
        }
        if crate::crc32(&record) != sum {
            return Err(self.fail("checksum does not match the frame"));
        }
        let event = crate::record::decode(&record, self.version);
        self.buffer = record;
        let event = event.map_err(|what| self.fail(what))?;
        self.offset += FRAME_OVERHEAD + u64::from(len);
        Ok(Some(event))
    }

    fn truncate(&mut self) -> Option<Event> {
        self.truncated_at = Some(self.offset);
        self.finished = true;
        None
    }

    fn fail(&mut self, what: impl Into<String>) -> Error {
        self.finished = true;
        self.damaged(self.offset, what)
    }

    /// The end of the header or of the last whole frame read: where appending
    /// continues.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The log's format version (a log cut inside its header reads as the current one).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Where a short last frame (or header) starts, once the reader reached it.
    pub fn truncated_at(&self) -> Option<u64> {
        self.truncated_at
    }
}

impl Iterator for Reader {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}
