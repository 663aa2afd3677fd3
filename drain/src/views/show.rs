//! `substrate-drain show`: one human line per event, strace-like, with open flags and modes
//! decoded (`O_WRONLY|O_CREAT|O_TRUNC`, `0644`), and filters by event class and path prefix.
//! A change made through a descriptor shows it (`fchmod(fd 3 "/tmp/x", 0755)`).

use crate::event::Event;

/// Event classes for `--events`.
pub const CLASSES: [&str; 6] = ["process", "file", "object", "net", "dns", "lost"];

/// The class of an event type: `process`, `file`, `object` (`object_load`: the shared objects
/// an image loaded), `net`, `dns` or `lost`.
pub fn class(event_type: &str) -> &'static str {
    match event_type {
        "dns_lookup" => "dns",
        "object_load" => "object",
        "lost" => "lost",
        t if t.starts_with("net_") => "net",
        t if t.starts_with("file_") || t == "chdir" => "file",
        _ => "process",
    }
}

/// Which events to show.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Classes to keep (empty: all).
    pub classes: Vec<String>,
    /// Path prefixes to leave out (an event whose `path` or `abs_path` starts with one).
    pub exclude_paths: Vec<String>,
}

impl Filter {
    /// Whether `ev` passes.
    ///
    /// ```
    /// use drain::views::show::Filter;
    /// let f = Filter { classes: vec!["file".into()], exclude_paths: vec!["/proc".into()] };
    /// let ev = drain::event::Event::parse(r#"{"ts":"","ts_unix_ns":0,"event_type":"file_open",
    ///   "session_id":null,"span_id":null,"parent_span":null,"component":"telemetry","pid":1,
    ///   "tid":1,"pos":0,"ring_id":"r","path":"/proc/self/maps"}"#).unwrap();
    /// assert!(!f.keeps(&ev));
    /// ```
    pub fn keeps(&self, ev: &Event) -> bool {
        self.keeps_fields(&ev.event_type, ev.path.as_deref(), ev.abs_path.as_deref())
    }

    /// Whether an event of `event_type` with these paths passes (the one rule of both
    /// [`Filter::keeps`] and [`Filter::keeps_line`]).
    pub fn keeps_fields(
        &self,
        event_type: &str,
        path: Option<&str>,
        abs_path: Option<&str>,
    ) -> bool {
        if !self.classes.is_empty() && !self.classes.iter().any(|c| c == class(event_type)) {
            return false;
        }
        let excluded = |p: Option<&str>| {
            p.is_some_and(|p| self.exclude_paths.iter().any(|x| p.starts_with(x.as_str())))
        };
        !(excluded(path) || excluded(abs_path))
    }

    /// Whether a line of `trace.jsonl` passes, for `decode --events/--exclude-path` and
    /// `record`'s. A line that is not a telemetry event (not JSON, another component) and a
    /// `lost` line pass always: a filtered trace still says what it is missing.
    ///
    /// ```
    /// use drain::views::show::Filter;
    /// let f = Filter { classes: vec![], exclude_paths: vec!["/proc".into()] };
    /// let line = |ty: &str, rest: &str| format!(r#"{{"ts":"","ts_unix_ns":0,"event_type":"{ty}",
    ///   "session_id":null,"span_id":null,"parent_span":null,"component":"telemetry","pid":1,
    ///   "tid":1,"pos":0,"ring_id":"r",{rest}}}"#);
    /// assert!(!f.keeps_line(line("file_open", r#""path":"/proc/self/maps""#).as_bytes()));
    /// assert!(f.keeps_line(line("file_open", r#""path":"/etc/hosts""#).as_bytes()));
    /// assert!(f.keeps_line(line("lost", r#""reason":"ring_full""#).as_bytes()));
    /// assert!(f.keeps_line(br#"{"component":"substrate","path":"/proc"}"#));
    /// ```
    pub fn keeps_line(&self, line: &[u8]) -> bool {
        match Event::parse_bytes(line) {
            Ok(ev) if ev.component == "telemetry" && ev.event_type != "lost" => self.keeps(&ev),
            _ => true,
        }
    }

    /// Whether this filter keeps everything (no class chosen, no prefix left out).
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty() && self.exclude_paths.is_empty()
    }
}

/// `open(2)` flags by name: the access mode, then each flag set.
///
/// ```
/// let f = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
/// assert_eq!(drain::views::show::open_flags(f as i64), "O_WRONLY|O_CREAT|O_TRUNC");
/// ```
pub fn open_flags(flags: i64) -> String {
    let mut out = String::with_capacity(32);
    push_open_flags(&mut out, flags);
    out
}

/// [`open_flags`] onto `out`.
fn push_open_flags(out: &mut String, flags: i64) {
    let f = flags as i32;
    out.push_str(match f & libc::O_ACCMODE {
        libc::O_RDONLY => "O_RDONLY",
        libc::O_WRONLY => "O_WRONLY",
        _ => "O_RDWR",
    });
    let names: [(i32, &str); 14] = [
        (libc::O_CREAT, "O_CREAT"),
        (libc::O_EXCL, "O_EXCL"),
        (libc::O_NOCTTY, "O_NOCTTY"),
        (libc::O_TRUNC, "O_TRUNC"),
        (libc::O_APPEND, "O_APPEND"),
        (libc::O_NONBLOCK, "O_NONBLOCK"),
        (libc::O_DSYNC, "O_DSYNC"),
        (libc::O_DIRECT, "O_DIRECT"),
        (libc::O_LARGEFILE, "O_LARGEFILE"),
        (libc::O_DIRECTORY, "O_DIRECTORY"),
        (libc::O_NOFOLLOW, "O_NOFOLLOW"),
        (libc::O_NOATIME, "O_NOATIME"),
        (libc::O_CLOEXEC, "O_CLOEXEC"),
        (libc::O_PATH, "O_PATH"),
    ];
    let mut rest = f & !libc::O_ACCMODE;
    let mut part = |name: &str| {
        out.push('|');
        out.push_str(name);
    };
    if rest & libc::O_TMPFILE == libc::O_TMPFILE {
        part("O_TMPFILE");
        rest &= !libc::O_TMPFILE;
    }
    for (bit, name) in names {
        if rest & bit == bit && bit != 0 {
            part(name);
            rest &= !bit;
        }
    }
    if rest & libc::O_SYNC == libc::O_SYNC {
        part("O_SYNC");
        rest &= !libc::O_SYNC;
    }
    if rest != 0 {
        use std::fmt::Write as _;
        let _ = write!(out, "|{rest:#o}");
    }
}

fn q(s: Option<&str>) -> String {
    format!("{:?}", s.unwrap_or(""))
}

fn result(ev: &Event, ok: String) -> String {
    match ev.errno {
        Some(e) => format!("= -1 {} ({e})", errno_name(e)),
        None => ok,
    }
}

fn errno_name(e: i64) -> String {
    // SAFETY: strerror returns a pointer to a static or thread-local string for any value.
    let s = unsafe { std::ffi::CStr::from_ptr(libc::strerror(e as i32)) };
    s.to_string_lossy().into_owned()
}

/// Whether an event type is a change of a file's size, mode, owner, times or extended
/// attributes.
pub fn is_meta(event_type: &str) -> bool {
    matches!(
        event_type,
        "file_truncate"
            | "file_chmod"
            | "file_chown"
            | "file_utime"
            | "file_setxattr"
            | "file_removexattr"
    )
}

/// `chmod("/abs/path", 0755) = 0`, `fchmod(fd 3 "/abs/path", 0755) = 0`, …
fn meta_line(ev: &Event, t: &str) -> String {
    let target = match (&ev.path, ev.fd, &ev.abs_path) {
        (None, Some(fd), Some(a)) => format!("fd {fd} {a:?}"),
        (None, Some(fd), None) => format!("fd {fd}"),
        _ => q(ev.abs_path.as_deref().or(ev.path.as_deref())),
    };
    let mut args = match t {
        "file_truncate" => ev.length.or(ev.length_low32).map(|n| n.to_string()),
        "file_chmod" => ev.mode.map(|m| format!("{m:04o}")),
        "file_chown" => Some(format!(
            "{}, {}",
            ev.uid.unwrap_or(-1),
            ev.gid.unwrap_or(-1)
        )),
        "file_utime" => Some(match (&ev.atime, &ev.mtime) {
            (Some(a), Some(m)) => format!("atime {a}, mtime {m}"),
            _ => "times unreadable".into(),
        }),
        "file_setxattr" => Some(format!(
            "{}, {} bytes",
            q(ev.name.as_deref()),
            ev.size.unwrap_or(0)
        )),
        _ => Some(q(ev.name.as_deref())),
    }
    .map(|a| format!(", {a}"))
    .unwrap_or_default();
    if let Some(f) = ev.flags {
        args.push_str(&format!(", flags {f:#x}"));
    }
    format!(
        "{}({target}{args}) {}",
        ev.op.as_deref().unwrap_or(t),
        result(ev, format!("= {}", ev.result.unwrap_or(0)))
    )
}

/// The line for `ev`; `t0` is the trace's first timestamp (ns) and `program` the image's.
pub fn line(ev: &Event, t0: i64, program: &str) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = write_line(&mut out, ev, t0, program, &what(ev));
    out.pop(); // the newline
    String::from_utf8_lossy(&out).into_owned()
}

/// Write [`line()`] (and a newline) from the event's own part, [`what`]: the time since `t0`,
/// pid and program first.
pub fn write_line(
    out: &mut impl std::io::Write,
    ev: &Event,
    t0: i64,
    program: &str,
    what: &str,
) -> std::io::Result<()> {
    let rel = (ev.ts_unix_ns - t0) as f64 / 1e6;
    match ev.pid {
        Some(p) => writeln!(out, "{rel:>10.3}ms {p:>7} {program:<12} {what}"),
        None => writeln!(out, "{rel:>10.3}ms {:>7} {:<12} {what}", "-", "-"),
    }
}

/// What an event did, as [`line()`] shows it after the time, pid and program (it depends on the
/// event alone: `show` makes it on the threads that parse).
pub fn what(ev: &Event) -> String {
    match &*ev.event_type {
        "process_start" => format!(
            "start {} cwd={}",
            ev.argv
                .as_ref()
                .map(|a| format!("{a:?}"))
                .unwrap_or_default(),
            q(ev.cwd.as_deref())
        ),
        "process_exit" => match (ev.signal, ev.exit_code) {
            (Some(s), _) => format!("exit killed by signal {s}"),
            (_, c) => format!("exit {}", c.unwrap_or(0)),
        },
        "exec" | "spawn" => {
            let untraced = if ev.untraced == Some(true) {
                format!(
                    " [untraced: {}]",
                    ev.untraced_reason.as_deref().unwrap_or("")
                )
            } else {
                String::new()
            };
            format!(
                "{}({}, {}){untraced} {}",
                ev.op.as_deref().unwrap_or(&ev.event_type),
                q(ev.path.as_deref()),
                ev.argv
                    .as_ref()
                    .map(|a| format!("{a:?}"))
                    .unwrap_or_default(),
                result(ev, String::new())
            )
        }
        "fork" => format!(
            "{}() {}",
            ev.op.as_deref().unwrap_or("fork"),
            result(ev, format!("= {}", ev.child_pid.unwrap_or(0)))
        ),
        "file_open" => {
            // The commonest event, written into one string.
            use std::fmt::Write as _;
            let mut out = String::with_capacity(96);
            let path = ev.abs_path.as_deref().or(ev.path.as_deref()).unwrap_or("");
            let _ = write!(out, "{}({path:?}, ", ev.op.as_deref().unwrap_or("open"));
            push_open_flags(&mut out, ev.flags.unwrap_or(0));
            if let Some(m) = ev.mode {
                let _ = write!(out, ", {m:04o}");
            }
            let _ = match ev.errno {
                Some(e) => write!(out, ") = -1 {} ({e})", errno_name(e)),
                None => write!(out, ") = {}", ev.fd.unwrap_or(-1)),
            };
            out
        }
        "file_rename" | "file_link" => format!(
            "{}({}, {}) {}",
            ev.op.as_deref().unwrap_or("rename"),
            q(ev.abs_path.as_deref().or(ev.path.as_deref())),
            q(ev.abs_new_path.as_deref().or(ev.new_path.as_deref())),
            result(ev, "= 0".into())
        ),
        "file_symlink" => format!(
            "symlink({}, {}) {}",
            q(ev.target.as_deref()),
            q(ev.abs_path.as_deref().or(ev.path.as_deref())),
            result(ev, "= 0".into())
        ),
        t if is_meta(t) => meta_line(ev, t),
        t if t.starts_with("file_") || t == "chdir" => {
            let mode = ev.mode.map(|m| format!(", {m:04o}")).unwrap_or_default();
            format!(
                "{}({}{mode}) {}",
                ev.op.as_deref().unwrap_or(t),
                q(ev.abs_path.as_deref().or(ev.path.as_deref())),
                result(ev, format!("= {}", ev.result.unwrap_or(0)))
            )
        }
        t if t.starts_with("net_") => {
            let family = ev
                .family
                .as_ref()
                .and_then(|f| f.as_str().map(String::from))
                .unwrap_or_default();
            let addr = match (&ev.addr, ev.port) {
                (Some(a), Some(p)) => format!("{a}:{p}"),
                (Some(a), None) => a.to_string(),
                _ => String::new(),
            };
            format!(
                "{}(fd {}, {family} {addr}) {}",
                ev.op.as_deref().unwrap_or(t),
                ev.fd.unwrap_or(-1),
                result(ev, format!("= {}", ev.result.unwrap_or(0)))
            )
        }
        "object_load" => format!(
            "load {} at {:#x}{}",
            q(ev.abs_path.as_deref().or(ev.path.as_deref())),
            ev.base.unwrap_or(0),
            if ev.at_start == Some(true) {
                " (before main)"
            } else {
                " (dlopen)"
            }
        ),
        "dns_lookup" => format!(
            "getaddrinfo({}) = {} {:?}",
            q(ev.name.as_deref()),
            ev.result.unwrap_or(0),
            ev.addrs.clone().unwrap_or_default()
        ),
        "lost" => format!(
            "LOST {} record(s): {}{}",
            ev.count.unwrap_or(0),
            ev.reason.as_deref().unwrap_or("?"),
            if ev.exact == Some(false) {
                " (at least)"
            } else {
                ""
            }
        ),
        t => t.to_string(),
    }
}

/// `show`'s [`super::Work`] when the trace's first time is known ([`super::first_event_ts`]):
/// each line the filter keeps is formatted on the thread that parses, but for the program
/// column, which needs the image's start (read in order): it is framed for [`Writer`]. Keeps
/// for the calling thread only the starts of images.
///
/// A frame: the span (a 4-byte little-endian length, then its bytes), the line's head (time and
/// pid, after its 4-byte length) and its tail (what the event did and the newline, after its
/// length); or, for an event without a pid (no program column), [`WHOLE`] and the whole line
/// after its length.
pub struct Lines<'f> {
    filter: &'f Filter,
    t0: i64,
}

/// The span length that marks a frame holding a whole line.
const WHOLE: u32 = u32::MAX;

impl<'f> Lines<'f> {
    /// Lines of events kept by `filter`, their times from `t0` (the trace's first).
    pub fn new(filter: &'f Filter, t0: i64) -> Lines<'f> {
        Lines { filter, t0 }
    }
}

impl super::Work for Lines<'_> {
    fn event(&mut self, ev: &Event<'_>, _: super::Line<'_>, out: &mut Vec<u8>) -> bool {
        if self.filter.keeps(ev) {
            frame(ev, self.t0, out);
        }
        ev.event_type == "process_start"
    }
}

/// `bytes` with their length before them (4 bytes, little-endian).
fn framed(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    use std::io::Write as _;
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    write(out);
    let len = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX - 1);
    let _ = (&mut out[at..at + 4]).write_all(&len.to_le_bytes());
}

/// [`write_line`] but for the program, framed (see [`Lines`]).
fn frame(ev: &Event, t0: i64, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let rel = (ev.ts_unix_ns - t0) as f64 / 1e6;
    let what = what(ev);
    // Writing into a Vec cannot fail.
    match ev.pid {
        None => {
            out.extend_from_slice(&WHOLE.to_le_bytes());
            framed(out, |out| {
                let _ = writeln!(out, "{rel:>10.3}ms {:>7} {:<12} {what}", "-", "-");
            });
        }
        Some(p) => {
            let span = ev.span_id.as_deref().unwrap_or_default();
            framed(out, |out| out.extend_from_slice(span.as_bytes()));
            framed(out, |out| {
                let _ = write!(out, "{rel:>10.3}ms {p:>7} ");
            });
            framed(out, |out| {
                let _ = writeln!(out, " {what}");
            });
        }
    }
}

/// Writes `show`'s lines from what [`Lines`] works hand on, in order: the program column from
/// the starts of images seen so far (`?` for an image whose start was not).
pub struct Writer<W: std::io::Write> {
    out: W,
    programs: std::collections::HashMap<String, String>,
    /// The last span looked up and its program, padded (runs of one image's events are long).
    last: Option<(String, String)>,
}

impl<W: std::io::Write> Writer<W> {
    pub fn new(out: W) -> Writer<W> {
        Writer {
            out,
            programs: std::collections::HashMap::new(),
            last: None,
        }
    }

    /// Write the lines of what a [`Lines`] work handed on.
    pub fn add(&mut self, (ev, frames): super::Handed<'_, '_>) -> std::io::Result<()> {
        if let Some(ev) = ev.filter(|ev| ev.event_type == "process_start") {
            let span = ev.span_id.as_deref().unwrap_or_default();
            self.programs.insert(span.to_string(), super::program(ev));
            self.last = None;
        }
        let mut rest = frames;
        // Each piece of a frame after its length (frames are written by `frame`: a piece
        // cut short cannot be).
        let mut piece = || -> Option<(u32, &[u8])> {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let len = u32::from_le_bytes(*len);
            if len == WHOLE {
                rest = tail;
                return Some((len, &[]));
            }
            let (bytes, tail) = tail.split_at_checked(len as usize)?;
            rest = tail;
            Some((len, bytes))
        };
        while let Some((first, span)) = piece() {
            if first == WHOLE {
                let Some((_, line)) = piece() else { break };
                self.out.write_all(line)?;
                continue;
            }
            let (Some((_, head)), Some((_, tail))) = (piece(), piece()) else {
                break;
            };
            let last = self.last.take().filter(|(s, _)| s.as_bytes() == span);
            let (span, program) = match last {
                Some(hit) => hit,
                None => {
                    let span = String::from_utf8_lossy(span).into_owned();
                    let program = self.programs.get(&span).map_or("?", String::as_str);
                    let padded = format!("{program:<12}");
                    (span, padded)
                }
            };
            self.out.write_all(head)?;
            self.out.write_all(program.as_bytes())?;
            self.out.write_all(tail)?;
            self.last = Some((span, program));
        }
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}
