//! Typed `trace.jsonl` lines: [`Event`] is one line of the documented schema (`drain/SCHEMA.md`)
//! as a Rust value, `serde`-serializable both ways.
//!
//! The decoder writes lines with its own JSON writer (it is the hot path: millions of lines a
//! second); [`Event`] is the same line for programs that want fields, not text: parse a line
//! of a trace file with [`Event::parse`], or receive each line of an in-process follow as an
//! event with [`EventSink`]. Serializing an event gives back the line's JSON object (member
//! order aside): a test holds every line of real traces to that.
//!
//! An event borrows its strings from the line it was read from where it can (a string with
//! no escapes), so reading one allocates next to nothing; [`Event::into_owned`] makes one
//! that outlives its line. [`Event::parse`] is this crate's own reader (see `event/parse.rs`):
//! it gives the same event as the `serde` derive, several times faster.
//!
//! Fields every line has are plain members; fields of some event types only are `Option`s,
//! absent from the JSON when `None`. Member names are the schema's.

use std::borrow::Cow;
use std::io;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A member that may be absent, present as `null`, or present with a value: `None`, then
/// `Some(Value::Null)`, then `Some(v)`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// One line of `trace.jsonl`.
///
/// ```
/// let line = r#"{"ts":"2026-12-02T10:00:00.000000001Z","ts_unix_ns":1796205600000000001,
///   "event_type":"file_open","session_id":null,"span_id":"spn_x","parent_span":null,
///   "parent_image":null,"component":"telemetry","pid":7,"tid":7,"pos":64,
///   "ring_id":"0000000000000001000000aa","op":"open","path":"a","flags":0,"access":"read","fd":3}"#;
/// let ev = drain::event::Event::parse(line).unwrap();
/// assert_eq!(ev.event_type, "file_open");
/// assert_eq!(ev.fd, Some(3));
/// assert_eq!(ev.path.as_deref(), Some("a"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Event<'a> {
    /// RFC 3339 UTC with nanoseconds.
    pub ts: Cow<'a, str>,
    /// The same instant in ns since the Unix epoch.
    pub ts_unix_ns: i64,
    /// `process_start`, `exec`, `file_open`, `lost`, … (see the schema).
    pub event_type: Cow<'a, str>,
    /// The substrate session.
    pub session_id: Option<Cow<'a, str>>,
    /// The process image (`spn_` + UUIDv7); null on `lost`.
    pub span_id: Option<Cow<'a, str>>,
    /// The enclosing substrate span the process inherited (`SHIM_PARENT_SPAN`).
    pub parent_span: Option<Cow<'a, str>>,
    /// The span of the image that started this one.
    #[serde(default)]
    pub parent_image: Option<Cow<'a, str>>,
    /// Always `telemetry`.
    pub component: Cow<'a, str>,
    /// Process id; null on `lost`.
    pub pid: Option<i64>,
    /// Thread id; null on `lost`.
    pub tid: Option<i64>,
    /// Position of the record in the ring's stream.
    pub pos: u64,
    /// The ring the line came from.
    pub ring_id: Cow<'a, str>,

    /// A variable field was cut to fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    /// Fields that held bytes that are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escaped: Option<Vec<Cow<'a, str>>>,
    /// An argv value was replaced by `[REDACTED]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted: Option<bool>,
    /// A path the program passed was not read (the kernel refused it): `path` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_unreadable: Option<bool>,
    /// An exec/spawn argv was not readable: `argv` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv_unreadable: Option<bool>,
    /// An exec/spawn environment was not readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envp_unreadable: Option<bool>,
    /// A socket address (or a looked-up name) was not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr_unreadable: Option<bool>,
    /// `file_utime`: the times the call was given were not read (no `atime`, `mtime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times_unreadable: Option<bool>,
    /// `file_setxattr`, `file_removexattr`: the attribute name was not read (`name` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_unreadable: Option<bool>,

    /// Which call (`open`, `execve`, `connect`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<Cow<'a, str>>,
    /// Path as the program gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Cow<'a, str>>,
    /// The path made absolute, where it could be resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abs_path: Option<Cow<'a, str>>,
    /// Second path (rename, link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_path: Option<Cow<'a, str>>,
    /// The second path made absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abs_new_path: Option<Cow<'a, str>>,
    /// A symlink's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Cow<'a, str>>,
    /// Directory descriptors of `*at` calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dirfd: Option<i64>,
    /// See [`Event::dirfd`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dirfd2: Option<i64>,
    /// Open or call flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<i64>,
    /// `read`, `write` or `read_write`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Cow<'a, str>>,
    /// Creation mode (`file_open`, `file_mkdir`), or the new mode (`file_chmod`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<i64>,
    /// `file_truncate`: the new length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<i64>,
    /// `file_truncate` of an older preload: the low 32 bits of the length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_low32: Option<i64>,
    /// `file_chown`: the new owner (absent: unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<i64>,
    /// `file_chown`: the new group (absent: unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<i64>,
    /// `file_utime`: the new access time (RFC 3339, `now`, `omit` or `invalid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atime: Option<Cow<'a, str>>,
    /// `file_utime`: the new modification time, as `atime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<Cow<'a, str>>,
    /// `file_setxattr`: the size of the value set, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// A descriptor: opened, or the one acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fd: Option<i64>,
    /// The call's return value where it carries meaning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<i64>,
    /// `errno` of a failed call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<i64>,

    /// `process_start`: parent pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<i64>,
    /// `process_start`: the executable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<Cow<'a, str>>,
    /// Arguments (`process_start`, `exec`, `spawn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<Cow<'a, str>>>,
    /// `process_start`: working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<Cow<'a, str>>,
    /// `process_start`: `exec` or `fork`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Cow<'a, str>>,
    /// `process_exit`: how it ended (`exit`, `_exit`, `return`, `signal`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub how: Option<Cow<'a, str>>,
    /// Exit status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Killing signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i64>,
    /// `fork`, `spawn`: the child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_pid: Option<i64>,
    /// `exec`, `spawn`: the child will not be traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untraced: Option<bool>,
    /// Why it will not be traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untraced_reason: Option<Cow<'a, str>>,
    /// `exec`, `spawn`: the preload cannot enter the child, the supervisor follows it;
    /// `process_start`: this image is followed by the supervisor (process events only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervised: Option<bool>,
    /// `exec`, `spawn`: why the preload cannot enter the child (`static`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervised_reason: Option<Cow<'a, str>>,

    /// Network: `inet`, `inet6`, `unix`, null (unspecified) or a number.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub family: Option<Value>,
    /// Network address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<Cow<'a, str>>,
    /// Network port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// `dns_lookup`: the name looked up; `file_setxattr`, `file_removexattr`: the attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Cow<'a, str>>,
    /// `dns_lookup`: the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Cow<'a, str>>,
    /// `dns_lookup`: addresses found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addrs: Option<Vec<Cow<'a, str>>>,
    /// `dns_lookup`: how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub naddrs: Option<i64>,

    /// `object_load`: the object's load bias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<u64>,
    /// `object_load`: the object was mapped before the program ran (not `dlopen`'d).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_start: Option<bool>,

    /// `lost`: records lost (a lower bound unless `exact`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// `lost`: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Cow<'a, str>>,
    /// `lost`: whether `count` is exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<bool>,
    /// `lost`: bytes of ring skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// `lost`: the kind of the lost record, when its header was readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<u64>,
}

mod members;
mod parse;
mod scan;

pub use members::{append_members, append_str, for_each_member, write_members, Skip, HEADER};
pub use parse::{Layout, ParseError, MAX_DEPTH};

/// A line without its newline.
fn strip(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

impl<'a> Event<'a> {
    /// Parse one line (with or without its newline). Strings without escapes borrow from
    /// `line`; [`Event::into_owned`] makes an event that outlives it.
    pub fn parse(line: &'a str) -> Result<Event<'a>, ParseError> {
        parse::parse(line.strip_suffix('\n').unwrap_or(line))
    }

    /// [`Event::parse`] of bytes, which must be UTF-8.
    pub fn parse_bytes(line: &'a [u8]) -> Result<Event<'a>, ParseError> {
        let mut ev = Event::default();
        ev.parse_bytes_into(line).map(|()| ev)
    }

    /// [`Event::parse_bytes`] into this event, which must be [`Event::default`] (an event is
    /// large: filling one in place saves moving it).
    pub fn parse_bytes_into(&mut self, line: &'a [u8]) -> Result<(), ParseError> {
        parse::parse_bytes_into::<false>(strip(line), self).map(|_| ())
    }

    /// [`Event::parse_bytes_into`], and where the line's members are ([`Layout`]: for
    /// copying them as they are).
    pub fn parse_layout_into(&mut self, line: &'a [u8]) -> Result<Layout, ParseError> {
        parse::parse_bytes_into::<true>(strip(line), self)
    }

    /// [`Event::parse_bytes_into`], saying whether the line is plain ([`Layout::plain`]; the
    /// rest of the layout only when `FORM`).
    pub(crate) fn parse_form_into<const FORM: bool>(
        &mut self,
        line: &'a [u8],
    ) -> Result<Layout, ParseError> {
        parse::parse_bytes_into::<FORM>(strip(line), self)
    }

    /// What of the event owns memory: how many of its strings are owned (none, for an event
    /// read from a plain line, [`Layout::plain`]: they are borrowed from it), and whether it
    /// has a list or `family` (which own memory whatever the line). Every field is named here,
    /// so none can be added without saying which kind it is.
    #[inline(always)]
    fn owned_parts(&self) -> (usize, bool) {
        let owned = |s: Option<&Cow<'_, str>>| usize::from(matches!(s, Some(Cow::Owned(_))));
        let Event {
            ts,
            ts_unix_ns: _,
            event_type,
            session_id,
            span_id,
            parent_span,
            parent_image,
            component,
            pid: _,
            tid: _,
            pos: _,
            ring_id,
            truncated: _,
            escaped,
            redacted: _,
            path_unreadable: _,
            argv_unreadable: _,
            envp_unreadable: _,
            addr_unreadable: _,
            times_unreadable: _,
            name_unreadable: _,
            op,
            path,
            abs_path,
            new_path,
            abs_new_path,
            target,
            dirfd: _,
            dirfd2: _,
            flags: _,
            access,
            mode: _,
            length: _,
            length_low32: _,
            uid: _,
            gid: _,
            atime,
            mtime,
            size: _,
            fd: _,
            result: _,
            errno: _,
            ppid: _,
            exe,
            argv,
            cwd,
            via,
            how,
            exit_code: _,
            signal: _,
            child_pid: _,
            untraced: _,
            untraced_reason,
            supervised: _,
            supervised_reason,
            family,
            addr,
            port: _,
            name,
            service,
            addrs,
            naddrs: _,
            base: _,
            at_start: _,
            count: _,
            reason,
            exact: _,
            bytes: _,
            kind: _,
        } = self;
        let strings = owned(Some(ts))
            + owned(Some(event_type))
            + owned(session_id.as_ref())
            + owned(span_id.as_ref())
            + owned(parent_span.as_ref())
            + owned(parent_image.as_ref())
            + owned(Some(component))
            + owned(Some(ring_id))
            + escaped
                .iter()
                .flatten()
                .map(|s| owned(Some(s)))
                .sum::<usize>()
            + owned(op.as_ref())
            + owned(path.as_ref())
            + owned(abs_path.as_ref())
            + owned(new_path.as_ref())
            + owned(abs_new_path.as_ref())
            + owned(target.as_ref())
            + owned(access.as_ref())
            + owned(atime.as_ref())
            + owned(mtime.as_ref())
            + owned(exe.as_ref())
            + argv.iter().flatten().map(|s| owned(Some(s))).sum::<usize>()
            + owned(cwd.as_ref())
            + owned(via.as_ref())
            + owned(how.as_ref())
            + owned(untraced_reason.as_ref())
            + owned(supervised_reason.as_ref())
            + owned(addr.as_ref())
            + owned(name.as_ref())
            + owned(service.as_ref())
            + addrs
                .iter()
                .flatten()
                .map(|s| owned(Some(s)))
                .sum::<usize>()
            + owned(reason.as_ref());
        let lists = escaped.is_some() || argv.is_some() || family.is_some() || addrs.is_some();
        (strings, lists)
    }

    /// How many of the event's strings are owned (see [`Event::owned_parts`]).
    #[cfg(test)]
    pub(crate) fn owned_strings(&self) -> usize {
        self.owned_parts().0
    }

    /// Whether dropping this event would free nothing, for an event read from a plain line
    /// ([`Layout::plain`]): it has no list and no `family` (see [`Event::owned_parts`]; the
    /// count of owned strings, unused, is not computed).
    pub(crate) fn frees_nothing_if_plain(&self) -> bool {
        !self.owned_parts().1
    }

    /// The line's JSON object.
    pub fn to_value(&self) -> Value {
        // An Event always serializes: every member is a string, number, bool, array or null.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// An event with every string its own, independent of the line it was read from.
    pub fn into_owned(self) -> Event<'static> {
        fn own(s: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(s.into_owned())
        }
        fn own_opt(s: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
            s.map(own)
        }
        fn own_vec(v: Option<Vec<Cow<'_, str>>>) -> Option<Vec<Cow<'static, str>>> {
            v.map(|v| v.into_iter().map(own).collect())
        }
        Event {
            ts: own(self.ts),
            ts_unix_ns: self.ts_unix_ns,
            event_type: own(self.event_type),
            session_id: own_opt(self.session_id),
            span_id: own_opt(self.span_id),
            parent_span: own_opt(self.parent_span),
            parent_image: own_opt(self.parent_image),
            component: own(self.component),
            pid: self.pid,
            tid: self.tid,
            pos: self.pos,
            ring_id: own(self.ring_id),
            truncated: self.truncated,
            escaped: own_vec(self.escaped),
            redacted: self.redacted,
            path_unreadable: self.path_unreadable,
            argv_unreadable: self.argv_unreadable,
            envp_unreadable: self.envp_unreadable,
            addr_unreadable: self.addr_unreadable,
            times_unreadable: self.times_unreadable,
            name_unreadable: self.name_unreadable,
            op: own_opt(self.op),
            path: own_opt(self.path),
            abs_path: own_opt(self.abs_path),
            new_path: own_opt(self.new_path),
            abs_new_path: own_opt(self.abs_new_path),
            target: own_opt(self.target),
            dirfd: self.dirfd,
            dirfd2: self.dirfd2,
            flags: self.flags,
            access: own_opt(self.access),
            mode: self.mode,
            length: self.length,
            length_low32: self.length_low32,
            uid: self.uid,
            gid: self.gid,
            atime: own_opt(self.atime),
            mtime: own_opt(self.mtime),
            size: self.size,
            fd: self.fd,
            result: self.result,
            errno: self.errno,
            ppid: self.ppid,
            exe: own_opt(self.exe),
            argv: own_vec(self.argv),
            cwd: own_opt(self.cwd),
            via: own_opt(self.via),
            how: own_opt(self.how),
            exit_code: self.exit_code,
            signal: self.signal,
            child_pid: self.child_pid,
            untraced: self.untraced,
            untraced_reason: own_opt(self.untraced_reason),
            supervised: self.supervised,
            supervised_reason: own_opt(self.supervised_reason),
            family: self.family,
            addr: own_opt(self.addr),
            port: self.port,
            name: own_opt(self.name),
            service: own_opt(self.service),
            addrs: own_vec(self.addrs),
            naddrs: self.naddrs,
            base: self.base,
            at_start: self.at_start,
            count: self.count,
            reason: own_opt(self.reason),
            exact: self.exact,
            bytes: self.bytes,
            kind: self.kind,
        }
    }
}

/// An output that hands each line to a callback as an [`Event`]: how a program follows a
/// ring in-process and gets values, not text.
///
/// ```
/// use std::io::Write;
/// let mut seen = vec![];
/// let mut sink = drain::event::EventSink::new(|ev| seen.push(ev.event_type.to_string()));
/// sink.write_all(br#"{"ts":"x","ts_unix_ns":1,"event_type":"lost","session_id":null,"span_id":null,"parent_span":null,"component":"telemetry","pid":null,"tid":null,"pos":0,"ring_id":"r","count":1,"reason":"unwritten","exact":false,"bytes":64}
/// "#).unwrap();
/// drop(sink);
/// assert_eq!(seen, ["lost"]);
/// ```
pub struct EventSink<F: FnMut(Event<'_>)> {
    f: F,
}

impl<F: FnMut(Event<'_>)> EventSink<F> {
    /// A sink calling `f` with each event.
    pub fn new(f: F) -> Self {
        EventSink { f }
    }
}

impl<F: FnMut(Event<'_>)> io::Write for EventSink<F> {
    /// Each call carries one whole line (as the decoder writes them).
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let ev =
            Event::parse_bytes(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        (self.f)(ev);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
