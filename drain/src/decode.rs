//! Records to `trace.jsonl` lines. The schema is documented in `drain/SCHEMA.md`.
//!
//! The decoder keeps, per process image (span): its ids (`session_id`, `parent_span` as the
//! image saw `SHIM_SESSION_ID`/`SHIM_PARENT_SPAN`, `parent_image`) and directories (for
//! `abs_path`). An `exec` line waits for the outcome of its call: the `exec_failed`
//! record that follows a failed call (merged as `errno`), or any later record of the same pid
//! (success), or [`Decoder::flush_pending`] when the stream goes quiet or ends.

use std::collections::HashMap;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use format::records::{
    ev_flags, exit_how, file_op, net_op, open_op, proc_op, start_flags, untraced, AnyEvent,
    DnsAddr, EventHeader,
};
use format::{ids, Item, Loss, Ring};
use zerocopy::FromBytes;

use crate::json::Line;
use crate::paths::{normalize, Dirs};
use crate::resume::{self, Written};
use crate::{redact, timefmt};

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

#[derive(Default)]
struct SpanState {
    /// `"session_id":…,"span_id":…,"parent_span":…,"parent_image":…`, rendered once per span.
    ids: Ids,
    dirs: Dirs,
}

/// The id members of a span's lines.
#[derive(Default)]
struct Ids {
    /// Pre-rendered members (empty when `raw` is set).
    text: String,
    /// The values, when a `SHIM_*` value is not UTF-8: then each line writes them itself, so
    /// that its `escaped` array names the field (rare).
    raw: Option<Box<IdValues>>,
}

/// The values behind [`Ids`].
struct IdValues {
    /// `SHIM_SESSION_ID` as the image saw it, else the ring's session id as text; `None`: null.
    session: Option<Vec<u8>>,
    span: [u8; 16],
    /// `SHIM_PARENT_SPAN` as the image saw it.
    parent_span: Option<Vec<u8>>,
    /// The image that started this one.
    parent_image: Option<[u8; 16]>,
}

impl IdValues {
    fn write(&self, l: &mut Line) {
        match &self.session {
            Some(s) => l.bytes("session_id", s),
            None => l.null("session_id"),
        }
        l.str("span_id", &ids::span_string(&self.span));
        match &self.parent_span {
            Some(p) => l.bytes("parent_span", p),
            None => l.null("parent_span"),
        }
        match &self.parent_image {
            Some(p) => l.str("parent_image", &ids::span_string(p)),
            None => l.null("parent_image"),
        }
    }
}

impl Ids {
    fn write(&self, l: &mut Line) {
        match &self.raw {
            None => l.raw(&self.text),
            Some(v) => v.write(l),
        }
    }
}

/// Hashes a span id by its last 8 bytes, which are random in a UUIDv7 (the first 6 are the
/// time, shared by spans created in the same millisecond).
#[derive(Default, Clone, Copy)]
struct SpanHasher(u64);

impl std::hash::Hasher for SpanHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 =
                (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
}

type SpanMap = HashMap<[u8; 16], SpanState, std::hash::BuildHasherDefault<SpanHasher>>;

/// The ids of a span's lines: `session_id` is the `SHIM_SESSION_ID` the image saw, verbatim,
/// else the ring's session id; `parent_span` the `SHIM_PARENT_SPAN` it saw, verbatim, else
/// null; `parent_image` the span of the image that started it, else null.
fn ids_fragment(
    shim_session: Option<&[u8]>,
    ring_session: [u8; 16],
    span: &[u8; 16],
    shim_parent_span: Option<&[u8]>,
    parent_image: Option<[u8; 16]>,
) -> Ids {
    let session = shim_session.map(<[u8]>::to_vec).or_else(|| {
        (ring_session != [0; 16]).then(|| ids::uuid_string(&ring_session).into_bytes())
    });
    let v = IdValues {
        session,
        span: *span,
        parent_span: shim_parent_span.map(<[u8]>::to_vec),
        parent_image,
    };
    let not_utf8 = |b: &Option<Vec<u8>>| b.as_deref().is_some_and(|b| crate::json::text(b).1);
    if not_utf8(&v.session) || not_utf8(&v.parent_span) {
        return Ids {
            text: String::new(),
            raw: Some(Box::new(v)),
        };
    }
    let mut l = Line::default();
    l.begin();
    v.write(&mut l);
    let line = l.end();
    // `{members}\n` without the braces: no `escaped` array, as every value is UTF-8.
    Ids {
        text: line[1..line.len() - 2].to_string(),
        raw: None,
    }
}

struct PendingExec {
    pos: u64,
    hdr: EventHeader,
    op: u16,
    untraced: u16,
    fd: i32,
    vars: Vec<Vec<u8>>,
    truncated: bool,
    since: Instant,
}

/// Turns records into lines.
pub struct Decoder {
    opts: Options,
    ring_session: [u8; 16],
    spans: SpanMap,
    /// The latest span started in each pid, for ends reported by a parent (killed children).
    pid_spans: HashMap<u32, [u8; 16]>,
    ts: timefmt::TsCache,
    pending: Vec<PendingExec>,
    line: Line,
    cur_pos: u64,
    /// Lines of records below this position update the state but are not written (a resumed
    /// follow re-reads what it already wrote, to learn spans and directories again).
    mute_below: u64,
    /// Lines the output already holds (a resumed follow).
    written: Written,
    /// `"ring_id":"…"`, on every line.
    ring_id: String,
    /// Counts so far.
    pub stats: Stats,
}

const AT_FDCWD: i32 = libc::AT_FDCWD;

fn errno_of(r: i64, e: i32) -> Option<i32> {
    (r < 0).then_some(e)
}

impl Decoder {
    /// A decoder for records of `ring`.
    pub fn new(ring: &Ring, opts: Options) -> Decoder {
        Decoder {
            opts,
            ring_session: ring.session_id(),
            spans: SpanMap::default(),
            pid_spans: HashMap::new(),
            ts: timefmt::TsCache::default(),
            pending: Vec::new(),
            line: Line::default(),
            cur_pos: 0,
            mute_below: 0,
            written: Written::default(),
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

    /// Whether the line of the record at `pos` will be written (not muted by a resume).
    pub fn writes(&self, pos: u64) -> bool {
        pos >= self.mute_below
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

    fn common(&mut self, ring: &Ring, h: &EventHeader, event_type: &str, pos: u64) {
        let span = h.span;
        let ring_session = self.ring_session;
        // A span whose process_start was not seen (overwritten, or written before a resumed
        // drain's start) gets an entry with an unknown parent.
        let st = self.spans.entry(span).or_insert_with(|| SpanState {
            ids: ids_fragment(None, ring_session, &span, None, None),
            ..Default::default()
        });
        let unix = ring.to_unix_ns(h.ts_ns.get());
        self.cur_pos = pos;
        let l = &mut self.line;
        l.begin();
        l.key_only("ts");
        self.ts.push(l.buf_mut(), unix);
        l.end_str();
        l.int("ts_unix_ns", unix);
        l.str("event_type", event_type);
        st.ids.write(l);
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
        out.write_all(self.line.end().as_bytes())
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
        line.int("count", l.records);
        line.str("reason", l.reason.name());
        line.bool("exact", l.exact);
        line.int("bytes", l.bytes);
        if let Some(k) = l.kind {
            line.int("kind", k);
        }
        out.write_all(self.line.end().as_bytes())
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
        let ev = match AnyEvent::decode(kind, payload) {
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
        let span = h.span;
        match ev {
            AnyEvent::ProcessStart(e, vars) => {
                let sv = e.split_vars(vars);
                let (exe, cwd) = (sv.exe, sv.cwd);
                let argv: Vec<&[u8]> = sv.argv.collect();
                let parent = (e.parent_image != [0; 16]).then_some(e.parent_image);
                let inherited = parent
                    .and_then(|p| self.spans.get(&p))
                    .map(|s| s.dirs.fds.clone())
                    .unwrap_or_default();
                self.spans.insert(
                    span,
                    SpanState {
                        ids: ids_fragment(
                            sv.shim_session_id,
                            self.ring_session,
                            &span,
                            sv.shim_parent_span,
                            parent,
                        ),
                        dirs: Dirs {
                            cwd: (!cwd.is_empty()).then(|| cwd.to_vec()),
                            fds: inherited,
                        },
                    },
                );
                self.stats.processes += u64::from(self.writes(pos));
                self.pid_spans.insert(h.pid.get(), span);
                self.common(ring, h, "process_start", pos);
                let flags = e.start_flags.get();
                let l = &mut self.line;
                l.int("ppid", e.ppid.get());
                l.bytes("exe", exe);
                self.argv("argv", &argv);
                let l = &mut self.line;
                l.bytes("cwd", cwd);
                l.str(
                    "via",
                    if flags & start_flags::FORKED != 0 {
                        "fork"
                    } else {
                        "exec"
                    },
                );
                self.emit(out)
            }
            AnyEvent::ProcessExit(e) => {
                // A parent's report of a killed child names the child by pid only.
                let mut hh = *h;
                if hh.span == [0; 16] {
                    match self.pid_spans.get(&hh.pid.get()) {
                        Some(s) => hh.span = *s,
                        None => return Ok(()),
                    }
                }
                let (h, span) = (&hh, hh.span);
                self.common(ring, h, "process_exit", pos);
                let how = e.how.get();
                let l = &mut self.line;
                l.str(
                    "how",
                    match how {
                        exit_how::EXIT => "exit",
                        exit_how::UNDERSCORE_EXIT => "_exit",
                        exit_how::UNDERSCORE_EXIT_C99 => "_Exit",
                        exit_how::RETURN => "return",
                        exit_how::SIGNALED => "signal",
                        _ => "unknown",
                    },
                );
                if how == exit_how::SIGNALED {
                    l.int("signal", e.status.get());
                } else {
                    l.int("exit_code", e.status.get() & 0xff);
                }
                self.emit(out)?;
                self.spans.remove(&span);
                Ok(())
            }
            AnyEvent::Exec(e, vars) => {
                self.pending.push(PendingExec {
                    pos,
                    hdr: *h,
                    op: e.op.get(),
                    untraced: e.untraced.get(),
                    fd: e.fd.get(),
                    vars: vars.map(|v| v.to_vec()).collect(),
                    truncated: h.flags.get() & ev_flags::TRUNCATED != 0,
                    since: Instant::now(),
                });
                Ok(())
            }
            AnyEvent::ExecFailed(_) => Ok(()),
            AnyEvent::Spawn(e, vars) => {
                let vars: Vec<&[u8]> = vars.collect();
                self.common(ring, h, "spawn", pos);
                let l = &mut self.line;
                l.str("op", proc_op::name(e.op.get()).unwrap_or("unknown"));
                l.bytes("path", vars.first().copied().unwrap_or(b""));
                self.argv("argv", &vars[1.min(vars.len())..]);
                let l = &mut self.line;
                if e.child_pid.get() > 0 {
                    l.int("child_pid", e.child_pid.get());
                }
                if e.errno.get() != 0 {
                    l.int("errno", e.errno.get());
                }
                if e.op.get() == proc_op::SYSTEM && e.child_pid.get() > 0 {
                    wait_status(l, e.status.get());
                }
                untraced_fields(l, e.untraced.get());
                self.emit(out)
            }
            AnyEvent::Fork(e) => {
                self.common(ring, h, "fork", pos);
                let l = &mut self.line;
                l.str("op", proc_op::name(e.op.get()).unwrap_or("unknown"));
                if e.child_pid.get() >= 0 {
                    l.int("child_pid", e.child_pid.get());
                } else {
                    l.int("errno", e.errno.get());
                }
                self.emit(out)
            }
            AnyEvent::FileOpen(e, mut vars) => {
                let path = vars.next().unwrap_or(b"");
                let dirfd = e.dirfd.get();
                let st = self.spans.get(&span).filter(|_| !path.is_empty());
                let abs = st.and_then(|s| s.dirs.resolve(dirfd, path));
                let fd = e.fd.get();
                if fd >= 0 {
                    if let Some(s) = self.spans.get_mut(&span) {
                        s.dirs.opened(fd, abs.as_deref());
                    }
                }
                self.common(ring, h, "file_open", pos);
                let flags = e.flags.get();
                let l = &mut self.line;
                l.str("op", open_op::name(e.op.get()).unwrap_or("unknown"));
                l.bytes("path", path);
                if let Some(a) = &abs {
                    l.bytes("abs_path", a);
                }
                if dirfd != AT_FDCWD {
                    l.int("dirfd", dirfd);
                }
                l.int("flags", flags);
                l.str(
                    "access",
                    match flags & libc::O_ACCMODE {
                        libc::O_RDONLY => "read",
                        libc::O_WRONLY => "write",
                        _ => "read_write",
                    },
                );
                if e.has_mode.get() != 0 {
                    l.int("mode", e.mode.get());
                }
                if fd >= 0 {
                    l.int("fd", fd);
                } else {
                    l.int("errno", e.errno.get());
                }
                self.emit(out)
            }
            AnyEvent::FileOp(e, mut vars) => {
                let path = vars.next().unwrap_or(b"");
                let path2 = vars.next();
                let op = e.op.get();
                let (d1, d2) = (e.dirfd.get(), e.dirfd2.get());
                let r = e.result.get();
                let unread = h.flags.get() & ev_flags::PATH_UNREADABLE != 0;
                let st = self.spans.get(&span).filter(|_| !unread);
                let abs = if op == file_op::SYMLINK || op == file_op::FCHDIR {
                    None
                } else {
                    st.and_then(|s| s.dirs.resolve(d1, path))
                };
                let abs2 = path2.and_then(|p| st.and_then(|s| s.dirs.resolve(d2, p)));
                if r >= 0 {
                    if let Some(s) = self.spans.get_mut(&span) {
                        match op {
                            file_op::CHDIR => s.dirs.cwd = abs.clone(),
                            file_op::FCHDIR => s.dirs.cwd = s.dirs.fds.get(&d1).cloned(),
                            _ => {}
                        }
                    }
                }
                let event_type = match op {
                    file_op::RENAME => "file_rename",
                    file_op::UNLINK => "file_unlink",
                    file_op::RMDIR => "file_rmdir",
                    file_op::MKDIR => "file_mkdir",
                    file_op::LINK => "file_link",
                    file_op::SYMLINK => "file_symlink",
                    file_op::TRUNCATE => "file_truncate",
                    file_op::CHDIR | file_op::FCHDIR => "chdir",
                    file_op::SCANDIR => "file_open",
                    _ => "file_op",
                };
                self.common(ring, h, event_type, pos);
                let l = &mut self.line;
                l.str("op", file_op::name(op).unwrap_or("unknown"));
                if op == file_op::SCANDIR {
                    l.str("access", "read");
                }
                match op {
                    file_op::SYMLINK => {
                        l.bytes("target", path);
                        l.bytes("path", path2.unwrap_or(b""));
                        if let Some(a) = &abs2 {
                            l.bytes("abs_path", a);
                        }
                    }
                    file_op::FCHDIR => {
                        l.int("fd", d1);
                        if let Some(c) = self.spans.get(&span).and_then(|s| s.dirs.cwd.clone()) {
                            self.line.bytes("abs_path", &c);
                        }
                    }
                    _ => {
                        l.bytes("path", path);
                        if let Some(a) = &abs {
                            l.bytes("abs_path", a);
                        }
                        if let Some(p2) = path2 {
                            l.bytes("new_path", p2);
                            if let Some(a) = &abs2 {
                                l.bytes("abs_new_path", a);
                            }
                        }
                    }
                }
                let l = &mut self.line;
                if op != file_op::FCHDIR {
                    if d1 != AT_FDCWD {
                        l.int("dirfd", d1);
                    }
                    if path2.is_some() && d2 != AT_FDCWD {
                        l.int("dirfd2", d2);
                    }
                }
                if e.flags.get() != 0 {
                    l.int("flags", e.flags.get());
                }
                match op {
                    file_op::MKDIR => l.int("mode", e.mode.get()),
                    file_op::TRUNCATE => l.int("length_low32", e.mode.get()),
                    _ => {}
                }
                l.int("result", r);
                if let Some(er) = errno_of(r as i64, e.errno.get()) {
                    l.int("errno", er);
                }
                self.emit(out)
            }
            AnyEvent::Net(e, mut vars) => {
                let op = e.op.get();
                let event_type = match op {
                    net_op::CONNECT => "net_connect",
                    net_op::BIND => "net_bind",
                    net_op::ACCEPT | net_op::ACCEPT4 => "net_accept",
                    _ => "net_send",
                };
                self.common(ring, h, event_type, pos);
                let l = &mut self.line;
                l.str("op", net_op::name(op).unwrap_or("unknown"));
                l.int("fd", e.fd.get());
                addr_fields(l, e.family.get(), &e.addr, e.port.get(), vars.next());
                l.int("result", e.result.get());
                if e.result.get() < 0 {
                    l.int("errno", e.errno.get());
                }
                self.emit(out)
            }
            AnyEvent::Dns(e, mut vars) => {
                let name = vars.next().unwrap_or(b"");
                let service = vars.next().unwrap_or(b"");
                let raw = vars.next().unwrap_or(b"");
                self.common(ring, h, "dns_lookup", pos);
                let l = &mut self.line;
                l.bytes("name", name);
                if !service.is_empty() {
                    l.bytes("service", service);
                }
                l.int("result", e.result.get());
                if e.errno.get() != 0 {
                    l.int("errno", e.errno.get());
                }
                let addrs: Vec<String> = raw
                    .chunks_exact(size_of::<DnsAddr>())
                    .filter_map(|c| DnsAddr::read_from_bytes(c).ok())
                    .map(|a| addr_text(a.family.get(), &a.addr))
                    .collect();
                l.str_array("addrs", &addrs);
                l.int("naddrs", e.naddrs.get());
                self.emit(out)
            }
        }
    }

    fn argv(&mut self, key: &str, args: &[&[u8]]) {
        if self.opts.redact {
            let mut owned: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
            if redact::argv(&mut owned) {
                self.line
                    .bytes_array(key, owned.iter().map(|v| v.as_slice()));
                self.line.bool("redacted", true);
                return;
            }
        }
        self.line.bytes_array(key, args.iter().copied());
    }

    fn exec_line(
        &mut self,
        ring: &Ring,
        p: &PendingExec,
        errno: Option<i32>,
        out: &mut impl Write,
    ) -> io::Result<()> {
        self.common(ring, &p.hdr, "exec", p.pos);
        let l = &mut self.line;
        l.str("op", proc_op::name(p.op).unwrap_or("unknown"));
        let path = p.vars.first().map(|v| v.as_slice()).unwrap_or(b"");
        l.bytes("path", path);
        if path.first() != Some(&b'/') && path.contains(&b'/') {
            if let Some(a) = self
                .spans
                .get(&p.hdr.span)
                .and_then(|s| s.dirs.resolve(p.fd, path))
            {
                self.line.bytes("abs_path", &normalize(&a));
            }
        }
        let args: Vec<&[u8]> = p.vars.iter().skip(1).map(|v| v.as_slice()).collect();
        self.argv("argv", &args);
        let l = &mut self.line;
        if p.truncated {
            l.bool("truncated", true);
        }
        if matches!(p.op, proc_op::FEXECVE | proc_op::EXECVEAT) && p.fd != AT_FDCWD {
            l.int("fd", p.fd);
        }
        if let Some(e) = errno {
            l.int("errno", e);
        }
        untraced_fields(l, p.untraced);
        self.emit(out)
    }
}

fn untraced_fields(l: &mut Line, bits: u16) {
    if bits != 0 {
        l.bool("untraced", true);
        l.str("untraced_reason", untraced::name(bits));
    }
}

fn wait_status(l: &mut Line, status: i32) {
    if status == -1 {
        return;
    }
    if libc::WIFEXITED(status) {
        l.int("exit_code", libc::WEXITSTATUS(status));
    } else if libc::WIFSIGNALED(status) {
        l.int("signal", libc::WTERMSIG(status));
    }
}

fn addr_text(family: u16, a: &[u8; 16]) -> String {
    match family as i32 {
        libc::AF_INET => std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string(),
        libc::AF_INET6 => std::net::Ipv6Addr::from(*a).to_string(),
        _ => String::new(),
    }
}

fn addr_fields(l: &mut Line, family: u16, a: &[u8; 16], port: u16, path: Option<&[u8]>) {
    match family as i32 {
        libc::AF_INET | libc::AF_INET6 => {
            l.str(
                "family",
                if family as i32 == libc::AF_INET {
                    "inet"
                } else {
                    "inet6"
                },
            );
            l.str("addr", &addr_text(family, a));
            l.int("port", port);
        }
        libc::AF_UNIX => {
            l.str("family", "unix");
            let p = path.unwrap_or(b"");
            if p.first() == Some(&0) {
                // Abstract socket: shown with a leading '@', as ss(8) does.
                let mut t = b"@".to_vec();
                t.extend_from_slice(&p[1..]);
                l.bytes("addr", &t);
            } else {
                l.bytes("addr", p);
            }
        }
        0 => l.null("family"),
        f => l.int("family", f),
    }
}
