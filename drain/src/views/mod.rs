//! Reading a trace: `summary`, `tree`, `show`, `report` (HTML) and `export` (chrome,
//! compile-commands, otlp) over a `trace.jsonl` file or a ring, as typed [`Event`]s.
//!
//! Input is either a ring (decoded in-process, as `decode` would) or a trace file of JSON
//! lines. A trace file may be shared with `substrate` and other sessions: lines that are not
//! telemetry lines (`component` other than `telemetry`, or not JSON) are skipped and counted,
//! never an error. Events are streamed one at a time; only per-process state is kept.

pub mod chrome;
pub mod compdb;
pub mod otlp;
mod read;
pub use read::{Handed, Line, Work};
pub mod report;
pub mod show;
pub mod summary;
pub mod tree;

use std::path::Path;

use crate::event::Event;

/// What reading an input found besides its events.
#[derive(Debug, Default, Clone, Copy)]
pub struct Input {
    /// Events handed on.
    pub events: u64,
    /// Lines skipped: not JSON, or not a telemetry line.
    pub skipped: u64,
}

/// Whether `path` is a ring file (by its magic).
fn is_ring(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == format::layout::MAGIC
}

/// Hand every event of `path` (a ring or a trace file) to `f`, in order.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let t = dir.path().join("t.jsonl");
/// std::fs::write(&t, "{\"component\":\"substrate\"}\nnot json\n").unwrap();
/// let mut n = 0;
/// let input = drain::views::for_each_event(&t, |_| n += 1).unwrap();
/// assert_eq!((n, input.skipped), (0, 2));
/// ```
pub fn for_each_event(path: &Path, mut f: impl FnMut(&Event<'_>)) -> Result<Input, String> {
    let keep = || Keep(None);
    for_each_event_with(path, &keep, |(ev, _)| {
        if let Some(ev) = ev {
            f(ev);
        }
    })
    .map(|(input, _)| input)
}

/// [`for_each_event`], with `render` run for each event on the threads that parse (an
/// exporter's serialization, in parallel); `f` gets what it wrote for the event.
pub fn for_each_event_rendered(
    path: &Path,
    render: Render<'_>,
    mut f: impl FnMut(&Event<'_>, &[u8]),
) -> Result<Input, String> {
    let keep = || Keep(Some(render));
    for_each_event_with(path, &keep, |(ev, bytes)| {
        if let Some(ev) = ev {
            f(ev, bytes);
        }
    })
    .map(|(input, _)| input)
}

/// A view built from events: each is counted apart by its [`Work`] on the threads that parse,
/// and the view itself gets, in order, only the events the works keep ([`Ordered::add_ordered`])
/// and then the works ([`Ordered::merge`]). [`build`] does both.
pub trait Ordered {
    /// What counts apart on each parsing thread.
    type Work: Work + Default;

    /// Account an event a [`Ordered::Work`] kept, in order (the work counted the rest of it).
    fn add_ordered(&mut self, ev: &Event);

    /// Add what a [`Ordered::Work`] counted.
    fn merge(&mut self, work: Self::Work);
}

/// Read `path` into `view`: events counted on the threads that parse, those kept added in
/// order, the works merged at the end.
pub fn build<V: Ordered>(path: &Path, view: &mut V) -> Result<Input, String> {
    let (input, works) = for_each_event_with(path, &V::Work::default, |(ev, _)| {
        if let Some(ev) = ev {
            view.add_ordered(ev);
        }
    })?;
    for work in works {
        view.merge(work);
    }
    Ok(input)
}

/// The time (`ts_unix_ns`) of the first telemetry event of a trace file, as
/// [`for_each_event`] would hand it on, found in the file's first MiB; `None` for a ring or
/// when that MiB has none.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let t = dir.path().join("t.jsonl");
/// let event = r#"{"ts":"t","ts_unix_ns":7,"event_type":"file_open","session_id":null,
///   "span_id":null,"parent_span":null,"component":"telemetry","pid":1,"tid":1,"pos":0,
///   "ring_id":"r"}"#.replace('\n', "");
/// std::fs::write(&t, format!("{{\"component\":\"substrate\"}}\nnot json\n{event}")).unwrap();
/// assert_eq!(drain::views::first_event_ts(&t), Some(7));
/// std::fs::write(&t, "{\"component\":\"substrate\"}\n").unwrap();
/// assert_eq!(drain::views::first_event_ts(&t), None);
/// ```
pub fn first_event_ts(path: &Path) -> Option<i64> {
    use std::io::Read;
    const PEEK: u64 = 1 << 20;
    if is_ring(path) {
        return None;
    }
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(PEEK)
        .read_to_end(&mut head)
        .ok()?;
    let mut lines: Vec<&[u8]> = head.split(|b| *b == b'\n').collect();
    if head.len() as u64 == PEEK {
        lines.pop(); // cut short: the file goes on
    }
    lines.into_iter().find_map(|line| {
        let mut ev = Event::default();
        let telemetry = ev.parse_bytes_into(line).is_ok() && ev.component == "telemetry";
        telemetry.then_some(ev.ts_unix_ns)
    })
}

/// Keeps every event, with what its render wrote.
struct Keep<'r>(Option<Render<'r>>);

/// Formatting of each event on the threads that parse (see [`for_each_event_rendered`]).
pub type Render<'r> = &'r (dyn Fn(&Event<'_>, &mut Vec<u8>) + Sync);

impl Work for Keep<'_> {
    fn event(&mut self, ev: &Event<'_>, _: Line<'_>, out: &mut Vec<u8>) -> bool {
        if let Some(render) = self.0 {
            render(ev, out);
        }
        true
    }
}

/// Give every event of `path` to a [`Work`] on the threads that parse (one made by `new` for
/// each), and hand on to `f`, in order, the events they keep and the bytes they write; the
/// works are returned for the caller to merge.
pub fn for_each_event_with<W: Work>(
    path: &Path,
    new: &(dyn Fn() -> W + Sync),
    f: impl FnMut(Handed<'_, '_>),
) -> Result<(Input, Vec<W>), String> {
    let mut input = Input::default();
    if is_ring(path) {
        let ring = format::Ring::open_read_only(path).map_err(|e| crate::ring_error(path, &e))?;
        let works = read::for_each_ring_event(&ring, &mut input, new, f)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok((input, works));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(format!("{}: not a regular file", path.display()));
    }
    let works = read::for_each_telemetry_event(&file, &mut input, new, f)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((input, works))
}

/// File and network events counted by image (`span_id`), as `tree` and `report` show them:
/// `file_*` and `chdir` are file events; `net_*` and `dns_lookup` network ones. A run of
/// events of one image (they come together) is counted without hashing.
#[derive(Default)]
pub struct PerImage {
    map: hashbrown::HashMap<String, (u64, u64)>,
    run: (String, u64, u64),
}

impl PerImage {
    /// Count `ev` if it is a file or network event of an image.
    pub fn count(&mut self, ev: &Event) {
        let Some(span) = ev.span_id.as_deref() else {
            return; // lost
        };
        let t = &*ev.event_type;
        let (files, net) = if t.starts_with("file_") || t == "chdir" {
            (1, 0)
        } else if t.starts_with("net_") || t == "dns_lookup" {
            (0, 1)
        } else {
            return;
        };
        if self.run.0 != span {
            self.settle();
            self.run.0.clear();
            self.run.0.push_str(span);
        }
        self.run.1 += files;
        self.run.2 += net;
    }

    fn settle(&mut self) {
        let (span, files, net) = &mut self.run;
        if *files + *net > 0 {
            let c = self.map.entry_ref(span.as_str()).or_default();
            c.0 += std::mem::take(files);
            c.1 += std::mem::take(net);
        }
    }

    /// Add `other`'s counts to these.
    pub fn merge(&mut self, mut other: PerImage) {
        other.settle();
        self.settle();
        if self.map.len() < other.map.len() {
            std::mem::swap(&mut self.map, &mut other.map);
        }
        for (span, (files, net)) in other.map {
            let c = self.map.entry(span).or_default();
            c.0 += files;
            c.1 += net;
        }
    }

    /// Each image's `(file events, network events)`.
    pub fn into_counts(mut self) -> hashbrown::HashMap<String, (u64, u64)> {
        self.settle();
        self.map
    }
}

/// The program of an image, from its `process_start`: argv\[0\]'s last path component, else
/// the executable's.
pub fn program(ev: &Event) -> String {
    let base = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
    ev.argv
        .as_ref()
        .and_then(|a| a.first())
        .filter(|a| !a.is_empty())
        .map(|a| base(a))
        .or_else(|| ev.exe.as_deref().map(base))
        .unwrap_or_else(|| "?".into())
}

/// `s` cut to `max` characters, with `…` when cut.
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// A duration in ns for people: `850us`, `12.3ms`, `4.56s`, `2m03s`.
pub fn duration(ns: i64) -> String {
    let ns = ns.max(0) as f64;
    if ns < 1e6 {
        format!("{:.0}us", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1}ms", ns / 1e6)
    } else if ns < 60e9 {
        format!("{:.2}s", ns / 1e9)
    } else {
        let s = (ns / 1e9) as u64;
        format!("{}m{:02}s", s / 60, s % 60)
    }
}
