//! How each event's members are written (the schema is `drain/SCHEMA.md`): pure functions from
//! a decoded record, and what the process model resolved for it, to members of a [`Line`].
//! Nothing here keeps state; the decoder calls these in the order the members appear.

use format::records::{
    ev_flags, exit_how, file_op, meta_call, meta_flags, meta_op, net_op, object_flags, open_op,
    proc_op, untraced, utime_nsec, DnsAddr, FileMeta, FileOp, FileOpen, Fork, Net, ObjectLoad,
    ProcessExit, Spawn,
};
use format::Loss;
use zerocopy::FromBytes;

use crate::json::Line;
use crate::redact;

const AT_FDCWD: i32 = libc::AT_FDCWD;

/// The id members of an image's lines (`session_id`, `span_id`, `parent_span`,
/// `parent_image`), rendered once per image.
#[derive(Default)]
pub(crate) struct Ids {
    /// Pre-rendered members, UTF-8 (empty when `raw` is set).
    text: Vec<u8>,
    /// The values, when a `SHIM_*` value is not UTF-8: then each line writes them itself, so
    /// that its `escaped` array names the field (rare).
    raw: Option<Box<IdValues>>,
}

/// The values behind [`Ids`].
struct IdValues {
    session: Option<Vec<u8>>,
    span: [u8; 16],
    parent_span: Option<Vec<u8>>,
    parent_image: Option<[u8; 16]>,
}

/// Write the id members.
fn write_ids(
    l: &mut Line,
    session: Option<&[u8]>,
    span: &[u8; 16],
    parent_span: Option<&[u8]>,
    parent_image: Option<&[u8; 16]>,
) {
    match session {
        Some(s) => l.bytes("session_id", s),
        None => l.null("session_id"),
    }
    l.span("span_id", span);
    match parent_span {
        Some(p) => l.bytes("parent_span", p),
        None => l.null("parent_span"),
    }
    match parent_image {
        Some(p) => l.span("parent_image", p),
        None => l.null("parent_image"),
    }
}

impl Ids {
    /// `session_id` is `session` verbatim (null when `None`), `parent_span` likewise,
    /// `parent_image` the span of the image that started this one.
    pub(crate) fn new(
        session: Option<&[u8]>,
        span: &[u8; 16],
        parent_span: Option<&[u8]>,
        parent_image: Option<[u8; 16]>,
    ) -> Ids {
        let not_utf8 = |b: Option<&[u8]>| b.is_some_and(|b| std::str::from_utf8(b).is_err());
        if not_utf8(session) || not_utf8(parent_span) {
            let v = IdValues {
                session: session.map(<[u8]>::to_vec),
                span: *span,
                parent_span: parent_span.map(<[u8]>::to_vec),
                parent_image,
            };
            return Ids {
                text: Vec::new(),
                raw: Some(Box::new(v)),
            };
        }
        let mut l = Line::with_capacity(256);
        l.begin();
        write_ids(&mut l, session, span, parent_span, parent_image.as_ref());
        // No `escaped` array, as every value is UTF-8.
        Ids {
            text: l.into_members(),
            raw: None,
        }
    }

    pub(crate) fn write(&self, l: &mut Line) {
        match &self.raw {
            None => l.raw(&self.text),
            Some(v) => write_ids(
                l,
                v.session.as_deref(),
                &v.span,
                v.parent_span.as_deref(),
                v.parent_image.as_ref(),
            ),
        }
    }
}

/// Redaction of argv, with the last argv's outcome remembered: an `exec` line and the
/// `process_start` line of the image it started carry the same argv, one after the other.
pub struct Redaction {
    on: bool,
    /// The last argv redacted, its items end to end, and where each ends.
    last: Vec<u8>,
    last_ends: Vec<usize>,
    /// What it became (`None`: nothing replaced).
    last_out: Option<Vec<Vec<u8>>>,
}

impl Redaction {
    /// Redaction on (`true`) or off.
    pub fn new(on: bool) -> Redaction {
        Redaction {
            on,
            last: Vec::new(),
            last_ends: Vec::new(),
            last_out: None,
        }
    }

    /// `args` redacted, if anything in them is replaced (see [`redact::redacted`]).
    fn redacted(&mut self, args: &[&[u8]]) -> Option<&[Vec<u8>]> {
        if !self.on {
            return None;
        }
        let same = args.len() == self.last_ends.len()
            && args
                .iter()
                .zip(&self.last_ends)
                .enumerate()
                .all(|(i, (a, &end))| {
                    let start = if i == 0 { 0 } else { self.last_ends[i - 1] };
                    self.last.get(start..end) == Some(a)
                });
        if !same {
            self.last.clear();
            self.last_ends.clear();
            for a in args {
                self.last.extend_from_slice(a);
                self.last_ends.push(self.last.len());
            }
            self.last_out = redact::redacted(args);
        }
        self.last_out.as_deref()
    }
}

/// `argv` (redacted when asked; then `redacted: true` follows).
pub fn argv(l: &mut Line, key: &str, args: &[&[u8]], redact: &mut Redaction) {
    if let Some(owned) = redact.redacted(args) {
        l.bytes_array(key, owned.iter().map(|v| v.as_slice()));
        l.bool("redacted", true);
        return;
    }
    l.bytes_array(key, args.iter().copied());
}

/// `process_start` members after the common ones.
pub fn process_start(
    l: &mut Line,
    ppid: u32,
    exe: &[u8],
    args: &[&[u8]],
    cwd: &[u8],
    forked: bool,
    redact: &mut Redaction,
) {
    l.int("ppid", ppid);
    l.bytes("exe", exe);
    argv(l, "argv", args, redact);
    l.bytes("cwd", cwd);
    l.name("via", if forked { "fork" } else { "exec" });
}

/// `process_exit` members.
pub fn process_exit(l: &mut Line, e: &ProcessExit) {
    let how = e.how.get();
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
}

/// An `exec` call, written once its outcome is known.
pub struct ExecCall<'a> {
    /// [`proc_op`].
    pub op: u16,
    /// Path as given.
    pub path: &'a [u8],
    /// The path made absolute (only for relative paths with a `/`).
    pub abs_path: Option<&'a [u8]>,
    /// Arguments.
    pub args: &'a [&'a [u8]],
    /// The descriptor of `fexecve`/`execveat`.
    pub fd: i32,
    /// `errno` of a failed call.
    pub errno: Option<i32>,
    /// [`untraced`] bits.
    pub untraced: u16,
}

/// `exec` members.
pub fn exec(l: &mut Line, c: &ExecCall<'_>, redact: &mut Redaction) {
    l.name("op", proc_op::name(c.op).unwrap_or("unknown"));
    l.bytes("path", c.path);
    if let Some(a) = c.abs_path {
        l.bytes("abs_path", a);
    }
    argv(l, "argv", c.args, redact);
    if matches!(c.op, proc_op::FEXECVE | proc_op::EXECVEAT) && c.fd != AT_FDCWD {
        l.int("fd", c.fd);
    }
    if let Some(e) = c.errno {
        l.int("errno", e);
    }
    untraced_fields(l, c.untraced);
}

/// `spawn` members.
pub fn spawn(l: &mut Line, e: &Spawn, path: &[u8], args: &[&[u8]], redact: &mut Redaction) {
    l.name("op", proc_op::name(e.op.get()).unwrap_or("unknown"));
    l.bytes("path", path);
    argv(l, "argv", args, redact);
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
}

/// `fork` members.
pub fn fork(l: &mut Line, e: &Fork) {
    l.name("op", proc_op::name(e.op.get()).unwrap_or("unknown"));
    if e.child_pid.get() >= 0 {
        l.int("child_pid", e.child_pid.get());
    } else {
        l.int("errno", e.errno.get());
    }
}

/// `file_open` members.
pub fn file_open(l: &mut Line, e: &FileOpen, path: &[u8], abs: Option<&[u8]>) {
    let flags = e.flags.get();
    let dirfd = e.dirfd.get();
    l.name("op", open_op::name(e.op.get()).unwrap_or("unknown"));
    l.bytes("path", path);
    match abs {
        // An absolute path already normal: the same text.
        Some(a) if a == path => l.repeat_bytes("abs_path", a),
        Some(a) => l.bytes("abs_path", a),
        None => {}
    }
    if dirfd != AT_FDCWD {
        l.int("dirfd", dirfd);
    }
    l.int("flags", flags);
    l.name(
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
    if e.fd.get() >= 0 {
        l.int("fd", e.fd.get());
    } else {
        l.int("errno", e.errno.get());
    }
}

/// `object_load` members: the loader's name of the object, made absolute where the working
/// directory is known, the load bias, and whether it was loaded before the program ran.
pub fn object_load(l: &mut Line, e: &ObjectLoad, path: &[u8], abs: Option<&[u8]>) {
    l.bytes("path", path);
    if let Some(a) = abs {
        l.bytes("abs_path", a);
    }
    l.int("base", e.base.get());
    l.bool("at_start", e.flags.get() & object_flags::AT_START != 0);
}

/// The event type of a [`FileOp`] record.
pub fn file_op_type(op: u16) -> &'static str {
    match op {
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
    }
}

/// What the process model resolved for a [`FileOp`].
pub struct FileOpPaths<'a> {
    /// The first path as given.
    pub path: &'a [u8],
    /// The second path (rename, link, symlink's link name).
    pub path2: Option<&'a [u8]>,
    /// The first path made absolute.
    pub abs: Option<&'a [u8]>,
    /// The second path made absolute.
    pub abs2: Option<&'a [u8]>,
    /// `fchdir`: the working directory after the call.
    pub cwd_after: Option<&'a [u8]>,
}

/// Members of `file_rename`, `file_unlink`, `chdir`, … (a [`FileOp`] record).
pub fn file_op(l: &mut Line, e: &FileOp, p: &FileOpPaths<'_>) {
    let op = e.op.get();
    let (d1, d2) = (e.dirfd.get(), e.dirfd2.get());
    l.name("op", file_op::name(op).unwrap_or("unknown"));
    if op == file_op::SCANDIR {
        l.str("access", "read");
    }
    match op {
        file_op::SYMLINK => {
            l.bytes("target", p.path);
            l.bytes("path", p.path2.unwrap_or(b""));
            if let Some(a) = p.abs2 {
                l.bytes("abs_path", a);
            }
        }
        file_op::FCHDIR => {
            l.int("fd", d1);
            if let Some(c) = p.cwd_after {
                l.bytes("abs_path", c);
            }
        }
        _ => {
            l.bytes("path", p.path);
            if let Some(a) = p.abs {
                l.bytes("abs_path", a);
            }
            if let Some(p2) = p.path2 {
                l.bytes("new_path", p2);
                if let Some(a) = p.abs2 {
                    l.bytes("abs_new_path", a);
                }
            }
        }
    }
    if op != file_op::FCHDIR {
        if d1 != AT_FDCWD {
            l.int("dirfd", d1);
        }
        if p.path2.is_some() && d2 != AT_FDCWD {
            l.int("dirfd2", d2);
        }
    }
    if e.flags.get() != 0 {
        l.int("flags", e.flags.get());
    }
    match op {
        file_op::MKDIR => l.int("mode", e.mode.get()),
        // Written by older preloads only (truncation is a FileMeta record now).
        file_op::TRUNCATE => l.int("length_low32", e.mode.get()),
        _ => {}
    }
    let r = e.result.get();
    l.int("result", r);
    if r < 0 {
        l.int("errno", e.errno.get());
    }
}

/// The event type of a [`FileMeta`] record: `file_truncate`, `file_chmod`, `file_chown`,
/// `file_utime`, `file_setxattr`, `file_removexattr` (`file_meta` for an op this build does
/// not know).
pub fn file_meta_type(op: u16) -> &'static str {
    meta_op::event_type(op).unwrap_or("file_meta")
}

/// A `utime` time as written: RFC 3339 UTC with nanoseconds (as `ts`), `now` (`UTIME_NOW`,
/// or a NULL times argument), `omit` (`UTIME_OMIT`: left unchanged) or `invalid` (a
/// nanosecond count out of range: the call failed with `EINVAL`).
///
pub fn utime_text(sec: i64, nsec: i32) -> String {
    match nsec {
        utime_nsec::NOW => "now".into(),
        utime_nsec::OMIT => "omit".into(),
        0..=999_999_999 => crate::timefmt::rfc3339(sec as i128 * 1_000_000_000 + nsec as i128),
        _ => "invalid".into(),
    }
}

/// Members of `file_truncate`, `file_chmod`, `file_chown`, `file_utime`, `file_setxattr` and
/// `file_removexattr` (a [`FileMeta`] record): `path` as given (or, for a call on a
/// descriptor, `fd`), `abs` what the process model resolved it to, `name` the xattr name.
pub fn file_meta(l: &mut Line, e: &FileMeta, path: &[u8], abs: Option<&[u8]>, name: &[u8]) {
    let (op, fd) = (e.op.get(), e.fd.get());
    l.name("op", meta_call::name(e.call.get()).unwrap_or("unknown"));
    if e.meta_flags.get() & meta_flags::FD != 0 {
        l.int("fd", fd);
        if let Some(a) = abs {
            l.bytes("abs_path", a);
        }
    } else {
        l.bytes("path", path);
        if let Some(a) = abs {
            l.bytes("abs_path", a);
        }
        if fd != AT_FDCWD {
            l.int("dirfd", fd);
        }
    }
    if e.flags.get() != 0 {
        l.int("flags", e.flags.get());
    }
    let value = e.value.get();
    match op {
        meta_op::TRUNCATE => l.int("length", value as i64),
        meta_op::CHMOD => l.int("mode", value as u32),
        meta_op::CHOWN => {
            for (k, id) in [("uid", e.uid.get()), ("gid", e.gid.get())] {
                if id != u32::MAX {
                    l.int(k, id);
                }
            }
        }
        meta_op::UTIME if e.ev.flags.get() & ev_flags::TIMES_UNREADABLE == 0 => {
            l.str("atime", &utime_text(e.atime_sec.get(), e.atime_nsec.get()));
            l.str("mtime", &utime_text(e.mtime_sec.get(), e.mtime_nsec.get()));
        }
        meta_op::SETXATTR => {
            l.bytes("name", name);
            l.int("size", value);
        }
        meta_op::REMOVEXATTR => l.bytes("name", name),
        _ => {}
    }
    let r = e.result.get();
    l.int("result", r);
    if r < 0 {
        l.int("errno", e.errno.get());
    }
}

/// The event type of a [`Net`] record.
pub fn net_type(op: u16) -> &'static str {
    match op {
        net_op::CONNECT => "net_connect",
        net_op::BIND => "net_bind",
        net_op::ACCEPT | net_op::ACCEPT4 => "net_accept",
        _ => "net_send",
    }
}

/// `net_*` members; `unix_path` is the socket path of an `AF_UNIX` address.
pub fn net(l: &mut Line, e: &Net, unix_path: Option<&[u8]>) {
    l.name("op", net_op::name(e.op.get()).unwrap_or("unknown"));
    l.int("fd", e.fd.get());
    addr_fields(l, e.family.get(), &e.addr, e.port.get(), unix_path);
    l.int("result", e.result.get());
    if e.result.get() < 0 {
        l.int("errno", e.errno.get());
    }
}

/// The fixed part of a `dns_lookup` record.
pub struct DnsResult {
    /// `getaddrinfo`'s return value.
    pub result: i32,
    /// `errno` when set.
    pub errno: i32,
    /// Addresses found (some may not be in `raw`).
    pub naddrs: u32,
}

/// `dns_lookup` members; `raw` holds the [`DnsAddr`] entries.
pub fn dns(l: &mut Line, r: &DnsResult, name: &[u8], service: &[u8], raw: &[u8]) {
    let (result, errno, naddrs) = (r.result, r.errno, r.naddrs);
    l.bytes("name", name);
    if !service.is_empty() {
        l.bytes("service", service);
    }
    l.int("result", result);
    if errno != 0 {
        l.int("errno", errno);
    }
    let addrs: Vec<String> = raw
        .chunks_exact(size_of::<DnsAddr>())
        .filter_map(|c| DnsAddr::read_from_bytes(c).ok())
        .map(|a| addr_text(a.family.get(), &a.addr))
        .collect();
    l.str_array("addrs", &addrs);
    l.int("naddrs", naddrs);
}

/// `lost` members after `pos` and `ring_id`.
pub fn lost(l: &mut Line, loss: &Loss) {
    l.int("count", loss.records);
    l.str("reason", loss.reason.name());
    l.bool("exact", loss.exact);
    l.int("bytes", loss.bytes);
    if let Some(k) = loss.kind {
        l.int("kind", k);
    }
}

fn untraced_fields(l: &mut Line, bits: u16) {
    if bits & untraced::SUPERVISED != 0 {
        // The preload cannot enter it (static); the supervisor follows it.
        l.bool("supervised", true);
        l.str("supervised_reason", untraced::name(bits));
    } else if bits != 0 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_remembers_only_the_same_argv() {
        let mut r = Redaction::new(true);
        let secret: [&[u8]; 2] = [b"login", b"--password=hunter2"];
        let plain: [&[u8]; 2] = [b"login", b"--passwort=hunter2"];
        // The same bytes end to end as `secret`, cut elsewhere.
        let split: [&[u8]; 3] = [b"login--password", b"=", b"hunter2"];
        let flag: [&[u8]; 3] = [b"login", b"--password", b"hunter2"];
        for _ in 0..2 {
            assert_eq!(r.redacted(&secret).unwrap()[1], b"--password=[REDACTED]");
            assert_eq!(r.redacted(&secret).unwrap()[1], b"--password=[REDACTED]");
            assert_eq!(r.redacted(&plain), None);
            assert_eq!(r.redacted(&split), None);
            assert_eq!(r.redacted(&flag).unwrap()[2], b"[REDACTED]");
            assert_eq!(r.redacted(&[]), None);
        }
        assert_eq!(Redaction::new(false).redacted(&secret), None);
    }

    /// Names written with [`Line::name`] (unescaped) must need no escaping.
    #[test]
    fn table_names_are_plain() {
        let plain = |s: &str| {
            assert!(
                !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{s:?}"
            )
        };
        for op in 0..=u16::MAX {
            for n in [
                open_op::name(op),
                proc_op::name(op),
                file_op::name(op),
                meta_call::name(op),
                net_op::name(op),
                meta_op::event_type(op),
            ]
            .into_iter()
            .flatten()
            {
                plain(n);
            }
            plain(file_op_type(op));
            plain(file_meta_type(op));
            plain(net_type(op));
        }
    }

    #[test]
    fn utime_times_are_dates_or_markers() {
        assert_eq!(
            utime_text(1_000_000_000, 5),
            "2001-09-09T01:46:40.000000005Z"
        );
        assert_eq!(utime_text(-1, 0), "1969-12-31T23:59:59.000000000Z");
        assert_eq!(utime_text(0, utime_nsec::NOW), "now");
        assert_eq!(utime_text(9, utime_nsec::OMIT), "omit");
        assert_eq!(utime_text(9, utime_nsec::INVALID), "invalid");
        assert_eq!(utime_text(9, 1_000_000_000), "invalid");
        // Any seconds at all (a forged record) render without overflow.
        for s in [i64::MIN, i64::MAX] {
            assert!(!utime_text(s, 999_999_999).is_empty());
        }
    }
}
