//! `substrate-drain summary`: what a trace did, in a screenful (or `--json`).
//!
//! Counts by event type and by program; files written, created, deleted, read and changed
//! (size, mode, owner, times, extended attributes: top N with counts); shared objects loaded
//! (with how many images loaded each); failed opens and execs; network endpoints and DNS names; processes that exited
//! non-zero or were killed; untraced children and lost records; the root's wall time.
//! Files count successful calls only; a file "created" is one opened with `O_CREAT` (it may
//! have existed: the trace cannot tell).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use serde::Serialize;

use crate::event::Event;

/// Everything `summary` reports.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Telemetry lines read.
    pub events: u64,
    /// Lines skipped (not telemetry).
    pub skipped: u64,
    /// Lines per event type.
    pub by_type: BTreeMap<String, u64>,
    /// Lines per program.
    pub by_program: BTreeMap<String, u64>,
    /// Process images started.
    pub processes: u64,
    /// Files opened for writing, with how often.
    pub files_written: BTreeMap<String, u64>,
    /// Files opened with `O_CREAT`.
    pub files_created: BTreeMap<String, u64>,
    /// Files unlinked or removed.
    pub files_deleted: BTreeMap<String, u64>,
    /// Files opened for reading.
    pub files_read: BTreeMap<String, u64>,
    /// Files whose size, mode, owner, times or extended attributes were changed, with how
    /// many changes (a change through a descriptor whose path is unknown: `fd N (pid P)`; of
    /// a path that was not read: `(path not read, pid P)`).
    pub files_changed: BTreeMap<String, u64>,
    /// Shared objects loaded (`object_load`), with how many images loaded each.
    pub objects_loaded: BTreeMap<String, u64>,
    /// Failed opens: `path (errno N)` with how often.
    pub failed_opens: BTreeMap<String, u64>,
    /// Failed execs: `path (errno N)` with how often.
    pub failed_execs: BTreeMap<String, u64>,
    /// `addr:port` (or a socket path) connected to.
    pub endpoints: BTreeMap<String, u64>,
    /// Names looked up.
    pub dns_names: BTreeMap<String, u64>,
    /// Images that exited non-zero or were killed: `program (pid N): exit N | signal N`.
    pub failed_processes: Vec<String>,
    /// Children that were not traced (static, setuid, …).
    pub untraced: u64,
    /// Records lost (from `lost` lines).
    pub lost: u64,
    /// Wall time of the root process image, ns (start to exit), when both are in the trace.
    pub root_wall_ns: Option<i64>,
}

const O_WRONLY: i64 = libc::O_WRONLY as i64;
const O_RDWR: i64 = libc::O_RDWR as i64;
const O_CREAT: i64 = libc::O_CREAT as i64;

/// Where [`Builder`] counts each list of [`lists`] (same order) while it reads: hash maps,
/// sorted into the summary's maps once at the end.
#[allow(non_upper_case_globals)]
mod list {
    pub const by_type: usize = 0;
    pub const by_program: usize = 1;
    pub const files_written: usize = 2;
    pub const files_created: usize = 3;
    pub const files_deleted: usize = 4;
    pub const files_read: usize = 5;
    pub const files_changed: usize = 6;
    pub const objects_loaded: usize = 7;
    pub const failed_opens: usize = 8;
    pub const failed_execs: usize = 9;
    pub const endpoints: usize = 10;
    pub const dns_names: usize = 11;
    pub const COUNT: usize = 12;
}

/// Counts by key. Runs of one key (a program's events come together) are counted without
/// hashing: the last key's count is kept apart until another key comes.
#[derive(Default)]
struct Counts {
    map: HashMap<String, u64>,
    last: String,
    pending: u64,
}

impl Counts {
    /// Count one `k` (allocating its key only the first time).
    fn bump(&mut self, k: &str) {
        if self.pending > 0 && self.last == k {
            self.pending += 1;
            return;
        }
        self.settle();
        self.last.clear();
        self.last.push_str(k);
        self.pending = 1;
    }

    fn settle(&mut self) {
        if self.pending > 0 {
            match self.map.get_mut(self.last.as_str()) {
                Some(n) => *n += self.pending,
                None => {
                    self.map.insert(self.last.clone(), self.pending);
                }
            }
            self.pending = 0;
        }
    }

    fn into_sorted(mut self) -> BTreeMap<String, u64> {
        self.settle();
        self.map.into_iter().collect()
    }
}

fn bump(c: &mut Counts, k: &str) {
    c.bump(k);
}

/// Builds a [`Summary`] from events, one at a time.
#[derive(Default)]
pub struct Builder {
    s: Summary,
    counts: [Counts; list::COUNT],
    /// Events by image (`by_program` is summed from it at the end: an image's events come
    /// together, so counting them costs no hashing).
    per_span: Counts,
    programs: HashMap<String, String>,
    root: Option<(String, i64)>,
}

impl Builder {
    /// Account one event.
    pub fn add(&mut self, ev: &Event) {
        let s = &mut self.s;
        let c = &mut self.counts;
        s.events += 1;
        bump(&mut c[list::by_type], &ev.event_type);
        let span = ev.span_id.as_deref().unwrap_or_default();
        if ev.event_type == "process_start" {
            self.programs.insert(span.to_string(), super::program(ev));
            s.processes += 1;
            if ev.parent_image.is_none() && self.root.is_none() {
                self.root = Some((span.to_string(), ev.ts_unix_ns));
            }
        }
        let program = |programs: &HashMap<String, String>| {
            programs.get(span).map_or("?", String::as_str).to_string()
        };
        if ev.event_type != "lost" {
            self.per_span.bump(span);
        }
        let path = || {
            ev.abs_path
                .as_deref()
                .or(ev.path.as_deref())
                .unwrap_or_default()
        };
        match &*ev.event_type {
            "file_open" => {
                if let Some(e) = ev.errno {
                    bump(
                        &mut c[list::failed_opens],
                        &format!("{} (errno {e})", path()),
                    );
                } else {
                    let flags = ev.flags.unwrap_or(0);
                    if flags & (O_WRONLY | O_RDWR) != 0 {
                        bump(&mut c[list::files_written], path());
                    } else {
                        bump(&mut c[list::files_read], path());
                    }
                    if flags & O_CREAT != 0 {
                        bump(&mut c[list::files_created], path());
                    }
                }
            }
            "object_load" => bump(&mut c[list::objects_loaded], path()),
            "file_unlink" | "file_rmdir" if ev.errno.is_none() => {
                bump(&mut c[list::files_deleted], path());
            }
            t if super::show::is_meta(t) && ev.errno.is_none() => {
                let pid = ev.pid.unwrap_or(0);
                let file = match (&ev.abs_path, &ev.path, ev.fd) {
                    (None, None, Some(fd)) => format!("fd {fd} (pid {pid})"),
                    _ if ev.path_unreadable == Some(true) => format!("(path not read, pid {pid})"),
                    _ => path().to_string(),
                };
                bump(&mut c[list::files_changed], &file);
            }
            "exec" | "spawn" => {
                if let Some(e) = ev.errno {
                    let p = ev.path.as_deref().unwrap_or_default();
                    bump(&mut c[list::failed_execs], &format!("{p} (errno {e})"));
                }
                s.untraced += u64::from(ev.untraced == Some(true));
            }
            "net_connect" => {
                let ep = match (&ev.addr, ev.port) {
                    (Some(a), Some(p)) if a.contains(':') => format!("[{a}]:{p}"),
                    (Some(a), Some(p)) => format!("{a}:{p}"),
                    (Some(a), None) => a.to_string(),
                    _ => "?".into(),
                };
                bump(&mut c[list::endpoints], &ep);
            }
            "dns_lookup" => bump(
                &mut c[list::dns_names],
                ev.name.as_deref().unwrap_or_default(),
            ),
            "process_exit" => {
                let prog = program(&self.programs);
                let pid = ev.pid.unwrap_or(0);
                if let Some(sig) = ev.signal {
                    s.failed_processes
                        .push(format!("{prog} (pid {pid}): signal {sig}"));
                } else if let Some(c) = ev.exit_code.filter(|c| *c != 0) {
                    s.failed_processes
                        .push(format!("{prog} (pid {pid}): exit {c}"));
                }
                if let Some((root, start)) = &self.root {
                    if *root == span {
                        s.root_wall_ns = Some(ev.ts_unix_ns - start);
                    }
                }
            }
            "lost" => s.lost += ev.count.unwrap_or(0),
            _ => {}
        }
    }

    /// The summary, with `skipped` lines noted.
    pub fn finish(mut self, skipped: u64) -> Summary {
        self.s.skipped = skipped;
        for (span, n) in std::mem::take(&mut self.per_span).into_sorted() {
            let program = self.programs.get(&span).map_or("?", String::as_str);
            let c = &mut self.counts[list::by_program];
            c.settle();
            *c.map.entry(program.to_string()).or_default() += n;
        }
        let sorted = self.counts.map(Counts::into_sorted);
        let s = &mut self.s;
        [
            s.by_type,
            s.by_program,
            s.files_written,
            s.files_created,
            s.files_deleted,
            s.files_read,
            s.files_changed,
            s.objects_loaded,
            s.failed_opens,
            s.failed_execs,
            s.endpoints,
            s.dns_names,
        ] = sorted;
        self.s
    }
}

/// The `n` entries of `m` with the highest counts, highest first (ties by name).
pub fn top(m: &BTreeMap<String, u64>, n: usize) -> Vec<(&String, &u64)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.truncate(n);
    v
}

/// The counted lists of a summary with their titles, in the order `text` prints them.
pub fn lists(s: &Summary) -> [(&'static str, &BTreeMap<String, u64>); 12] {
    [
        ("events by type", &s.by_type),
        ("events by program", &s.by_program),
        ("files written", &s.files_written),
        ("files created (O_CREAT)", &s.files_created),
        ("files deleted", &s.files_deleted),
        ("files read", &s.files_read),
        (
            "files changed (size, mode, owner, times, xattrs)",
            &s.files_changed,
        ),
        ("shared objects loaded (images)", &s.objects_loaded),
        ("failed opens", &s.failed_opens),
        ("failed execs", &s.failed_execs),
        ("network endpoints", &s.endpoints),
        ("DNS names", &s.dns_names),
    ]
}

/// The summary as text for a terminal, lists cut to `n` entries.
pub fn text(s: &Summary, n: usize) -> String {
    let mut o = String::new();
    let wall = s.root_wall_ns.map_or("unknown".into(), super::duration);
    let _ = writeln!(
        o,
        "{} events, {} processes, {} untraced, {} lost; root wall time {wall}",
        s.events, s.processes, s.untraced, s.lost
    );
    if s.skipped > 0 {
        let _ = writeln!(o, "({} lines that are not telemetry skipped)", s.skipped);
    }
    let mut section = |title: &str, m: &BTreeMap<String, u64>| {
        if m.is_empty() {
            return;
        }
        let _ = writeln!(o, "\n{title} ({}):", m.len());
        for (k, v) in top(m, n) {
            let _ = writeln!(o, "  {v:>7}  {}", super::shorten(k, 100));
        }
    };
    for (title, m) in lists(s) {
        section(title, m);
    }
    if !s.failed_processes.is_empty() {
        let _ = writeln!(o, "\nprocesses that failed ({}):", s.failed_processes.len());
        for p in s.failed_processes.iter().take(n) {
            let _ = writeln!(o, "  {p}");
        }
    }
    o
}
