//! Records to `trace.jsonl` lines. The schema is documented in `drain/SCHEMA.md`.
//!
//! The decoder keeps, per process image (span): its ids (`session_id`, `parent_span` as the
//! image saw `SHIM_SESSION_ID`/`SHIM_PARENT_SPAN`, `parent_image`) and directories (for
//! `abs_path`). An `exec` line waits for the outcome of its call: the `exec_failed`
//! record that follows a failed call (merged as `errno`), or any later record of the same pid
//! (success), or [`Decoder::flush_pending`] when the stream goes quiet or ends.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use format::records::{
    ev_flags, file_op, meta_flags, start_flags, untraced, AnyEvent, EventHeader, FileMeta, FileOp,
    ProcessExit, ProcessStart, ProcessStartV2, Vars,
};
use format::{ids, Item, Loss, Ring};

use crate::json::Line;
use crate::model::{Chdir, Processes};
use crate::render;
use crate::resume::{self, Written};
use crate::timefmt;

/// Decoder settings.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Mask secrets in argv.
    pub redact: bool,
}

/// Counts for the summary line.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Lines written for events (not `lost`).
    pub events: u64,
    /// `process_start` lines.
    pub processes: u64,
    /// Records reported lost (abandoned, unwritten, corrupt, overwritten, torn, undecodable).
    pub lost: u64,
    /// Records the writers dropped (full ring, no slot, …).
    pub dropped: u64,
    /// The read ended before a record a live writer had not finished (reported as a `lost`
    /// line with reason `unfinished`).
    pub unfinished: Option<Loss>,
}

/// See [`Decoder::unstarted_children_alive`].
pub const MAX_UNSTARTED: usize = 4096;

/// What a `process_start` line is made of, from either layout.
struct Start<'a> {
    h: &'a EventHeader,
    ppid: u32,
    start_flags: u32,
    parent_image: Option<[u8; 16]>,
    /// `SHIM_SESSION_ID` as the image saw it (version 1 and 2 rings: the parsed UUID as text).
    shim_session: Option<&'a [u8]>,
    /// `SHIM_PARENT_SPAN` as the image saw it (version 1 and 2 rings: `spn_` + the span).
    shim_parent_span: Option<&'a [u8]>,
    exe: &'a [u8],
    cwd: &'a [u8],
}

struct PendingExec {
    pos: u64,
    hdr: EventHeader,
    op: u16,
    untraced: u16,
    fd: i32,
    /// The var fields (path, argv…), end to end, and where each ends: two allocations for an
    /// exec, whatever its argv.
    vars: Vec<u8>,
    ends: Vec<usize>,
    since: Instant,
}

impl PendingExec {
    /// The var fields.
    fn vars(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(a, b)| self.vars.get(a..b).unwrap_or_default())
    }
}

/// Turns records into lines. [`crate::follow::Follower`] drives it; used alone, it takes the
/// reader's items one by one.
///
/// ```
/// use format::{Reader, ReaderOptions, Ring, Writer};
/// use format::records::{EventHeader, ProcessExit};
///
/// let dir = tempfile::tempdir().unwrap();
/// let ring = Ring::create(&dir.path().join("r.ring"), &Default::default()).unwrap();
/// let exit = ProcessExit {
///     ev: EventHeader { span: [7; 16], pid: 42.into(), tid: 42.into(), ..Default::default() },
///     how: format::records::exit_how::EXIT.into(),
///     ..Default::default()
/// };
/// Writer::attach(&ring).unwrap().write_event(&exit, std::iter::empty()).unwrap();
///
/// let mut dec = drain::decode::Decoder::new(&ring, drain::decode::Options { redact: true });
/// let mut reader = Reader::new(&ring, ReaderOptions::default());
/// let mut out = Vec::new();
/// let item = reader.poll();
/// dec.item(&ring, &item, &mut out).unwrap();
/// dec.flush_pending(&ring, None, &mut out).unwrap();
/// let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
/// assert_eq!(line["event_type"], "process_exit");
/// assert_eq!(line["pid"], 42);
/// assert_eq!(dec.stats.events, 1);
/// ```
pub struct Decoder {
    /// Redaction of argv, on or off (`Options::redact`).
    redaction: render::Redaction,
    /// The ring's format version: which layouts its records have.
    version: u32,
    ring_session: [u8; 16],
    procs: Processes,
    ts: timefmt::TsCache,
    pending: Vec<PendingExec>,
    line: Line,
    /// Scratch space for an absolute path (reused: no allocation per line).
    abs: Vec<u8>,
    cur_pos: u64,
    /// Lines of records below this position update the state but are not written (a resumed
    /// follow re-reads what it already wrote, to learn spans and directories again).
    mute_below: u64,
    /// Lines the output already holds (a resumed follow).
    written: Written,
    /// `"ring_id":"…"`, on every line.
    ring_id: String,
    /// Children announced by `fork`/`spawn` lines whose `process_start` was not read yet.
    unstarted: std::collections::HashSet<u32>,
    /// Counts so far.
    pub stats: Stats,
}

impl Decoder {
    /// A decoder for records of `ring`.
    pub fn new(ring: &Ring, opts: Options) -> Decoder {
        Decoder {
            redaction: render::Redaction::new(opts.redact),
            version: ring.header().version.get(),
            ring_session: ring.session_id(),
            procs: Processes::new(ring.session_id()),
            ts: timefmt::TsCache::default(),
            pending: Vec::new(),
            line: Line::default(),
            abs: Vec::new(),
            cur_pos: 0,
            mute_below: 0,
            written: Written::default(),
            unstarted: Default::default(),
            ring_id: format!("\"ring_id\":\"{}\"", resume::ring_id(ring)),
            stats: Stats::default(),
        }
    }

    /// Resume into an output that already holds lines of this ring: lines of records below
    /// `published` update the process model but are not written, nor are those `written`
    /// holds. See [`crate::resume`].
    pub fn resume(&mut self, published: u64, written: Written) {
        self.mute_below = published;
        self.written = written;
    }

    /// The process model: the images seen so far, their ids and directories.
    pub fn processes(&self) -> &Processes {
        &self.procs
    }

    /// Whether the line of the record at `pos` will be written (not muted by a resume).
    pub fn writes(&self, pos: u64) -> bool {
        pos >= self.mute_below
    }

    /// Whether a child that a `fork` or `spawn` announced, and whose `process_start` was not
    /// read yet, is alive (`/proc/PID` exists). Children found gone are forgotten.
    pub fn unstarted_children_alive(&mut self) -> bool {
        self.unstarted
            .retain(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        !self.unstarted.is_empty()
    }

    /// A `fork` or `spawn` line announced child `pid` (at most [`MAX_UNSTARTED`] are kept: a
    /// forged ring cannot make the liveness check unbounded).
    fn announced(&mut self, pid: i32) {
        if pid > 0 && self.unstarted.len() < MAX_UNSTARTED {
            self.unstarted.insert(pid as u32);
        }
    }

    /// The lowest stream position whose line is not written yet (a waiting `exec`).
    pub fn min_pending_pos(&self) -> Option<u64> {
        self.pending.iter().map(|p| p.pos).min()
    }

    /// Decode one reader item into `out`.
    pub fn item(&mut self, ring: &Ring, item: &Item<'_>, out: &mut impl Write) -> io::Result<()> {
        match item {
            Item::Record(r) => self.record(ring, r.pos, r.kind, r.payload, out),
            Item::Lost(l) => self.lost(ring, l, out),
            Item::Waiting(_) => Ok(()),
        }
    }

    /// Write `exec` lines that waited longer than `age` (all of them with `None`) as
    /// successful.
    pub fn flush_pending(
        &mut self,
        ring: &Ring,
        age: Option<Duration>,
        out: &mut impl Write,
    ) -> io::Result<()> {
        let now = Instant::now();
        let mut i = 0;
        while i < self.pending.len() {
            if age.is_none_or(|a| now.duration_since(self.pending[i].since) >= a) {
                let p = self.pending.remove(i);
                self.exec_line(ring, &p, None, out)?;
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    /// Start the line of an event of image `h.span`: the members every line has.
    fn common(&mut self, ring: &Ring, h: &EventHeader, event_type: &'static str, pos: u64) {
        let image = self.procs.image(h.span);
        let unix = ring.to_unix_ns(h.ts_ns.get());
        self.cur_pos = pos;
        let l = &mut self.line;
        l.begin();
        l.members_with(|b| self.ts.push_members(b, unix));
        l.name("event_type", event_type);
        image.ids.write(l);
        l.raw("\"component\":\"telemetry\"");
        l.int("pid", h.pid.get());
        l.int("tid", h.tid.get());
        l.int("pos", pos);
        l.raw(&self.ring_id);
        if h.flags.get() & ev_flags::TRUNCATED != 0 {
            l.bool("truncated", true);
        }
        for (bit, key) in ev_flags::UNREADABLE {
            if h.flags.get() & bit != 0 {
                l.bool(key, true);
            }
        }
    }

    fn muted(&mut self, pos: u64) -> bool {
        pos < self.mute_below || self.written.take(pos, false)
    }

    fn emit(&mut self, out: &mut impl Write) -> io::Result<()> {
        if self.muted(self.cur_pos) {
            return Ok(());
        }
        self.stats.events += 1;
        out.write_all(self.line.end())
    }

    fn lost(&mut self, ring: &Ring, l: &Loss, out: &mut impl Write) -> io::Result<()> {
        if l.pos < self.mute_below || self.written.take(l.pos, true) {
            return Ok(());
        }
        let dropped = matches!(l.reason, format::LossReason::Dropped(_));
        if dropped {
            self.stats.dropped += l.records;
        } else {
            self.stats.lost += l.records;
        }
        let unix = ring.now_unix_ns();
        let line = &mut self.line;
        line.begin();
        line.str("ts", &timefmt::rfc3339(unix));
        line.int("ts_unix_ns", unix);
        line.str("event_type", "lost");
        if self.ring_session == [0; 16] {
            line.null("session_id");
        } else {
            line.str("session_id", &ids::uuid_string(&self.ring_session));
        }
        line.null("span_id");
        line.null("parent_span");
        line.null("parent_image");
        line.str("component", "telemetry");
        line.null("pid");
        line.null("tid");
        line.int("pos", l.pos);
        line.raw(&self.ring_id);
        render::lost(line, l);
        out.write_all(self.line.end())
    }

    fn undecodable(
        &mut self,
        ring: &Ring,
        pos: u64,
        kind: u16,
        out: &mut impl Write,
    ) -> io::Result<()> {
        let loss = Loss {
            reason: format::LossReason::Corrupt,
            records: 1,
            exact: true,
            bytes: 0,
            pos,
            kind: Some(kind),
            writer: None,
        };
        self.lost(ring, &loss, out)
    }

    /// Close a pending exec of `pid` as successful: its image was replaced.
    fn settle_pid(&mut self, ring: &Ring, pid: u32, out: &mut impl Write) -> io::Result<()> {
        while let Some(i) = self.pending.iter().position(|p| p.hdr.pid.get() == pid) {
            let p = self.pending.remove(i);
            self.exec_line(ring, &p, None, out)?;
        }
        Ok(())
    }

    fn record(
        &mut self,
        ring: &Ring,
        pos: u64,
        kind: u16,
        payload: &[u8],
        out: &mut impl Write,
    ) -> io::Result<()> {
        if kind >= format::KIND_USER {
            return Ok(()); // test and tool records
        }
        let ev = match AnyEvent::decode_version(self.version, kind, payload) {
            Ok(ev) => ev,
            Err(_) => return self.undecodable(ring, pos, kind, out),
        };
        let h = ev.ev();
        if let AnyEvent::ExecFailed(f) = &ev {
            if let Some(i) = self.pending.iter().position(|p| p.pos == f.exec_pos.get()) {
                let p = self.pending.remove(i);
                return self.exec_line(ring, &p, Some(f.errno.get()), out);
            }
            return Ok(()); // its exec was already written (or lost)
        }
        if !self.pending.is_empty() {
            self.settle_pid(ring, h.pid.get(), out)?;
        }
        match ev {
            AnyEvent::ProcessStart(e, vars) => self.process_start(ring, pos, e, vars, out),
            AnyEvent::ProcessStartV2(e, vars) => self.process_start_v2(ring, pos, e, vars, out),
            AnyEvent::ProcessExit(e) => self.process_exit(ring, pos, e, out),
            AnyEvent::Exec(e, vars) => {
                let (mut bytes, mut ends) = (Vec::new(), Vec::new());
                for v in vars {
                    bytes.extend_from_slice(v);
                    ends.push(bytes.len());
                }
                self.pending.push(PendingExec {
                    pos,
                    hdr: *h,
                    op: e.op.get(),
                    untraced: e.untraced.get(),
                    fd: e.fd.get(),
                    vars: bytes,
                    ends,
                    since: Instant::now(),
                });
                Ok(())
            }
            AnyEvent::ExecFailed(_) => Ok(()),
            AnyEvent::Spawn(e, vars) => {
                // A child that will be traced, by the preload or by the supervisor.
                let u = e.untraced.get();
                if u == 0 || u & untraced::SUPERVISED != 0 {
                    self.announced(e.child_pid.get());
                }
                let vars: Vec<&[u8]> = vars.collect();
                let path = vars.first().copied().unwrap_or(b"");
                self.common(ring, h, "spawn", pos);
                let args = &vars[1.min(vars.len())..];
                render::spawn(&mut self.line, e, path, args, &mut self.redaction);
                self.emit(out)
            }
            AnyEvent::Fork(e) => {
                self.announced(e.child_pid.get());
                self.common(ring, h, "fork", pos);
                render::fork(&mut self.line, e);
                self.emit(out)
            }
            AnyEvent::FileOpen(e, mut vars) => {
                let path = vars.next().unwrap_or(b"");
                let mut abs = std::mem::take(&mut self.abs);
                let known = !path.is_empty()
                    && self
                        .procs
                        .resolve_into(h.span, e.dirfd.get(), path, &mut abs);
                let abs_ref = known.then_some(abs.as_slice());
                if e.fd.get() >= 0 {
                    self.procs.opened(h.span, e.fd.get(), abs_ref);
                }
                self.common(ring, h, "file_open", pos);
                render::file_open(&mut self.line, e, path, abs_ref);
                self.abs = abs;
                self.emit(out)
            }
            AnyEvent::FileOp(e, mut vars) => {
                let path = vars.next().unwrap_or(b"");
                let path2 = vars.next();
                self.file_op(ring, pos, e, path, path2, out)
            }
            AnyEvent::FileMeta(e, mut vars) => {
                let path = vars.next().unwrap_or(b"");
                let name = vars.next().unwrap_or(b"");
                self.file_meta(ring, pos, e, path, name, out)
            }
            AnyEvent::Net(e, mut vars) => {
                self.common(ring, h, render::net_type(e.op.get()), pos);
                render::net(&mut self.line, e, vars.next());
                self.emit(out)
            }
            AnyEvent::Dns(e, mut vars) => {
                let name = vars.next().unwrap_or(b"");
                let service = vars.next().unwrap_or(b"");
                let raw = vars.next().unwrap_or(b"");
                self.common(ring, h, "dns_lookup", pos);
                let r = render::DnsResult {
                    result: e.result.get(),
                    errno: e.errno.get(),
                    naddrs: e.naddrs.get(),
                };
                render::dns(&mut self.line, &r, name, service, raw);
                self.emit(out)
            }
            AnyEvent::ObjectLoad(e, mut vars) => {
                let path = vars.next().unwrap_or(b"");
                // The loader's name of the object: absolute, or relative to the working
                // directory (as the drain knows it now; see SCHEMA.md).
                let mut abs = std::mem::take(&mut self.abs);
                let known = !path.is_empty()
                    && self
                        .procs
                        .resolve_into(h.span, libc::AT_FDCWD, path, &mut abs);
                self.common(ring, h, "object_load", pos);
                render::object_load(&mut self.line, e, path, known.then_some(abs.as_slice()));
                self.abs = abs;
                self.emit(out)
            }
        }
    }

    fn process_start(
        &mut self,
        ring: &Ring,
        pos: u64,
        e: &ProcessStart,
        vars: Vars<'_>,
        out: &mut impl Write,
    ) -> io::Result<()> {
        let sv = e.split_vars(vars);
        let start = Start {
            h: &e.ev,
            ppid: e.ppid.get(),
            start_flags: e.start_flags.get(),
            parent_image: (e.parent_image != [0; 16]).then_some(e.parent_image),
            shim_session: sv.shim_session_id,
            shim_parent_span: sv.shim_parent_span,
            exe: sv.exe,
            cwd: sv.cwd,
        };
        self.start_line(ring, pos, &start, sv.argv, out)
    }

    /// A `process_start` of a version 1 or 2 ring: its ids are parsed UUIDs in the fixed part
    /// (RING.md §7). They are rendered as that version's drain did: `session_id` the UUID
    /// (else the ring's), `parent_span` `spn_` + the span. Those preloads set every child's
    /// `SHIM_PARENT_SPAN` to the span of the image that started it, so `parent_span` is also
    /// `parent_image` when it names an image this decoder knows (started earlier in the ring
    /// and not ended); at a root it names the caller's span, which is no image of the ring.
    fn process_start_v2(
        &mut self,
        ring: &Ring,
        pos: u64,
        e: &ProcessStartV2,
        vars: Vars<'_>,
        out: &mut impl Write,
    ) -> io::Result<()> {
        let (exe, cwd, argv) = e.split_vars(vars);
        let nonzero = |id: [u8; 16]| (id != [0; 16]).then_some(id);
        let session = nonzero(e.session_id).map(|s| ids::uuid_string(&s));
        let parent_span = nonzero(e.parent_span);
        let parent_text = parent_span.map(|p| ids::span_string(&p));
        let start = Start {
            h: &e.ev,
            ppid: e.ppid.get(),
            start_flags: e.start_flags.get(),
            parent_image: parent_span.filter(|p| self.procs.get(p).is_some()),
            shim_session: session.as_deref().map(str::as_bytes),
            shim_parent_span: parent_text.as_deref().map(str::as_bytes),
            exe,
            cwd,
        };
        self.start_line(ring, pos, &start, argv, out)
    }

    /// The model's update and the line of a `process_start`, whatever its layout.
    fn start_line(
        &mut self,
        ring: &Ring,
        pos: u64,
        s: &Start<'_>,
        argv: Vars<'_>,
        out: &mut impl Write,
    ) -> io::Result<()> {
        let h = s.h;
        let argv: Vec<&[u8]> = argv.collect();
        self.unstarted.remove(&h.pid.get());
        self.procs.start(
            h.span,
            h.pid.get(),
            s.parent_image,
            s.shim_session,
            s.shim_parent_span,
            s.cwd,
        );
        self.stats.processes += u64::from(self.writes(pos));
        self.common(ring, h, "process_start", pos);
        let forked = s.start_flags & start_flags::FORKED != 0;
        let redact = &mut self.redaction;
        render::process_start(&mut self.line, s.ppid, s.exe, &argv, s.cwd, forked, redact);
        if s.start_flags & start_flags::SUPERVISED != 0 {
            self.line.bool("supervised", true);
        }
        self.emit(out)
    }

    fn process_exit(
        &mut self,
        ring: &Ring,
        pos: u64,
        e: &ProcessExit,
        out: &mut impl Write,
    ) -> io::Result<()> {
        // A parent's report of a killed child names the child by pid only.
        let mut h = e.ev;
        if h.span == [0; 16] {
            match self.procs.span_of_pid(h.pid.get()) {
                Some(s) => h.span = s,
                None => return Ok(()),
            }
        }
        // A second report of one end: the supervisor and a waiting parent both saw it.
        if self.procs.has_ended(&h.span) {
            return Ok(());
        }
        self.common(ring, &h, "process_exit", pos);
        render::process_exit(&mut self.line, e);
        self.emit(out)?;
        self.procs.ended(&h.span);
        Ok(())
    }

    fn file_op(
        &mut self,
        ring: &Ring,
        pos: u64,
        e: &FileOp,
        path: &[u8],
        path2: Option<&[u8]>,
        out: &mut impl Write,
    ) -> io::Result<()> {
        let h = &e.ev;
        let span = h.span;
        let op = e.op.get();
        let (d1, d2) = (e.dirfd.get(), e.dirfd2.get());
        // A path the kernel refused (EFAULT) is recorded empty: make nothing absolute of it.
        let unread = h.flags.get() & ev_flags::PATH_UNREADABLE != 0;
        let abs = if op == file_op::SYMLINK || op == file_op::FCHDIR || unread {
            None
        } else {
            self.procs.resolve(span, d1, path)
        };
        let abs2 = path2
            .filter(|_| !unread)
            .and_then(|p| self.procs.resolve(span, d2, p));
        if e.result.get() >= 0 {
            match op {
                file_op::CHDIR => self.procs.chdir(span, Chdir::To(abs.as_deref())),
                file_op::FCHDIR => self.procs.chdir(span, Chdir::Fd(d1)),
                _ => {}
            }
        }
        let cwd_after = if op == file_op::FCHDIR {
            self.procs.cwd(span).map(<[u8]>::to_vec)
        } else {
            None
        };
        self.common(ring, h, render::file_op_type(op), pos);
        let paths = render::FileOpPaths {
            path,
            path2,
            abs: abs.as_deref(),
            abs2: abs2.as_deref(),
            cwd_after: cwd_after.as_deref(),
        };
        render::file_op(&mut self.line, e, &paths);
        self.emit(out)
    }

    fn file_meta(
        &mut self,
        ring: &Ring,
        pos: u64,
        e: &FileMeta,
        path: &[u8],
        name: &[u8],
        out: &mut impl Write,
    ) -> io::Result<()> {
        let h = &e.ev;
        let fd = e.fd.get();
        // A call on a descriptor: the path it was opened with, if known. A path: resolved
        // against its directory descriptor; an empty one names that descriptor's file only
        // with AT_EMPTY_PATH (else the call fails). Nothing is made of an unread path.
        let abs = if h.flags.get() & ev_flags::PATH_UNREADABLE != 0 {
            None
        } else if e.meta_flags.get() & meta_flags::FD != 0 {
            (fd >= 0)
                .then(|| self.procs.resolve(h.span, fd, b""))
                .flatten()
        } else if path.is_empty() && e.flags.get() & libc::AT_EMPTY_PATH == 0 {
            None
        } else {
            self.procs.resolve(h.span, fd, path)
        };
        self.common(ring, h, render::file_meta_type(e.op.get()), pos);
        render::file_meta(&mut self.line, e, path, abs.as_deref(), name);
        self.emit(out)
    }

    fn exec_line(
        &mut self,
        ring: &Ring,
        p: &PendingExec,
        errno: Option<i32>,
        out: &mut impl Write,
    ) -> io::Result<()> {
        let path = p.vars().next().unwrap_or(b"");
        let abs = if path.first() != Some(&b'/') && path.contains(&b'/') {
            self.procs.resolve(p.hdr.span, p.fd, path)
        } else {
            None
        };
        let args: Vec<&[u8]> = p.vars().skip(1).collect();
        self.common(ring, &p.hdr, "exec", p.pos);
        let call = render::ExecCall {
            op: p.op,
            path,
            abs_path: abs.as_deref(),
            args: &args,
            fd: p.fd,
            errno,
            untraced: p.untraced,
        };
        render::exec(&mut self.line, &call, &mut self.redaction);
        self.emit(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use format::records::ProcessExit;
    use format::{Reader, ReaderOptions, Writer};

    /// What a new record kind relies on (`RING.md`, "Adding a record kind"): a drain that
    /// does not know a kind reports each such record as one `lost` line (`corrupt`, with its
    /// kind) and decodes the records after it.
    #[test]
    fn unknown_kinds_are_reported_lost_and_the_rest_decodes() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Ring::create(&dir.path().join("r"), &Default::default()).unwrap();
        let w = Writer::attach(&ring).unwrap();
        let unknown = 0x7ffe; // below the user kinds, never assigned
        assert!(format::records::Kind::from_u16(unknown).is_none());
        let exit = ProcessExit {
            ev: EventHeader {
                span: [7; 16],
                pid: 42.into(),
                tid: 42.into(),
                ..Default::default()
            },
            how: format::records::exit_how::EXIT.into(),
            ..Default::default()
        };
        let unknown_pos = w
            .write_bytes(unknown, zerocopy::IntoBytes::as_bytes(&exit))
            .unwrap();
        w.write_event(&exit, std::iter::empty()).unwrap();
        let mut dec = Decoder::new(&ring, Options { redact: true });
        let mut reader = Reader::new(&ring, ReaderOptions::default());
        let mut out = Vec::new();
        for _ in 0..2 {
            dec.item(&ring, &reader.poll(), &mut out).unwrap();
        }
        let lines: Vec<serde_json::Value> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["event_type"], "lost");
        assert_eq!(lines[0]["reason"], "corrupt");
        assert_eq!(lines[0]["kind"], unknown);
        assert_eq!(lines[0]["pos"], unknown_pos);
        assert_eq!(lines[0]["count"], 1);
        assert_eq!(lines[1]["event_type"], "process_exit");
        assert_eq!((dec.stats.lost, dec.stats.events), (1, 1));
    }
}
