//! `substrate-drain export --format chrome`: the Trace Event Format (JSON object form) that
//! Perfetto UI and `chrome://tracing` open.
//!
//! - one track per process (`pid`), named `program (pid N)` by a `process_name` metadata
//!   event, ordered so that children follow their parents (`process_sort_index`, depth-first);
//! - a complete event (`ph: "X"`) per process image from its start to its exit (or the end of
//!   the trace when it did not exit in it), with argv, cwd and exit status as args;
//! - a flow (`ph: "s"`/`"f"`) from each image to the images it started, so the tree shows;
//! - an instant event (`ph: "i"`, thread scope) per file, network and DNS event, with the
//!   event's fields as args.
//!
//! Times are microseconds (fractions keep the nanoseconds) from the first event of the trace.
//! Instants are written as the events stream by; the slices, once every image is known.

use std::collections::HashMap;
use std::io::{self, Write};

use serde_json::{json, Value};

use crate::event::{Event, Skip};

struct Image {
    pid: i64,
    parent: Option<String>,
    name: String,
    start: i64,
    end: Option<i64>,
    args: Value,
    seq: usize,
}

/// The members an instant's args leave out: the line's header but `span_id` and `pos` (the
/// track already says the rest).
static SKIP: std::sync::LazyLock<Skip> = std::sync::LazyLock::new(|| {
    let header = crate::event::HEADER.into_iter();
    Skip::of(
        &header
            .filter(|k| !matches!(*k, "span_id" | "pos"))
            .collect::<Vec<_>>(),
    )
});

/// `ns` in microseconds, as `serde_json` writes `ns as f64 / 1000.0` (the shortest decimal
/// that reads back as that double), from integers: below 2^42 microseconds (51 days) the
/// spacing of doubles is under a thousandth, so `q.rrr` with trailing zeros dropped (and `q.0`)
/// is that shortest decimal. Longer times are written by `serde_json`.
fn push_us(out: &mut Vec<u8>, ns: i64) {
    const EXACT: u64 = 1_000 << 42;
    let a = ns.unsigned_abs();
    if a >= EXACT {
        let _ = serde_json::to_writer(out, &(ns as f64 / 1000.0));
        return;
    }
    if ns < 0 {
        out.push(b'-');
    }
    let (q, r) = (a / 1000, (a % 1000) as u16);
    out.extend_from_slice(itoa::Buffer::new().format(q).as_bytes());
    let digits = [
        b'0' + (r / 100) as u8,
        b'0' + (r / 10 % 10) as u8,
        b'0' + (r % 10) as u8,
    ];
    let n = match r {
        0 => 1, // `q.0`
        _ if r % 100 == 0 => 1,
        _ if r % 10 == 0 => 2,
        _ => 3,
    };
    out.push(b'.');
    out.extend_from_slice(&digits[..n]);
}

/// Whether an event type is an instant (file, network and DNS events).
fn is_instant(t: &str) -> bool {
    t.starts_with("file_") || t.starts_with("net_") || t == "dns_lookup"
}

/// Write an instant's args (the event's own members) to `out`; nothing for other events.
/// Safe to run on any thread.
pub fn render_args(ev: &Event, out: impl Write) -> io::Result<()> {
    if is_instant(&ev.event_type) {
        crate::event::write_members(ev, *SKIP, out)?;
    }
    Ok(())
}

/// An instant as written on the thread that parsed it. Its time counts from the trace's first
/// event: given that (`t0`), the instant is written whole, after `,` and a newline; else it is
/// framed for [`Writer::add_rendered`] to add the time in order: its `ts_unix_ns` (8 bytes,
/// little-endian), the lengths of the JSON before and after the time (4 bytes each), then those
/// two parts. Nothing for other events. `line`: the line `ev` was read from, if it was; the
/// members after the header it has in the drain's form ([`super::Line::rest`]) are copied
/// into the args rather than written again, and the strings of a plain line
/// ([`crate::event::Layout::plain`]) are written without looking for what to escape.
pub fn render_instant(ev: &Event, line: Option<super::Line>, t0: Option<i64>, out: &mut Vec<u8>) {
    let t = &*ev.event_type;
    if !is_instant(t) {
        return;
    }
    let rest = line.and_then(|l| l.rest());
    let plain = line.is_some_and(|l| l.layout.plain);
    let string = |out: &mut Vec<u8>, s: &str| {
        if plain {
            out.push(b'"');
            out.extend_from_slice(s.as_bytes());
            out.push(b'"');
        } else {
            crate::event::append_str(out, s);
        }
    };
    let at = out.len();
    match t0 {
        Some(_) => out.extend_from_slice(b",\n"),
        None => {
            out.extend_from_slice(&ev.ts_unix_ns.to_le_bytes());
            out.extend_from_slice(&[0; 8]);
        }
    }
    let a = out.len();
    out.extend_from_slice(b"{\"ph\":\"i\",\"s\":\"t\",\"name\":");
    string(out, t);
    out.extend_from_slice(b",\"cat\":\"");
    out.extend_from_slice(super::show::class(t).as_bytes());
    out.extend_from_slice(b"\",\"ts\":");
    if let Some(t0) = t0 {
        push_us(out, ev.ts_unix_ns - t0);
    }
    let b = out.len();
    let mut n = itoa::Buffer::new();
    out.extend_from_slice(b",\"pid\":");
    out.extend_from_slice(n.format(ev.pid.unwrap_or(0)).as_bytes());
    out.extend_from_slice(b",\"tid\":");
    out.extend_from_slice(n.format(ev.tid.unwrap_or(0)).as_bytes());
    out.extend_from_slice(b",\"args\":");
    match rest {
        // The members SKIP keeps: span_id and pos from the header, then all the others.
        Some(rest) => {
            out.extend_from_slice(b"{\"span_id\":");
            match &ev.span_id {
                Some(span) => string(out, span),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b",\"pos\":");
            out.extend_from_slice(n.format(ev.pos).as_bytes());
            if !rest.is_empty() {
                out.push(b',');
                out.extend_from_slice(rest);
            }
            out.push(b'}');
        }
        None => crate::event::append_members(ev, *SKIP, out),
    }
    out.push(b'}');
    if t0.is_some() {
        return;
    }
    let (la, lb) = (b - a, out.len() - b);
    match (u32::try_from(la), u32::try_from(lb)) {
        (Ok(la), Ok(lb)) => {
            out[at + 8..at + 12].copy_from_slice(&la.to_le_bytes());
            out[at + 12..at + 16].copy_from_slice(&lb.to_le_bytes());
        }
        _ => out.truncate(at), // over 4 GiB: cannot be (a line is at most 16 MiB)
    }
}

/// The export's [`super::Work`]: renders the instants ([`render_instant`]) and keeps the
/// latest time, on the threads that parse; keeps for the [`Writer`] the starts and exits of
/// images and the first event of each block (the trace's first event is one of them).
#[derive(Default)]
pub struct Instants {
    /// The time of the trace's first event, when known before reading (instants are then
    /// written whole).
    t0: Option<i64>,
    last: Option<i64>,
    block_start: bool,
    /// Instants written whole.
    whole: u64,
}

impl Instants {
    /// Instants written whole, their times counted from `t0` (the trace's first event), or
    /// framed when it is not known.
    pub fn starting_at(t0: Option<i64>) -> Self {
        Instants {
            t0,
            ..Default::default()
        }
    }
}

impl super::Work for Instants {
    const LAYOUT: bool = true;

    fn block(&mut self) {
        self.block_start = true;
    }

    fn event(&mut self, ev: &Event<'_>, line: super::Line<'_>, out: &mut Vec<u8>) -> bool {
        let before = out.len();
        render_instant(ev, Some(line), self.t0, out);
        self.whole += u64::from(self.t0.is_some() && out.len() > before);
        self.last = self.last.max(Some(ev.ts_unix_ns));
        std::mem::take(&mut self.block_start)
            || matches!(&*ev.event_type, "process_start" | "process_exit")
    }
}

/// Writes a Chrome trace as events come.
pub struct Writer<W: Write> {
    out: W,
    first: bool,
    t0: Option<i64>,
    last: i64,
    images: HashMap<String, Image>,
    /// Events written (instants), for the caller's summary.
    pub instants: u64,
    /// A frame rendered here (by [`Writer::add`]).
    scratch: Vec<u8>,
    /// The instants come whole ([`Writer::starting_at`] a known time), not framed.
    whole: bool,
}

impl<W: Write> Writer<W> {
    /// Start the JSON object on `out`.
    pub fn new(out: W) -> io::Result<Self> {
        Self::starting_at(out, None)
    }

    /// [`Writer::new`], times counted from `t0` (the trace's first event, when known before
    /// reading): the [`Instants`] to hand on are then those made [`Instants::starting_at`] the
    /// same time, which write instants whole.
    pub fn starting_at(mut out: W, t0: Option<i64>) -> io::Result<Self> {
        out.write_all(b"{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n")?;
        Ok(Writer {
            out,
            first: true,
            t0,
            last: 0,
            images: HashMap::new(),
            instants: 0,
            scratch: Vec::new(),
            whole: t0.is_some(),
        })
    }

    fn us(&self, ns: i64) -> f64 {
        (ns - self.t0.unwrap_or(ns)) as f64 / 1000.0
    }

    fn put(&mut self, v: &Value) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b",\n")?;
        }
        self.first = false;
        serde_json::to_writer(&mut self.out, v).map_err(io::Error::other)
    }

    /// Account one event (every event, in order).
    pub fn add(&mut self, ev: &Event) -> io::Result<()> {
        self.last = self.last.max(ev.ts_unix_ns);
        let mut frame = std::mem::take(&mut self.scratch);
        frame.clear();
        let t0 = if self.whole { self.t0 } else { None };
        render_instant(ev, None, t0, &mut frame);
        self.instants += u64::from(self.whole && !frame.is_empty());
        let r = self.add_rendered((Some(ev), &frame));
        self.scratch = frame;
        r
    }

    /// Account what an [`Instants`] work handed on, in order: an event it kept, and the
    /// instants it rendered.
    pub fn add_rendered(&mut self, (ev, frames): super::Handed<'_, '_>) -> io::Result<()> {
        if let Some(ev) = ev {
            self.note(ev);
        }
        if self.whole {
            // Whole instants, each after `,` and a newline (but the array's first).
            let mut bytes = frames;
            if bytes.is_empty() {
                return Ok(());
            }
            if std::mem::take(&mut self.first) {
                bytes = bytes.strip_prefix(b",\n").unwrap_or(bytes);
            }
            return self.out.write_all(bytes);
        }
        let mut rest = frames;
        while let Some((head, tail)) = rest.split_first_chunk::<16>() {
            let word = |k: usize| head[k..k + 4].try_into().map(u32::from_le_bytes);
            let (Ok(la), Ok(lb)) = (word(8), word(12)) else {
                break;
            };
            let (la, lb) = (la as usize, lb as usize);
            let (Some(a), Some(b)) = (tail.get(..la), tail.get(la..la + lb)) else {
                break; // not a frame: cannot be (they are written by render_instant)
            };
            let mut ts = [0; 8];
            ts.copy_from_slice(&head[..8]);
            let t = i64::from_le_bytes(ts);
            let t0 = *self.t0.get_or_insert(t);
            if !self.first {
                self.out.write_all(b",\n")?;
            }
            self.first = false;
            self.out.write_all(a)?;
            let mut us = Vec::with_capacity(24);
            push_us(&mut us, t - t0);
            self.out.write_all(&us)?;
            self.out.write_all(b)?;
            self.instants += 1;
            rest = &tail[la + lb..];
        }
        Ok(())
    }

    /// Take the latest time an [`Instants`] work saw (the end of images that have none), and
    /// the count of the instants it wrote whole.
    pub fn merge(&mut self, work: Instants) {
        self.last = self.last.max(work.last.unwrap_or(i64::MIN));
        self.instants += work.whole;
    }

    /// The times, and the images' starts and exits.
    fn note(&mut self, ev: &Event) {
        self.t0.get_or_insert(ev.ts_unix_ns);
        self.last = self.last.max(ev.ts_unix_ns);
        let span = ev.span_id.as_deref().unwrap_or_default();
        match &*ev.event_type {
            "process_start" => {
                let seq = self.images.len();
                self.images.insert(
                    span.to_string(),
                    Image {
                        pid: ev.pid.unwrap_or(0),
                        parent: ev.parent_image.as_deref().map(str::to_string),
                        name: super::program(ev),
                        start: ev.ts_unix_ns,
                        end: None,
                        args: json!({"argv": ev.argv, "cwd": ev.cwd, "exe": ev.exe,
                                     "span_id": ev.span_id, "parent_span": ev.parent_span}),
                        seq,
                    },
                );
            }
            "process_exit" => {
                if let Some(i) = self.images.get_mut(span) {
                    i.end = Some(ev.ts_unix_ns);
                    if let Value::Object(m) = &mut i.args {
                        m.insert("exit_code".into(), json!(ev.exit_code));
                        m.insert("signal".into(), json!(ev.signal));
                    }
                }
            }
            _ => {}
        }
    }

    /// Write the process slices, names and flows, and close the JSON.
    pub fn finish(mut self) -> io::Result<W> {
        let mut images: Vec<(String, Image)> = self.images.drain().collect();
        images.sort_by_key(|(_, i)| (i.start, i.seq));
        // Depth-first order of the tree, for the tracks' sort index.
        let mut kids: HashMap<String, Vec<usize>> = HashMap::new();
        let mut roots = vec![];
        let index: HashMap<String, usize> = images
            .iter()
            .enumerate()
            .map(|(k, (s, _))| (s.clone(), k))
            .collect();
        for (k, (_, i)) in images.iter().enumerate() {
            match i.parent.as_ref().filter(|p| index.contains_key(*p)) {
                Some(p) => kids.entry(p.clone()).or_default().push(k),
                None => roots.push(k),
            }
        }
        let mut order = vec![];
        let mut stack: Vec<usize> = roots.into_iter().rev().collect();
        let mut seen = vec![false; images.len()];
        while let Some(k) = stack.pop() {
            if std::mem::replace(&mut seen[k], true) {
                continue;
            }
            order.push(k);
            if let Some(c) = kids.get(&images[k].0) {
                stack.extend(c.iter().rev());
            }
        }
        order.extend((0..images.len()).filter(|k| !seen[*k]));
        let mut named = std::collections::HashSet::new();
        for (rank, &k) in order.iter().enumerate() {
            let (span, i) = &images[k];
            if named.insert(i.pid) {
                let name = json!({"ph": "M", "name": "process_name", "pid": i.pid, "tid": i.pid,
                                  "args": {"name": format!("{} (pid {})", i.name, i.pid)}});
                let sort = json!({"ph": "M", "name": "process_sort_index", "pid": i.pid,
                                  "tid": i.pid, "args": {"sort_index": rank}});
                self.put(&name)?;
                self.put(&sort)?;
            }
            let end = i.end.unwrap_or(self.last).max(i.start);
            let slice = json!({
                "ph": "X", "name": i.name, "cat": "process", "ts": self.us(i.start),
                "dur": (end - i.start) as f64 / 1000.0, "pid": i.pid, "tid": i.pid,
                "args": i.args,
            });
            self.put(&slice)?;
            if let Some(p) = i.parent.as_ref().and_then(|p| index.get(p)) {
                let parent = &images[*p].1;
                let id = k + 1;
                let s = json!({"ph": "s", "name": "started", "cat": "tree", "id": id,
                               "ts": self.us(i.start.max(parent.start)), "pid": parent.pid,
                               "tid": parent.pid});
                let f = json!({"ph": "f", "bp": "e", "name": "started", "cat": "tree", "id": id,
                               "ts": self.us(i.start), "pid": i.pid, "tid": i.pid});
                self.put(&s)?;
                self.put(&f)?;
            }
            let _ = span;
        }
        self.out.write_all(b"\n]}\n")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn serde_us(ns: i64) -> String {
        serde_json::to_string(&(ns as f64 / 1000.0)).unwrap()
    }

    fn us(ns: i64) -> String {
        let mut out = Vec::new();
        push_us(&mut out, ns);
        String::from_utf8(out).unwrap()
    }

    proptest! {
        #[test]
        fn times_are_written_as_serde_writes_the_double(ns in any::<i64>(), small in -10_000_000i64..10_000_000) {
            prop_assert_eq!(us(ns), serde_us(ns));
            prop_assert_eq!(us(small), serde_us(small));
            let near = (1_000i64 << 42) - small.abs();
            prop_assert_eq!(us(near), serde_us(near));
        }
    }

    #[test]
    fn times_at_the_edges_are_written_as_serde_writes_them() {
        let edge = 1_000i64 << 42;
        for ns in [
            0,
            1,
            -1,
            10,
            100,
            999,
            1000,
            1001,
            1010,
            1100,
            -1500,
            edge - 1,
            edge,
            edge + 1,
            -edge,
            i64::MAX,
            i64::MIN,
            9_007_199_254_740_993,
        ] {
            assert_eq!(us(ns), serde_us(ns), "{ns}");
        }
    }
}
