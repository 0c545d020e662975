//! Appending: one write per frame, after the last whole frame of an existing log.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use crate::{Error, Event, HEADER_LEN, MAGIC, MAX_RECORD, Reader, Result, VERSION};

/// Appends events to a log.
#[derive(Debug)]
pub struct Writer {
    path: String,
    file: File,
    /// Where the next frame goes.
    offset: u64,
    /// Set when opening cut off a short last frame: where it started.
    recovered_at: Option<u64>,
    /// One past the largest time written so far (0 for an empty log).
    next_time: u64,
    /// The format version of the log (an existing log keeps its own).
    version: u32,
    buf: Vec<u8>,
}

impl Writer {
    /// Opens `path` for appending, creating it with a header if it does not exist
    /// or holds less than a header. An existing log is read through first: a short
    /// last frame is cut off (see [`Writer::recovered_at`]); any other damage is an
    /// error and nothing is written.
    pub fn append(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let io = |source| Error::Io {
            path: name.clone(),
            source,
        };
        let (mut offset, mut recovered_at, mut next_time, mut version) = (0, None, 0, VERSION);
        if path.exists() {
            let mut reader = Reader::open(path)?;
            for event in reader.by_ref() {
                next_time = next_time.max(event?.time.saturating_add(1));
            }
            (offset, recovered_at) = (reader.offset(), reader.truncated_at());
            if offset > 0 {
                version = reader.version();
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io)?;
        file.set_len(offset).map_err(io)?;
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut writer = Writer {
            path: name.clone(),
            file,
            offset,
            recovered_at,
            next_time,
            version,
            buf: Vec::new(),
        };
        if offset == 0 {
            let mut header = Vec::with_capacity(HEADER_LEN as usize);
            header.extend_from_slice(MAGIC);
            header.extend_from_slice(&VERSION.to_le_bytes());
            writer.write_all(&header)?;
        }
        Ok(writer)
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.file.write_all(bytes).map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Appends one event as one frame (one write).
    pub fn write(&mut self, event: &Event) -> Result<()> {
        let mut record = Vec::new();
        crate::record::encode(event, self.version, &mut record);
        let len = match u32::try_from(record.len()) {
            Ok(len) if len <= MAX_RECORD => len,
            _ => {
                return Err(Error::Refused {
                    path: self.path.clone(),
                    what: format!(
                        "event {} {}/{} is {} bytes, over the record limit of {MAX_RECORD}",
                        event.kind,
                        event.namespace,
                        event.name,
                        record.len()
                    ),
                });
            }
        };
        let mut frame = std::mem::take(&mut self.buf);
        frame.clear();
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&crate::crc32(&record).to_le_bytes());
        frame.extend_from_slice(&record);
        let written = self.write_all(&frame);
        self.buf = frame;
        if written.is_ok() {
            self.next_time = self.next_time.max(event.time.saturating_add(1));
        }
        written
    }

    /// Flushes to the disk (`fsync`).
    pub fn sync(&mut self) -> Result<()> {
        self.file.sync_data().map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// The size of the log so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// One past the largest logical time in the log (0 when it has no event): where
    /// a new run appending to it starts its times, so times never go back.
    pub fn next_time(&self) -> u64 {
        self.next_time
    }

    /// Where the short last frame that opening cut off started, if there was one.
    pub fn recovered_at(&self) -> Option<u64> {
        self.recovered_at
    }
}
