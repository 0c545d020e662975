//! A record's bytes: encoding, and decoding that names what is malformed.

use crate::{Event, Op};

/// Appends `event`'s record bytes, in format `version`, to `out`.
pub fn encode(event: &Event, version: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&event.time.to_le_bytes());
    if version >= 2 {
        out.extend_from_slice(&event.wall_micros.to_le_bytes());
    }
    out.push(event.op.code());
    for field in [
        event.api_version.as_bytes(),
        event.kind.as_bytes(),
        event.namespace.as_bytes(),
        event.name.as_bytes(),
        &event.object,
    ] {
        let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(field);
    }
}

/// Reads fields off the front of a record.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err(format!("record ends inside its {what}"));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let bytes = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(bytes);
        Ok(a)
    }

    fn bytes(&mut self, what: &str) -> Result<&'a [u8], String> {
        let len = u32::from_le_bytes(self.array(what)?);
        self.take(len as usize, what)
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let bytes = self.bytes(what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }
}

/// The event in `record` (format `version`), or what is wrong with it.
pub fn decode(record: &[u8], version: u32) -> Result<Event, String> {
    let mut f = Fields { rest: record };
    let time = u64::from_le_bytes(f.array("time")?);
    let wall_micros = match version {
        1 => 0,
        _ => u64::from_le_bytes(f.array("wall clock")?),
    };
    let [code] = f.array("operation")?;
    let op = Op::from_code(code).ok_or_else(|| format!("unknown operation {code}"))?;
    let event = Event {
        time,
        wall_micros,
        op,
        api_version: f.string("apiVersion")?,
        kind: f.string("kind")?,
        namespace: f.string("namespace")?,
        name: f.string("name")?,
        object: f.bytes("object")?.to_vec(),
    };
    if !f.rest.is_empty() {
        return Err(format!("{} bytes after the object", f.rest.len()));
    }
    Ok(event)
}
