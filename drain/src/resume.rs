//! Resuming into a shared trace file: which of this ring's lines the file already holds.
//!
//! A line is ours when its `ring_id` is this ring's ([`ring_id`]: the creation time and the
//! creator's pid from the ring's header, unique per ring file); with `pos` (its record's
//! position in the ring's stream) it names one record. A drain that starts again (after a
//! crash, or a second decode of the same ring into the same file) re-reads the ring from the
//! oldest record, to learn the processes and their directories again. When the file holds
//! lines of this ring, it is the one an earlier drain wrote to, and the new drain writes only:
//! - lines of records at or after the position the ring says was published (a drain flushes
//!   every line below a position before publishing it), and
//! - among those, lines whose `(pos, lost)` the file does not hold already.
//!
//! When the file holds none of this ring's lines, everything is written: the published
//! position belongs to some other output. (A follow that resumes into a file that was rotated
//! away and holds none of its lines yet writes again what the rotated file holds: a duplicate
//! across files, never a loss.)
//!
//! Lines of other rings, of `substrate` itself, or anything that does not parse are never
//! taken for ours. The file is only read: nothing in it is cut or rewritten. Only the last
//! [`SCAN_LIMIT`] bytes are read: the lines after a published position are near the end.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use format::Ring;

/// How much of the end of an existing output file is read to find this ring's lines.
pub const SCAN_LIMIT: u64 = 256 << 20;

/// The identity of `ring`, as the `ring_id` of its lines: 24 hex digits, the creation time
/// (ns since the epoch) and the creator's pid from its header.
pub fn ring_id(ring: &Ring) -> String {
    let h = ring.header();
    format!(
        "{:016x}{:08x}",
        h.created_unix_ns.get(),
        h.creator_pid.get()
    )
}

/// What an output already holds of one ring.
#[derive(Debug, Default, Clone)]
pub struct Written {
    /// Whether any line of this ring was found.
    pub seen: bool,
    /// `(pos, is_lost_line)` of this ring's lines at or after the position asked for.
    pub lines: HashSet<(u64, bool)>,
}

impl Written {
    /// Whether the line of `pos` (a `lost` line when `lost`) is already written; forgets it,
    /// since it will not come again.
    pub fn take(&mut self, pos: u64, lost: bool) -> bool {
        !self.lines.is_empty() && self.lines.remove(&(pos, lost))
    }
}

/// Read the end of `path` for lines of the ring `ring_id` at or after `from`. A missing file
/// holds nothing.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let ring = format::Ring::create(&dir.path().join("r.ring"), &Default::default()).unwrap();
/// let id = drain::resume::ring_id(&ring);
/// let path = dir.path().join("trace.jsonl");
/// let ours = format!("{{\"event_type\":\"exec\",\"pos\":64,\"ring_id\":\"{id}\"}}\n");
/// let other = "{\"event_type\":\"exec\",\"pos\":128,\"ring_id\":\"0\"}\n";
/// std::fs::write(&path, format!("{ours}{other}")).unwrap();
/// let mut w = drain::resume::scan(&path, &id, 0).unwrap();
/// assert!(w.seen);
/// assert!(w.take(64, false));
/// assert!(!w.take(128, false), "another ring's line");
/// ```
pub fn scan(path: &Path, ring_id: &str, from: u64) -> io::Result<Written> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Written::default()),
        Err(e) => return Err(e),
    };
    let m = f.metadata()?;
    if !m.is_file() {
        return Ok(Written::default());
    }
    let len = m.len();
    let start = len.saturating_sub(SCAN_LIMIT);
    f.seek(SeekFrom::Start(start))?;
    let needle = format!("\"ring_id\":\"{ring_id}\"");
    let mut lines = HashSet::new();
    let mut seen = false;
    let mut rd = BufReader::with_capacity(1 << 16, f.take(len - start));
    let mut line = Vec::new();
    let mut first = start > 0;
    loop {
        line.clear();
        if rd.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if std::mem::take(&mut first) || line.last() != Some(&b'\n') {
            continue; // cut by the scan limit, or partial
        }
        if !contains(&line, needle.as_bytes()) {
            continue;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) else {
            continue;
        };
        if v["ring_id"] != ring_id {
            continue;
        }
        seen = true;
        if let Some(p) = v["pos"].as_u64().filter(|p| *p >= from) {
            lines.insert((p, v["event_type"] == "lost"));
        }
    }
    Ok(Written { seen, lines })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
