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

use crate::event::{append_str, Event, Skip};

struct Image {
    pid: i64,
    parent: Option<String>,
    name: String,
    start: i64,
    end: Option<i64>,
    /// The slice's args: the start's argv, cwd, exe, span and parent span; the exit's code and
    /// signal once it exited.
    argv: Option<Vec<String>>,
    cwd: Option<String>,
    exe: Option<String>,
    span_id: Option<String>,
    parent_span: Option<String>,
    exit: Option<(Option<i64>, Option<i64>)>,
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

/// `pid`, then `,"tid":` and `tid` (the pid and tid members of an object, in their order).
fn pid_tid(json: &mut Vec<u8>, pid: &str, tid: &str) {
    json.extend_from_slice(pid.as_bytes());
    json.extend_from_slice(b",\"tid\":");
    json.extend_from_slice(tid.as_bytes());
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

    /// `ns` as the trace's time (microseconds from its first event).
    fn push_ts(&self, out: &mut Vec<u8>, ns: i64) {
        push_us(out, ns - self.t0.unwrap_or(ns));
    }

    /// Write one JSON object of the array (written into `json`, which is then cleared).
    fn put(&mut self, json: &mut Vec<u8>) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b",\n")?;
        }
        self.first = false;
        self.out.write_all(json)?;
        json.clear();
        Ok(())
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
                        argv: ev
                            .argv
                            .as_ref()
                            .map(|a| a.iter().map(|s| s.to_string()).collect()),
                        cwd: ev.cwd.as_deref().map(str::to_string),
                        exe: ev.exe.as_deref().map(str::to_string),
                        span_id: ev.span_id.as_deref().map(str::to_string),
                        parent_span: ev.parent_span.as_deref().map(str::to_string),
                        exit: None,
                        seq,
                    },
                );
            }
            "process_exit" => {
                if let Some(i) = self.images.get_mut(span) {
                    i.end = Some(ev.ts_unix_ns);
                    i.exit = Some((ev.exit_code, ev.signal));
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
        // Written directly, as `serde_json` writes a `Value` object: its members sorted by name.
        let mut named = std::collections::HashSet::new();
        let mut json = Vec::with_capacity(1024);
        let mut n = itoa::Buffer::new();
        for (rank, &k) in order.iter().enumerate() {
            let (_, i) = &images[k];
            let pid = n.format(i.pid).to_string();
            if named.insert(i.pid) {
                json.extend_from_slice(b"{\"args\":{\"name\":");
                append_str(&mut json, &format!("{} (pid {})", i.name, i.pid));
                json.extend_from_slice(b"},\"name\":\"process_name\",\"ph\":\"M\",\"pid\":");
                pid_tid(&mut json, &pid, &pid);
                json.push(b'}');
                self.put(&mut json)?;
                json.extend_from_slice(b"{\"args\":{\"sort_index\":");
                json.extend_from_slice(n.format(rank).as_bytes());
                json.extend_from_slice(b"},\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":");
                pid_tid(&mut json, &pid, &pid);
                json.push(b'}');
                self.put(&mut json)?;
            }
            let end = i.end.unwrap_or(self.last).max(i.start);
            json.extend_from_slice(b"{\"args\":{\"argv\":");
            match &i.argv {
                Some(argv) => {
                    json.push(b'[');
                    for (k, a) in argv.iter().enumerate() {
                        if k > 0 {
                            json.push(b',');
                        }
                        append_str(&mut json, a);
                    }
                    json.push(b']');
                }
                None => json.extend_from_slice(b"null"),
            }
            let opt_str = |json: &mut Vec<u8>, name: &[u8], v: &Option<String>| {
                json.extend_from_slice(name);
                match v {
                    Some(v) => append_str(json, v),
                    None => json.extend_from_slice(b"null"),
                }
            };
            let opt_int = |json: &mut Vec<u8>, name: &[u8], v: Option<i64>| {
                json.extend_from_slice(name);
                match v {
                    Some(v) => json.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
                    None => json.extend_from_slice(b"null"),
                }
            };
            opt_str(&mut json, b",\"cwd\":", &i.cwd);
            opt_str(&mut json, b",\"exe\":", &i.exe);
            if let Some((code, _)) = i.exit {
                opt_int(&mut json, b",\"exit_code\":", code);
            }
            opt_str(&mut json, b",\"parent_span\":", &i.parent_span);
            if let Some((_, signal)) = i.exit {
                opt_int(&mut json, b",\"signal\":", signal);
            }
            opt_str(&mut json, b",\"span_id\":", &i.span_id);
            json.extend_from_slice(b"},\"cat\":\"process\",\"dur\":");
            push_us(&mut json, end - i.start);
            json.extend_from_slice(b",\"name\":");
            append_str(&mut json, &i.name);
            json.extend_from_slice(b",\"ph\":\"X\",\"pid\":");
            pid_tid(&mut json, &pid, &pid);
            json.extend_from_slice(b",\"ts\":");
            self.push_ts(&mut json, i.start);
            json.push(b'}');
            self.put(&mut json)?;
            if let Some(p) = i.parent.as_ref().and_then(|p| index.get(p)) {
                let parent = &images[*p].1;
                let id = n.format(k + 1).to_string();
                let ppid = itoa::Buffer::new().format(parent.pid).to_string();
                json.extend_from_slice(b"{\"cat\":\"tree\",\"id\":");
                json.extend_from_slice(id.as_bytes());
                json.extend_from_slice(b",\"name\":\"started\",\"ph\":\"s\",\"pid\":");
                pid_tid(&mut json, &ppid, &ppid);
                json.extend_from_slice(b",\"ts\":");
                self.push_ts(&mut json, i.start.max(parent.start));
                json.push(b'}');
                self.put(&mut json)?;
                json.extend_from_slice(b"{\"bp\":\"e\",\"cat\":\"tree\",\"id\":");
                json.extend_from_slice(id.as_bytes());
                json.extend_from_slice(b",\"name\":\"started\",\"ph\":\"f\",\"pid\":");
                pid_tid(&mut json, &pid, &pid);
                json.extend_from_slice(b",\"ts\":");
                self.push_ts(&mut json, i.start);
                json.push(b'}');
                self.put(&mut json)?;
            }
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

    /// The slices, names and flows are written as `serde_json` writes the `Value` objects
    /// they were once built as (members sorted by name): argv with quotes, control characters
    /// and non-ASCII, absent members as `null`, an exit by signal, an image that did not exit.
    #[test]
    fn slices_are_written_as_serde_writes_their_objects() {
        use serde_json::json;
        let head = r#""ts":"t","session_id":null,"parent_span":null,"component":"telemetry","tid":1,"pos":0,"ring_id":"r""#;
        let lines = [
            format!(
                r#"{{{head},"ts_unix_ns":1000,"event_type":"process_start","span_id":"a","pid":10,"argv":["sh","-c","echo \"hi\"\n\u0001é"],"cwd":"/w"}}"#
            ),
            format!(
                r#"{{{head},"ts_unix_ns":2500,"event_type":"process_start","span_id":"b","parent_image":"a","pid":11,"exe":"/bin/x"}}"#
            ),
            format!(
                r#"{{{head},"ts_unix_ns":4000,"event_type":"process_exit","span_id":"b","pid":11,"signal":9}}"#
            ),
            format!(
                r#"{{{head},"ts_unix_ns":5001,"event_type":"process_start","span_id":"c","parent_image":"a","pid":10,"argv":[]}}"#
            ),
            format!(
                r#"{{{head},"ts_unix_ns":9000,"event_type":"process_exit","span_id":"a","pid":10,"exit_code":3}}"#
            ),
        ];
        let mut w = Writer::new(Vec::new()).unwrap();
        for l in &lines {
            w.add(&Event::parse(l).unwrap()).unwrap();
        }
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        let want = [
            json!({"ph": "M", "name": "process_name", "pid": 10, "tid": 10, "args": {"name": "sh (pid 10)"}}),
            json!({"ph": "M", "name": "process_sort_index", "pid": 10, "tid": 10, "args": {"sort_index": 0}}),
            json!({"ph": "X", "name": "sh", "cat": "process", "ts": 0.0, "dur": 8.0, "pid": 10, "tid": 10,
                   "args": {"argv": ["sh", "-c", "echo \"hi\"\n\u{1}é"], "cwd": "/w", "exe": null,
                            "span_id": "a", "parent_span": null, "exit_code": 3, "signal": null}}),
            json!({"ph": "M", "name": "process_name", "pid": 11, "tid": 11, "args": {"name": "x (pid 11)"}}),
            json!({"ph": "M", "name": "process_sort_index", "pid": 11, "tid": 11, "args": {"sort_index": 1}}),
            json!({"ph": "X", "name": "x", "cat": "process", "ts": 1.5, "dur": 1.5, "pid": 11, "tid": 11,
                   "args": {"argv": null, "cwd": null, "exe": "/bin/x", "span_id": "b", "parent_span": null,
                            "exit_code": null, "signal": 9}}),
            json!({"ph": "s", "name": "started", "cat": "tree", "id": 2, "ts": 1.5, "pid": 10, "tid": 10}),
            json!({"ph": "f", "bp": "e", "name": "started", "cat": "tree", "id": 2, "ts": 1.5, "pid": 11, "tid": 11}),
            json!({"ph": "X", "name": "?", "cat": "process", "ts": 4.001, "dur": 3.999, "pid": 10, "tid": 10,
                   "args": {"argv": [], "cwd": null, "exe": null, "span_id": "c", "parent_span": null}}),
            json!({"ph": "s", "name": "started", "cat": "tree", "id": 3, "ts": 4.001, "pid": 10, "tid": 10}),
            json!({"ph": "f", "bp": "e", "name": "started", "cat": "tree", "id": 3, "ts": 4.001, "pid": 10, "tid": 10}),
        ];
        let want: Vec<String> = want.iter().map(|v| v.to_string()).collect();
        let got: Vec<&str> = out
            .lines()
            .skip_while(|l| !l.contains("process_name"))
            .take(want.len())
            .map(|l| l.trim_end_matches(','))
            .collect();
        assert_eq!(got, want, "{out}");
        assert!(out.ends_with("\n]}\n"));
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
