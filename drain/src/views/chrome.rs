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

use crate::event::Event;

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
static SKIP: std::sync::LazyLock<Vec<&str>> = std::sync::LazyLock::new(|| {
    crate::event::HEADER
        .into_iter()
        .filter(|k| !matches!(*k, "span_id" | "pos"))
        .collect()
});

/// Whether an event type is an instant (file, network and DNS events).
fn is_instant(t: &str) -> bool {
    t.starts_with("file_") || t.starts_with("net_") || t == "dns_lookup"
}

/// Write an instant's args (the event's own members) to `out`; nothing for other events.
/// Safe to run on any thread (the export does it where lines are parsed).
pub fn render_args(ev: &Event, out: impl Write) -> io::Result<()> {
    if is_instant(&ev.event_type) {
        crate::event::write_members(ev, &SKIP, out)?;
    }
    Ok(())
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
}

impl<W: Write> Writer<W> {
    /// Start the JSON object on `out`.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(b"{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n")?;
        Ok(Writer {
            out,
            first: true,
            t0: None,
            last: 0,
            images: HashMap::new(),
            instants: 0,
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

    /// Account one event.
    pub fn add(&mut self, ev: &Event) -> io::Result<()> {
        self.add_rendered(ev, &[])
    }

    /// [`Writer::add`], with the instant's args as [`render_args`] wrote them (empty: written
    /// here).
    pub fn add_rendered(&mut self, ev: &Event, args: &[u8]) -> io::Result<()> {
        let t0 = *self.t0.get_or_insert(ev.ts_unix_ns);
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
            t if is_instant(t) => {
                // Written directly (not built as a value): there is one per event.
                if !self.first {
                    self.out.write_all(b",\n")?;
                }
                self.first = false;
                let o = &mut self.out;
                o.write_all(b"{\"ph\":\"i\",\"s\":\"t\",\"name\":")?;
                serde_json::to_writer(&mut *o, t)?;
                write!(o, ",\"cat\":\"{}\",\"ts\":", super::show::class(t))?;
                serde_json::to_writer(&mut *o, &((ev.ts_unix_ns - t0) as f64 / 1000.0))?;
                let (pid, tid) = (ev.pid.unwrap_or(0), ev.tid.unwrap_or(0));
                write!(o, ",\"pid\":{pid},\"tid\":{tid},\"args\":")?;
                if args.is_empty() {
                    render_args(ev, &mut *o)?;
                } else {
                    o.write_all(args)?;
                }
                o.write_all(b"}")?;
                self.instants += 1;
            }
            _ => {}
        }
        Ok(())
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
