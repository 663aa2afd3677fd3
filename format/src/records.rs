//! Event record layouts: the one definition used by writers (the preload) and readers (the
//! drain).
//!
//! A record's payload (after the 16-byte ring header) is:
//!
//! ```text
//! fixed part   the event struct, whose first 40 bytes are an EventHeader
//! var fields   EventHeader.var_count times: u32 little-endian length, then that many bytes
//! ```
//!
//! Every integer is little-endian and every struct has alignment 1 (`zerocopy` byte-order
//! types), so a reader decodes in place from any offset. The variable fields of each kind are
//! listed on its struct. A writer whose record would exceed the ring's largest record keeps as
//! many fields as fit, cuts the last one short, and sets [`ev_flags::TRUNCATED`]: never dropped
//! silently.

use zerocopy::little_endian::{I32, I64, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Declares the record kinds from one table: each entry is
///
/// ```text
/// /// doc of the kind
/// Name(Layout) = number,          no var fields
/// Name(Layout, Vars) = number,    var fields follow the fixed part
/// ```
///
/// and the macro makes [`Kind`] (its variants, [`Kind::from_u16`], [`Kind::ALL`], …), the
/// [`Event`] impl of each layout, and [`AnyEvent`] with its variants `Name(&Layout)` or
/// `Name(&Layout, Vars)`, [`AnyEvent::decode`] and [`AnyEvent::ev`]. It checks at compile time
/// that each layout begins with its [`EventHeader`] (the writer patches the header in place).
///
/// A closing `@legacy { Name(Layout[, Vars]) = Kind in FIRST..=LAST, … }` lists layouts that
/// ring format versions FIRST to LAST wrote under a kind of the table: each becomes an
/// [`AnyEvent`] variant too, which [`AnyEvent::decode_version`] yields for that kind in a ring
/// of those versions.
macro_rules! record_kinds {
    // A variant's var fields: the decoded `Vars` (present) or nothing (absent).
    (@vars Vars $v:ident) => { $v };
    (@some_vars Vars $v:ident) => { Some($v.clone()) };
    (@some_vars) => { None };
    (@has_vars Vars) => { true };
    (@has_vars) => { false };
    ($(
        $(#[$doc:meta])*
        $name:ident($layout:ident $(, $vars:ident)?) = $num:literal,
    )*
    @legacy {$(
        $(#[$ldoc:meta])*
        $lname:ident($llayout:ident $(, $lvars:ident)?) = $lkind:ident in $lfrom:literal ..= $lto:literal,
    )*}) => {
        /// Record kinds (header field `kind`). 0 is padding; `0x8000..` are free for tests and
        /// tools. Declared by the table at the top of `records.rs`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum Kind {
            $(
                $(#[$doc])*
                #[doc = concat!("\n\nLayout: [`", stringify!($layout), "`].")]
                $name = $num,
            )*
        }

        impl Kind {
            /// Every kind, in table order.
            pub const ALL: &'static [Kind] = &[$(Kind::$name),*];

            /// The kind a header field names, if any.
            pub fn from_u16(v: u16) -> Option<Kind> {
                match v {
                    $($num => Some(Kind::$name),)*
                    _ => None,
                }
            }

            /// The kind's name (that of its variant).
            pub fn name(self) -> &'static str {
                match self {
                    $(Kind::$name => stringify!($name),)*
                }
            }

            /// Size of the kind's fixed part, its [`EventHeader`] included.
            pub fn fixed_size(self) -> usize {
                match self {
                    $(Kind::$name => size_of::<$layout>(),)*
                }
            }

            /// Whether records of this kind carry var fields (see the layout's docs).
            pub fn has_vars(self) -> bool {
                match self {
                    $(Kind::$name => record_kinds!(@has_vars $($vars)?),)*
                }
            }

            /// Run `v` with this kind's layout type (for code generic over every kind, such as
            /// tests that write one record of each).
            pub fn visit<V: KindVisitor>(self, v: V) -> V::Output {
                match self {
                    $(Kind::$name => v.visit::<$layout>(),)*
                }
            }
        }

        $(
            impl Event for $layout {
                const KIND: Kind = Kind::$name;
                #[inline]
                fn ev(&self) -> &EventHeader {
                    &self.ev
                }
            }
            const _: () = assert!(
                core::mem::offset_of!($layout, ev) == 0,
                concat!(stringify!($layout), " must begin with its EventHeader"),
            );
        )*
        $(
            impl Event for $llayout {
                const KIND: Kind = Kind::$lkind;
                #[inline]
                fn ev(&self) -> &EventHeader {
                    &self.ev
                }
            }
            const _: () = assert!(
                core::mem::offset_of!($llayout, ev) == 0,
                concat!(stringify!($llayout), " must begin with its EventHeader"),
            );
        )*

        /// A decoded event of any known kind: a variant per [`Kind`], holding the fixed part in
        /// place and, for kinds that have them, the var fields.
        #[derive(Debug, Clone)]
        pub enum AnyEvent<'a> {
            $(
                #[doc = concat!("[`", stringify!($layout), "`].")]
                $name(&'a $layout $(, $vars<'a>)?),
            )*
            $(
                $(#[$ldoc])*
                #[doc = concat!("\n\n[`", stringify!($llayout), "`], kind `", stringify!($lkind),
                    "` of ring format versions ", stringify!($lfrom), " to ", stringify!($lto),
                    " ([`AnyEvent::decode_version`]).")]
                $lname(&'a $llayout $(, $lvars<'a>)?),
            )*
        }

        impl<'a> AnyEvent<'a> {
            /// Decode a payload of record kind `kind` from a ring of format version `version`
            /// (the ring header's): a kind whose layout that version wrote differently decodes
            /// as its legacy variant, every other one as [`AnyEvent::decode`] does.
            pub fn decode_version(
                version: u32,
                kind: u16,
                payload: &'a [u8],
            ) -> Result<AnyEvent<'a>, DecodeError> {
                $(
                    if kind == Kind::$lkind as u16 && ($lfrom..=$lto).contains(&version) {
                        let (e, _vars) = decode::<$llayout>(payload)?;
                        return Ok(AnyEvent::$lname(e $(, record_kinds!(@vars $lvars _vars))?));
                    }
                )*
                Self::decode(kind, payload)
            }

            /// Decode a payload of record kind `kind` as this version writes it
            /// ([`crate::layout::VERSION`]); for records of any ring use
            /// [`AnyEvent::decode_version`].
            pub fn decode(kind: u16, payload: &'a [u8]) -> Result<AnyEvent<'a>, DecodeError> {
                let k = Kind::from_u16(kind).ok_or(DecodeError::UnknownKind(kind))?;
                Ok(match k {
                    $(Kind::$name => {
                        let (e, _vars) = decode::<$layout>(payload)?;
                        AnyEvent::$name(e $(, record_kinds!(@vars $vars _vars))?)
                    })*
                })
            }

            /// The event's kind.
            pub fn kind(&self) -> Kind {
                match self {
                    $(AnyEvent::$name(..) => Kind::$name,)*
                    $(AnyEvent::$lname(..) => Kind::$lkind,)*
                }
            }

            /// The common header.
            pub fn ev(&self) -> &'a EventHeader {
                match self {
                    $(AnyEvent::$name(e, ..) => &e.ev,)*
                    $(AnyEvent::$lname(e, ..) => &e.ev,)*
                }
            }

            /// The var fields, for kinds that have them.
            pub fn vars(&self) -> Option<Vars<'a>> {
                match self {
                    $(AnyEvent::$name(_ $(, record_kinds!(@vars $vars v))?) => {
                        record_kinds!(@some_vars $($vars v)?)
                    })*
                    $(AnyEvent::$lname(_ $(, record_kinds!(@vars $lvars v))?) => {
                        record_kinds!(@some_vars $($lvars v)?)
                    })*
                }
            }
        }
    };
}

// The record kinds. Adding one: a layout struct below, one entry here, and its rendering in the
// drain (`drain/src/decode.rs`, which matches on every `AnyEvent` variant). See `RING.md`,
// "Adding a record kind".
record_kinds! {
    /// A process image started (library loaded).
    ProcessStart(ProcessStart, Vars) = 1,
    /// A process is exiting.
    ProcessExit(ProcessExit) = 2,
    /// An exec call is about to replace this image.
    Exec(Exec, Vars) = 3,
    /// The exec call returned (it failed).
    ExecFailed(ExecFailed) = 4,
    /// A process was started without fork+exec in this image (`posix_spawn`, `system`,
    /// `popen`).
    Spawn(Spawn, Vars) = 5,
    /// A fork-like call created a child.
    Fork(Fork) = 6,
    /// A file was opened.
    FileOpen(FileOpen, Vars) = 7,
    /// A path operation (unlink, mkdir, rename, link, chdir, …).
    FileOp(FileOp, Vars) = 8,
    /// A socket call.
    Net(Net, Vars) = 9,
    /// A name lookup.
    Dns(Dns, Vars) = 10,
    /// A file's metadata or size changed (truncate, chmod, chown, utime, xattr set or
    /// removed).
    FileMeta(FileMeta, Vars) = 11,
    /// A shared object in the image's loader list (once per image).
    ObjectLoad(ObjectLoad, Vars) = 12,

    // Layouts older ring format versions wrote under a kind of the table, read by
    // `AnyEvent::decode_version` (the ring header says the version): `Name(Layout[, Vars]) =
    // Kind in FIRST..=LAST`. Never written by this build.
    @legacy {
        /// `process_start` as the preload of ring format versions 1 and 2 wrote it: parsed
        /// span and session ids in the fixed part, no `SHIM_*` var fields.
        ProcessStartV2(ProcessStartV2, Vars) = ProcessStart in 1..=2,
    }
}

/// Something done with the layout type of a kind chosen at run time: see [`Kind::visit`].
pub trait KindVisitor {
    /// What the visit returns.
    type Output;
    /// Called with the layout of the kind visited.
    fn visit<E: Event>(self) -> Self::Output;
}

/// First kind value free for tests and tools; the reader passes such records through raw.
pub const KIND_USER: u16 = 0x8000;

/// Bits of [`EventHeader::flags`].
pub mod ev_flags {
    /// Variable fields were cut to fit the largest record.
    pub const TRUNCATED: u16 = 1;
    /// A path the program passed was not read: the kernel refused it (`EFAULT`), it lies in
    /// memory that is not readable, or it has no NUL within `PATH_MAX` bytes. Its var field
    /// is empty (`FileOpen`, `FileOp` — both paths of a two-path call —, `FileMeta`, `Exec`,
    /// `Spawn`).
    pub const PATH_UNREADABLE: u16 = 2;
    /// An exec or spawn `argv` (the array or one of its strings; the command of `system` and
    /// `popen`) was not readable, or a string had no NUL within the kernel's limit: the record
    /// carries no argv.
    pub const ARGV_UNREADABLE: u16 = 4;
    /// An exec or spawn `envp` (the array or one of its strings) was not readable; the
    /// environment is never recorded, so only this bit says so.
    pub const ENVP_UNREADABLE: u16 = 8;
    /// A socket address the program passed was not read (refused by the kernel or not
    /// readable): the [`super::Net`] record has family 0 and no address. On a [`super::Dns`]
    /// record: the name or service was not readable, and is empty.
    pub const ADDR_UNREADABLE: u16 = 16;
    /// The times a `utime`-family call was given were not read (the kernel refused a pointer
    /// of the call, or they are not readable): the [`super::FileMeta`] record's times are
    /// zero and mean nothing.
    pub const TIMES_UNREADABLE: u16 = 32;
    /// The attribute name an xattr call was given was not read: the [`super::FileMeta`]
    /// record's name field is empty.
    pub const NAME_UNREADABLE: u16 = 64;

    /// The `*_UNREADABLE` bits with the names readers give them (`path_unreadable`, …).
    pub const UNREADABLE: [(u16, &str); 6] = [
        (PATH_UNREADABLE, "path_unreadable"),
        (ARGV_UNREADABLE, "argv_unreadable"),
        (ENVP_UNREADABLE, "envp_unreadable"),
        (ADDR_UNREADABLE, "addr_unreadable"),
        (TIMES_UNREADABLE, "times_unreadable"),
        (NAME_UNREADABLE, "name_unreadable"),
    ];
}

/// Common first part of every event (40 bytes).
#[derive(
    Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable, PartialEq, Eq,
)]
#[repr(C)]
pub struct EventHeader {
    /// `CLOCK_MONOTONIC` ns; the ring header converts it to wall-clock time.
    pub ts_ns: U64,
    /// Span id of the process image that wrote the record (UUIDv7 bytes).
    pub span: [u8; 16],
    /// Writer's pid.
    pub pid: U32,
    /// Writer's thread id.
    pub tid: U32,
    /// Number of variable fields that follow the fixed part.
    pub var_count: U16,
    /// [`ev_flags`].
    pub flags: U16,
    /// Zero.
    pub reserved: U32,
}

/// Ways a process start came about, and which `SHIM_*` variables it saw
/// (`ProcessStart::start_flags`).
pub mod start_flags {
    /// The image began by exec (the library was loaded by the dynamic linker).
    pub const EXEC: u32 = 1;
    /// The process is a forked child continuing its parent's image.
    pub const FORKED: u32 = 2;
    /// No image of this session started this one (`SUBSTRATE_PARENT_IMAGE` absent or not a
    /// span id): a root of the session's process tree. `parent_image` is zero.
    pub const ROOT: u32 = 4;
    /// `SHIM_PARENT_SPAN` was set in the process's environment: its value is the var field
    /// [`super::process_start_vars::SHIM_PARENT_SPAN`] (empty and unset are told apart by this
    /// bit alone).
    pub const SHIM_PARENT_SPAN: u32 = 8;
    /// `SHIM_SESSION_ID` was set: its value is the var field
    /// [`super::process_start_vars::SHIM_SESSION_ID`].
    pub const SHIM_SESSION_ID: u32 = 16;
    /// Written by the supervisor on the image's behalf (the preload cannot enter it: a static
    /// program): only its process events are recorded. See `crate::supervise`.
    pub const SUPERVISED: u32 = 32;
}

/// Var field indexes of a [`ProcessStart`].
pub mod process_start_vars {
    /// `/proc/self/exe`.
    pub const EXE: usize = 0;
    /// The working directory.
    pub const CWD: usize = 1;
    /// `SHIM_PARENT_SPAN` as the process saw it, byte for byte, cut at
    /// [`super::SHIM_VALUE_MAX`] bytes (empty when unset: see [`super::start_flags`]).
    pub const SHIM_PARENT_SPAN: usize = 2;
    /// `SHIM_SESSION_ID` as the process saw it, likewise.
    pub const SHIM_SESSION_ID: usize = 3;
    /// The first `argv` element; the rest follow.
    pub const ARGV: usize = 4;
}

/// Longest `SHIM_*` value a [`ProcessStart`] keeps; a longer one is cut to this many bytes and
/// the record is flagged [`ev_flags::TRUNCATED`]. Substrate's own values are 36 to 40 bytes.
pub const SHIM_VALUE_MAX: usize = 128;

/// A `SHIM_*` value as a [`ProcessStart`] keeps it: at most [`SHIM_VALUE_MAX`] bytes, and
/// whether it was cut.
pub fn shim_value(v: &[u8]) -> (&[u8], bool) {
    (&v[..v.len().min(SHIM_VALUE_MAX)], v.len() > SHIM_VALUE_MAX)
}

/// Written by every process image at its start: the constructor of an exec'd image, and every
/// forked child (which reports the `SHIM_*` values its image was started with: a forked copy
/// shares its parent's environment).
///
/// Var fields ([`process_start_vars`]): `exe`, `cwd`, the `SHIM_PARENT_SPAN` value, the
/// `SHIM_SESSION_ID` value, then each `argv` element. Both `SHIM_*` fields are always present
/// (empty when the variable is unset; [`start_flags`] says which were set). They are
/// substrate's variables, recorded as seen and never interpreted: the link between images of
/// this session is `parent_image`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ProcessStart {
    /// Common header.
    pub ev: EventHeader,
    /// Parent pid.
    pub ppid: U32,
    /// [`start_flags`].
    pub start_flags: U32,
    /// Span of the process image that started this one: the image that exec'd, spawned or
    /// forked it, passed in the preload's own `SUBSTRATE_PARENT_IMAGE` (zeros: none, see
    /// [`start_flags::ROOT`]).
    pub parent_image: [u8; 16],
    /// The writer slot's start time: an upper bound of the process's start, clock ticks after
    /// boot (RING.md §1.3); exact when a supervisor read it from `/proc`.
    pub start_time: U64,
}

/// A [`ProcessStart`]'s var fields, split.
#[derive(Debug, Clone)]
pub struct StartVars<'a> {
    /// `/proc/self/exe` at start.
    pub exe: &'a [u8],
    /// Working directory at start.
    pub cwd: &'a [u8],
    /// `SHIM_PARENT_SPAN` as the process saw it (`None`: unset).
    pub shim_parent_span: Option<&'a [u8]>,
    /// `SHIM_SESSION_ID` as the process saw it (`None`: unset).
    pub shim_session_id: Option<&'a [u8]>,
    /// The `argv` elements.
    pub argv: Vars<'a>,
}

impl ProcessStart {
    /// Split the var fields of this record. Fields missing from a record cut short read as
    /// empty (a `SHIM_*` variable flagged set keeps `Some(b"")`).
    pub fn split_vars<'a>(&self, mut vars: Vars<'a>) -> StartVars<'a> {
        let flags = self.start_flags.get();
        let exe = vars.next().unwrap_or(b"");
        let cwd = vars.next().unwrap_or(b"");
        let span = vars.next().unwrap_or(b"");
        let session = vars.next().unwrap_or(b"");
        StartVars {
            exe,
            cwd,
            shim_parent_span: (flags & start_flags::SHIM_PARENT_SPAN != 0).then_some(span),
            shim_session_id: (flags & start_flags::SHIM_SESSION_ID != 0).then_some(session),
            argv: vars,
        }
    }
}

/// The [`ProcessStart`] of ring format versions 1 and 2 (88 bytes), kept to read their rings
/// ([`AnyEvent::decode_version`]); this build never writes it. Version 3 replaced the two
/// parsed ids with `parent_image` and the verbatim `SHIM_*` var fields.
///
/// Var fields: `exe`, `cwd`, then each `argv` element.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ProcessStartV2 {
    /// Common header.
    pub ev: EventHeader,
    /// Parent pid.
    pub ppid: U32,
    /// [`start_flags`] (`EXEC`, `FORKED`; `ROOT` when `parent_span` is zero).
    pub start_flags: U32,
    /// `SHIM_PARENT_SPAN` as the process saw it, parsed (zeros: unset or not a span id). The
    /// preload of these versions set it, in every child, to the span of the image that
    /// started the child; so it names the parent image, except at a root of the session,
    /// where it names whatever span the caller passed (substrate's).
    pub parent_span: [u8; 16],
    /// `SHIM_SESSION_ID` as UUID bytes (zeros: unset).
    pub session_id: [u8; 16],
    /// Start time, clock ticks after boot.
    pub start_time: U64,
}

impl ProcessStartV2 {
    /// Split the var fields: `(exe, cwd, argv)`; fields missing from a record cut short read
    /// as empty.
    pub fn split_vars<'a>(&self, mut vars: Vars<'a>) -> (&'a [u8], &'a [u8], Vars<'a>) {
        let exe = vars.next().unwrap_or(b"");
        let cwd = vars.next().unwrap_or(b"");
        (exe, cwd, vars)
    }
}

/// How a process is ending (`ProcessExit::how`).
pub mod exit_how {
    /// `exit()` (atexit handlers run).
    pub const EXIT: u16 = 1;
    /// `_exit()`.
    pub const UNDERSCORE_EXIT: u16 = 2;
    /// `_Exit()`.
    pub const UNDERSCORE_EXIT_C99: u16 = 3;
    /// Return from `main` / library destructor.
    pub const RETURN: u16 = 4;
    /// Killed by a signal (`status` is the signal number), as observed by a waiting parent:
    /// written by the parent, with the child's pid in the header's `pid` and a zero `span`
    /// (the reader finds the child's span from its pid).
    pub const SIGNALED: u16 = 5;
}

/// No var fields.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ProcessExit {
    /// Common header.
    pub ev: EventHeader,
    /// [`exit_how`].
    pub how: U16,
    /// Zero.
    pub reserved: U16,
    /// Exit code, or signal number when `how` is SIGNALED.
    pub status: I32,
}

/// Constants shared with C. `c_consts! { TYPE; NAME = value, … }` (entries may carry docs;
/// values are integer expressions of literals only) makes each entry a `pub const NAME: TYPE`. The files written as one such invocation
/// (`format/src/c/*.rs`, `ringbuf-preload/src/c/*.rs`) are also included by
/// `ringbuf-preload/build.rs`, whose own `c_consts!` writes the same entries as `#define`s for
/// the C shim: one source for both languages.
#[doc(hidden)]
#[macro_export]
macro_rules! c_consts {
    ($t:ty; $($(#[$m:meta])* $name:ident = $v:expr),* $(,)?) => {
        $($(#[$m])* pub const $name: $t = $v;)*
    };
}

/// The function that started a process (exec, spawn and fork records' `op`).
pub mod proc_op {
    // The codes are shared with the preload's C shim, which gets them as `#define`s generated
    // from this file.
    include!("c/proc_op.rs");

    /// The C name of an op code.
    pub fn name(op: u16) -> Option<&'static str> {
        Some(match op {
            EXECVE => "execve",
            EXECV => "execv",
            EXECVP => "execvp",
            EXECVPE => "execvpe",
            EXECL => "execl",
            EXECLP => "execlp",
            EXECLE => "execle",
            FEXECVE => "fexecve",
            EXECVEAT => "execveat",
            POSIX_SPAWN => "posix_spawn",
            POSIX_SPAWNP => "posix_spawnp",
            SYSTEM => "system",
            POPEN => "popen",
            FORK => "fork",
            VFORK => "vfork",
            CLONE => "clone",
            CLONE3 => "clone3",
            _ => return None,
        })
    }
}

/// Why a started program will not be traced (`Exec::untraced`, `Spawn::untraced`).
pub mod untraced {
    /// Statically linked (no `PT_INTERP`): `LD_PRELOAD` is ignored.
    pub const STATIC: u16 = 1;
    /// setuid/setgid: the loader ignores `LD_PRELOAD` in secure-execution mode.
    pub const SETUID: u16 = 2;
    /// File capabilities: secure-execution mode as well.
    pub const SETCAP: u16 = 4;
    /// Not a reason but a remedy: the preload cannot enter the new image (the other bits say
    /// why), and the session's supervisor follows it instead (`ptrace`): its process events
    /// (start, exec, fork, exit) are recorded, its file and network calls are not. Only ever
    /// set with [`STATIC`].
    pub const SUPERVISED: u16 = 0x100;

    /// The reason's name.
    pub fn name(bits: u16) -> &'static str {
        if bits & STATIC != 0 {
            "static"
        } else if bits & SETUID != 0 {
            "setuid"
        } else if bits & SETCAP != 0 {
            "setcap"
        } else {
            "unknown"
        }
    }
}

/// Written before the exec call. Var fields: `path` (as given; empty for `fexecve`), then each
/// `argv` element. The environment is never recorded.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Exec {
    /// Common header.
    pub ev: EventHeader,
    /// [`proc_op`].
    pub op: U16,
    /// [`untraced`] bits; 0 when the new image will be traced.
    pub untraced: U16,
    /// Directory descriptor (`execveat`) or program descriptor (`fexecve`); -100 (`AT_FDCWD`) otherwise.
    pub fd: I32,
    /// `execveat` flags.
    pub at_flags: I32,
    /// Zero.
    pub reserved: U32,
}

/// Written when an exec call returned. No var fields.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ExecFailed {
    /// Common header.
    pub ev: EventHeader,
    /// Stream position of the [`Exec`] record this answers.
    pub exec_pos: U64,
    /// The errno the call failed with.
    pub errno: I32,
    /// Zero.
    pub reserved: U32,
}

/// Written after the call returns. Var fields: `path` (`/bin/sh` for `system`/`popen`), then
/// each `argv` element (`sh -c COMMAND` for `system`/`popen`).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Spawn {
    /// Common header.
    pub ev: EventHeader,
    /// [`proc_op`].
    pub op: U16,
    /// [`untraced`] bits.
    pub untraced: U16,
    /// Child pid, or -1.
    pub child_pid: I32,
    /// errno when the call failed, else 0 (`posix_spawn` returns it; `system` reports -1/errno).
    pub errno: I32,
    /// `system`: the wait status it returned; otherwise 0.
    pub status: I32,
}

/// Written by the parent after a fork-like call returned. No var fields (the child writes its
/// own [`ProcessStart`] with [`start_flags::FORKED`]).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Fork {
    /// Common header.
    pub ev: EventHeader,
    /// [`proc_op`].
    pub op: U16,
    /// Zero.
    pub reserved: U16,
    /// Child pid, or -1.
    pub child_pid: I32,
    /// errno when it failed, else 0.
    pub errno: I32,
    /// Zero.
    pub reserved2: U32,
}

/// The function that opened a file (`FileOpen::op`).
pub mod open_op {
    /// `open`/`open64`/`__open_2`/`__open64_2`.
    pub const OPEN: u16 = 1;
    /// `openat`/`openat64`/`__openat_2`/`__openat64_2`.
    pub const OPENAT: u16 = 2;
    /// `creat`/`creat64`.
    pub const CREAT: u16 = 3;
    /// `fopen`/`fopen64`.
    pub const FOPEN: u16 = 4;
    /// `freopen`/`freopen64`.
    pub const FREOPEN: u16 = 5;
    /// `mkstemp`/`mkostemp`/`mkstemps`/`mkostemps` (and `64` variants): path is the name created.
    pub const MKSTEMP: u16 = 6;
    /// `opendir` (a directory opened for reading).
    pub const OPENDIR: u16 = 7;
    /// `tmpfile`/`tmpfile64`: an unnamed temporary file (empty path).
    pub const TMPFILE: u16 = 8;

    /// The C name.
    pub fn name(op: u16) -> Option<&'static str> {
        Some(match op {
            OPEN => "open",
            OPENAT => "openat",
            CREAT => "creat",
            FOPEN => "fopen",
            FREOPEN => "freopen",
            MKSTEMP => "mkstemp",
            OPENDIR => "opendir",
            TMPFILE => "tmpfile",
            _ => return None,
        })
    }
}

/// Var fields: `path` as the program gave it.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct FileOpen {
    /// Common header.
    pub ev: EventHeader,
    /// [`open_op`].
    pub op: U16,
    /// 1 when `mode` is meaningful (`O_CREAT` or `O_TMPFILE` given).
    pub has_mode: U16,
    /// Open flags (`fopen` modes translated to the flags they imply).
    pub flags: I32,
    /// Creation mode.
    pub mode: U32,
    /// Directory descriptor for `openat`, -100 (`AT_FDCWD`) otherwise.
    pub dirfd: I32,
    /// Resulting descriptor, or -1.
    pub fd: I32,
    /// errno when it failed, else 0.
    pub errno: I32,
}

/// Path operations (`FileOp::op`).
pub mod file_op {
    /// `unlink`/`unlinkat` (without `AT_REMOVEDIR`).
    pub const UNLINK: u16 = 1;
    /// `rmdir`/`unlinkat(AT_REMOVEDIR)`.
    pub const RMDIR: u16 = 2;
    /// `mkdir`/`mkdirat`.
    pub const MKDIR: u16 = 3;
    /// `rename`/`renameat`/`renameat2`.
    pub const RENAME: u16 = 4;
    /// `link`/`linkat`.
    pub const LINK: u16 = 5;
    /// `symlink`/`symlinkat` (path = target, path2 = link).
    pub const SYMLINK: u16 = 6;
    /// `truncate` (written by older builds only, with the low 32 bits of the length in
    /// `mode`; truncation is now a [`super::FileMeta`] record).
    pub const TRUNCATE: u16 = 7;
    /// `chdir`.
    pub const CHDIR: u16 = 8;
    /// `fchdir` (`dirfd` is the descriptor; no path).
    pub const FCHDIR: u16 = 9;
    /// `scandir`/`scandir64`/`scandirat`: a directory opened and listed (`result` is the
    /// number of entries).
    pub const SCANDIR: u16 = 10;

    /// The operation's name.
    pub fn name(op: u16) -> Option<&'static str> {
        Some(match op {
            UNLINK => "unlink",
            RMDIR => "rmdir",
            MKDIR => "mkdir",
            RENAME => "rename",
            LINK => "link",
            SYMLINK => "symlink",
            TRUNCATE => "truncate",
            CHDIR => "chdir",
            FCHDIR => "fchdir",
            SCANDIR => "scandir",
            _ => return None,
        })
    }
}

/// Var fields: `path`, then `path2` for rename/link/symlink.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct FileOp {
    /// Common header.
    pub ev: EventHeader,
    /// [`file_op`].
    pub op: U16,
    /// Zero.
    pub reserved: U16,
    /// Directory descriptor of `path` (`*at` calls; the descriptor for `fchdir`), else -100.
    pub dirfd: I32,
    /// Directory descriptor of `path2`, else -100.
    pub dirfd2: I32,
    /// Call flags (`unlinkat`, `renameat2`, `linkat`).
    pub flags: I32,
    /// `mkdir` mode (older builds: `truncate` length, low 32 bits).
    pub mode: U32,
    /// Return value.
    pub result: I32,
    /// errno when it failed, else 0.
    pub errno: I32,
    /// Zero.
    pub reserved2: U32,
}

/// What a [`FileMeta`] record changed (`FileMeta::op`).
pub mod meta_op {
    /// The size (`truncate`, `ftruncate`): `value` is the length.
    pub const TRUNCATE: u16 = 1;
    /// The mode (`chmod` family): `value` is the mode.
    pub const CHMOD: u16 = 2;
    /// The owner and group (`chown` family): `uid`, `gid`.
    pub const CHOWN: u16 = 3;
    /// The access and modification times (`utime` family): the `atime_*`, `mtime_*` fields.
    pub const UTIME: u16 = 4;
    /// An extended attribute set (`setxattr` family): `value` is the value's size, the second
    /// var field the attribute's name.
    pub const SETXATTR: u16 = 5;
    /// An extended attribute removed (`removexattr` family): the second var field is its name.
    pub const REMOVEXATTR: u16 = 6;

    /// The event type the drain writes for it (`file_truncate`, `file_chmod`, …).
    pub fn event_type(op: u16) -> Option<&'static str> {
        Some(match op {
            TRUNCATE => "file_truncate",
            CHMOD => "file_chmod",
            CHOWN => "file_chown",
            UTIME => "file_utime",
            SETXATTR => "file_setxattr",
            REMOVEXATTR => "file_removexattr",
            _ => return None,
        })
    }
}

/// The function that made a [`FileMeta`] change (`FileMeta::call`). A `64` variant has the
/// code of its plain name.
pub mod meta_call {
    use super::meta_op;

    /// `truncate`, `truncate64`.
    pub const TRUNCATE: u16 = 1;
    /// `ftruncate`, `ftruncate64`.
    pub const FTRUNCATE: u16 = 2;
    /// `chmod`.
    pub const CHMOD: u16 = 3;
    /// `fchmod`.
    pub const FCHMOD: u16 = 4;
    /// `fchmodat`.
    pub const FCHMODAT: u16 = 5;
    /// `lchmod`.
    pub const LCHMOD: u16 = 6;
    /// `chown`.
    pub const CHOWN: u16 = 7;
    /// `fchown`.
    pub const FCHOWN: u16 = 8;
    /// `lchown`.
    pub const LCHOWN: u16 = 9;
    /// `fchownat`.
    pub const FCHOWNAT: u16 = 10;
    /// `utimensat`.
    pub const UTIMENSAT: u16 = 11;
    /// `futimens`.
    pub const FUTIMENS: u16 = 12;
    /// `utimes`.
    pub const UTIMES: u16 = 13;
    /// `utime`.
    pub const UTIME: u16 = 14;
    /// `futimes`.
    pub const FUTIMES: u16 = 15;
    /// `lutimes`.
    pub const LUTIMES: u16 = 16;
    /// `futimesat`.
    pub const FUTIMESAT: u16 = 17;
    /// `setxattr`.
    pub const SETXATTR: u16 = 18;
    /// `lsetxattr`.
    pub const LSETXATTR: u16 = 19;
    /// `fsetxattr`.
    pub const FSETXATTR: u16 = 20;
    /// `removexattr`.
    pub const REMOVEXATTR: u16 = 21;
    /// `lremovexattr`.
    pub const LREMOVEXATTR: u16 = 22;
    /// `fremovexattr`.
    pub const FREMOVEXATTR: u16 = 23;

    /// The C name and the [`meta_op`] of a call code.
    pub fn describe(call: u16) -> Option<(&'static str, u16)> {
        use meta_op as o;
        Some(match call {
            TRUNCATE => ("truncate", o::TRUNCATE),
            FTRUNCATE => ("ftruncate", o::TRUNCATE),
            CHMOD => ("chmod", o::CHMOD),
            FCHMOD => ("fchmod", o::CHMOD),
            FCHMODAT => ("fchmodat", o::CHMOD),
            LCHMOD => ("lchmod", o::CHMOD),
            CHOWN => ("chown", o::CHOWN),
            FCHOWN => ("fchown", o::CHOWN),
            LCHOWN => ("lchown", o::CHOWN),
            FCHOWNAT => ("fchownat", o::CHOWN),
            UTIMENSAT => ("utimensat", o::UTIME),
            FUTIMENS => ("futimens", o::UTIME),
            UTIMES => ("utimes", o::UTIME),
            UTIME => ("utime", o::UTIME),
            FUTIMES => ("futimes", o::UTIME),
            LUTIMES => ("lutimes", o::UTIME),
            FUTIMESAT => ("futimesat", o::UTIME),
            SETXATTR => ("setxattr", o::SETXATTR),
            LSETXATTR => ("lsetxattr", o::SETXATTR),
            FSETXATTR => ("fsetxattr", o::SETXATTR),
            REMOVEXATTR => ("removexattr", o::REMOVEXATTR),
            LREMOVEXATTR => ("lremovexattr", o::REMOVEXATTR),
            FREMOVEXATTR => ("fremovexattr", o::REMOVEXATTR),
            _ => return None,
        })
    }

    /// The C name of a call code.
    pub fn name(call: u16) -> Option<&'static str> {
        describe(call).map(|(n, _)| n)
    }
}

/// Bits of [`FileMeta::meta_flags`].
pub mod meta_flags {
    /// The call named no path: it acted on the descriptor `fd` (`fchmod`, `ftruncate`,
    /// `futimens`, `fsetxattr`, …, and `futimesat` with a NULL path).
    pub const FD: u16 = 1;
}

/// `tv_nsec` values of `utimensat` with a meaning of their own (`FileMeta::atime_nsec`,
/// `mtime_nsec`), as Linux defines them.
pub mod utime_nsec {
    /// Set this time to the current time.
    pub const NOW: i32 = (1 << 30) - 1;
    /// Leave this time unchanged.
    pub const OMIT: i32 = (1 << 30) - 2;
    /// What a hook records for a `tv_nsec` (or `tv_usec` × 1000) that is neither a valid
    /// nanosecond count nor one of the above (the call failed with `EINVAL`).
    pub const INVALID: i32 = -1;
}

/// A change of a file's size, mode, owner, times or extended attributes, written after the
/// call returns.
///
/// Var fields: `path` as the program gave it (empty for a call on a descriptor: see
/// [`meta_flags::FD`]), then, for [`meta_op::SETXATTR`] and [`meta_op::REMOVEXATTR`], the
/// attribute's name. The attribute's value is never recorded.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct FileMeta {
    /// Common header.
    pub ev: EventHeader,
    /// [`meta_op`]: what changed.
    pub op: U16,
    /// [`meta_call`]: the function called.
    pub call: U16,
    /// The descriptor the call acted on ([`meta_flags::FD`]), or the directory descriptor of
    /// an `*at` call's path, else -100 (`AT_FDCWD`).
    pub fd: I32,
    /// The call's flags argument as given: `AT_SYMLINK_NOFOLLOW`, `AT_EMPTY_PATH` (`*at`
    /// calls), `XATTR_CREATE`, `XATTR_REPLACE` (`setxattr` family); 0 for calls without one.
    pub flags: I32,
    /// Return value.
    pub result: I32,
    /// errno when it failed, else 0.
    pub errno: I32,
    /// [`meta_op::CHOWN`]: the new owner, `u32::MAX` (-1) to leave it unchanged.
    pub uid: U32,
    /// [`meta_op::CHOWN`]: the new group, `u32::MAX` (-1) to leave it unchanged.
    pub gid: U32,
    /// [`meta_op::TRUNCATE`]: the length (an `off_t`, two's complement); [`meta_op::CHMOD`]:
    /// the mode; [`meta_op::SETXATTR`]: the value's size in bytes; else 0.
    pub value: U64,
    /// [`meta_op::UTIME`]: the access time's seconds since the epoch.
    pub atime_sec: I64,
    /// [`meta_op::UTIME`]: the modification time's seconds since the epoch.
    pub mtime_sec: I64,
    /// [`meta_op::UTIME`]: the access time's nanoseconds, or a [`utime_nsec`] value. A NULL
    /// times argument is recorded as [`utime_nsec::NOW`] for both (Linux treats them alike).
    pub atime_nsec: I32,
    /// [`meta_op::UTIME`]: the modification time's nanoseconds, or a [`utime_nsec`] value.
    pub mtime_nsec: I32,
    /// [`meta_flags`].
    pub meta_flags: U16,
    /// Zero.
    pub reserved: U16,
}

/// Socket calls (`Net::op`).
pub mod net_op {
    /// `connect`.
    pub const CONNECT: u16 = 1;
    /// `bind`.
    pub const BIND: u16 = 2;
    /// `accept`.
    pub const ACCEPT: u16 = 3;
    /// `accept4`.
    pub const ACCEPT4: u16 = 4;
    /// `sendto` with a destination.
    pub const SENDTO: u16 = 5;
    /// `sendmsg` with a destination.
    pub const SENDMSG: u16 = 6;

    /// The call's name.
    pub fn name(op: u16) -> Option<&'static str> {
        Some(match op {
            CONNECT => "connect",
            BIND => "bind",
            ACCEPT => "accept",
            ACCEPT4 => "accept4",
            SENDTO => "sendto",
            SENDMSG => "sendmsg",
            _ => return None,
        })
    }
}

/// Var fields: the socket path for `AF_UNIX` (raw `sun_path` bytes), else none.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Net {
    /// Common header.
    pub ev: EventHeader,
    /// [`net_op`].
    pub op: U16,
    /// Address family (`AF_INET`, `AF_INET6`, `AF_UNIX`, …).
    pub family: U16,
    /// The socket descriptor.
    pub fd: I32,
    /// Return value (`accept*`: the new descriptor; `sendto`: bytes sent).
    pub result: I32,
    /// errno when it failed, else 0.
    pub errno: I32,
    /// Port, host order (0 for `AF_UNIX`).
    pub port: U16,
    /// Zero.
    pub reserved: U16,
    /// Address: IPv4 in the first 4 bytes, IPv6 in all 16.
    pub addr: [u8; 16],
    /// Zero.
    pub reserved2: U32,
}

/// One resolved address inside a [`Dns`] record's third var field (20 bytes each).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct DnsAddr {
    /// `AF_INET` or `AF_INET6`.
    pub family: U16,
    /// Port, host order.
    pub port: U16,
    /// Address bytes (IPv4 in the first 4).
    pub addr: [u8; 16],
}

/// Var fields: `node` (empty when NULL), `service` (empty when NULL), then the addresses as
/// packed [`DnsAddr`] entries (at most 16 are kept).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Dns {
    /// Common header.
    pub ev: EventHeader,
    /// `getaddrinfo`'s return value (0 or an `EAI_*` code).
    pub result: I32,
    /// errno for `EAI_SYSTEM`, else 0.
    pub errno: I32,
    /// Number of addresses returned in all (may exceed those kept).
    pub naddrs: U32,
    /// Zero.
    pub reserved: U32,
}

/// Bits of [`ObjectLoad::flags`].
pub mod object_flags {
    /// The object was in the dynamic loader's list when this image's library started: mapped
    /// before the program ran (its `DT_NEEDED` libraries, the preloaded ones, the loader
    /// itself). Without it, the object was found later: loaded by `dlopen` (or by a library
    /// the program `dlopen`'d), or, in a forked child, loaded after the fork.
    pub const AT_START: u32 = 1;
}

/// A shared object of the process's dynamic loader list, written once per process image and
/// name: at the image's start for every object the loader mapped, then for every object found
/// in the list later (an object unloaded and loaded again is not written again). The program itself (it is the `exe` of the image's
/// `process_start`) and the vDSO (no file) are not written. A forked child has its parent
/// image's objects and writes only those that appear after the fork.
///
/// Var fields: `path`, the object's name as the loader keeps it (`dl_phdr_info::dlpi_name`,
/// `link_map::l_name`): the path it was opened by, absolute or relative to the working
/// directory of the time it was loaded.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ObjectLoad {
    /// Common header.
    pub ev: EventHeader,
    /// Load bias: where the object was mapped, as the difference between its addresses in
    /// memory and in its file (`dlpi_addr`, `l_addr`).
    pub base: U64,
    /// [`object_flags`].
    pub flags: U32,
    /// Zero.
    pub reserved: U32,
}

/// A fixed event layout: its kind and access to its common header, which is its first field.
/// Implemented for each layout by the kinds table (`record_kinds!` above).
pub trait Event: FromBytes + IntoBytes + KnownLayout + Immutable + Sized {
    /// The record kind this layout is written under.
    const KIND: Kind;
    /// The common header.
    fn ev(&self) -> &EventHeader;
}

/// Size of a var field's length prefix.
pub const VAR_PREFIX: usize = 4;

/// How var fields will be laid out within a size budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarPlan {
    /// Bytes the var fields take (prefixes included).
    pub bytes: usize,
    /// Number of fields written.
    pub count: usize,
    /// Whether anything was cut.
    pub truncated: bool,
}

/// Plan var fields into at most `budget` bytes: keep fields in order while they fit, cut the
/// first one that does not (if its prefix fits), drop the rest. No allocation.
pub fn plan_vars<'a, I>(vars: I, budget: usize) -> VarPlan
where
    I: Iterator<Item = &'a [u8]>,
{
    let mut plan = VarPlan {
        bytes: 0,
        count: 0,
        truncated: false,
    };
    for v in vars {
        if plan.truncated {
            continue;
        }
        let left = budget - plan.bytes;
        if plan.count >= u16::MAX as usize || left < VAR_PREFIX {
            plan.truncated = true;
            continue;
        }
        let take = v.len().min(left - VAR_PREFIX);
        plan.bytes += VAR_PREFIX + take;
        plan.count += 1;
        plan.truncated = take < v.len();
    }
    plan
}

/// Why a record could not be decoded as an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Kind is not a known event.
    UnknownKind(u16),
    /// Payload shorter than the fixed part of its kind.
    Short,
    /// A var field's length runs past the record.
    BadVar,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::UnknownKind(k) => write!(f, "unknown record kind {k}"),
            DecodeError::Short => write!(f, "record shorter than its fixed part"),
            DecodeError::BadVar => write!(f, "variable field runs past the record"),
        }
    }
}

/// The var fields of a decoded event. Iterating checks every length against the record.
#[derive(Debug, Clone)]
pub struct Vars<'a> {
    rest: &'a [u8],
    left: u16,
    bad: bool,
}

impl<'a> Vars<'a> {
    /// Fields over `rest`, declared `count`.
    pub fn new(rest: &'a [u8], count: u16) -> Self {
        Vars {
            rest,
            left: count,
            bad: false,
        }
    }
    /// Whether iteration stopped at a field whose length ran past the record.
    pub fn is_bad(&self) -> bool {
        self.bad
    }
    /// Check every field without keeping them.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let mut it = self.clone();
        for _ in it.by_ref() {}
        if it.bad {
            Err(DecodeError::BadVar)
        } else {
            Ok(())
        }
    }
}

impl<'a> Iterator for Vars<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 || self.bad {
            return None;
        }
        let Some((len, rest)) = self.rest.split_first_chunk::<VAR_PREFIX>() else {
            self.bad = true;
            return None;
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() {
            self.bad = true;
            return None;
        }
        let (v, rest) = rest.split_at(len);
        self.rest = rest;
        self.left -= 1;
        Some(v)
    }
}

/// Decode `payload` (a record after its ring header) as event `E`: the fixed part in place,
/// and its var fields (already checked).
pub fn decode<E: Event>(payload: &[u8]) -> Result<(&E, Vars<'_>), DecodeError> {
    let (fixed, rest) = E::ref_from_prefix(payload).map_err(|_| DecodeError::Short)?;
    let vars = Vars::new(rest, fixed.ev().var_count.get());
    vars.validate()?;
    Ok((fixed, vars))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_the_documented_sizes() {
        assert_eq!(size_of::<EventHeader>(), 40);
        assert_eq!(size_of::<ProcessStart>(), 72);
        assert_eq!(size_of::<ProcessStartV2>(), 88);
        assert_eq!(size_of::<ProcessExit>(), 48);
        assert_eq!(size_of::<Exec>(), 56);
        assert_eq!(size_of::<ExecFailed>(), 56);
        assert_eq!(size_of::<Spawn>(), 56);
        assert_eq!(size_of::<Fork>(), 56);
        assert_eq!(size_of::<FileOpen>(), 64);
        assert_eq!(size_of::<FileOp>(), 72);
        assert_eq!(size_of::<FileMeta>(), 104);
        assert_eq!(size_of::<Net>(), 80);
        assert_eq!(size_of::<DnsAddr>(), 20);
        assert_eq!(size_of::<Dns>(), 56);
        assert_eq!(size_of::<ObjectLoad>(), 56);
    }

    #[test]
    fn the_kinds_table_agrees_with_itself() {
        for (i, &k) in Kind::ALL.iter().enumerate() {
            assert_eq!(Kind::from_u16(k as u16), Some(k));
            assert!(Kind::ALL[..i].iter().all(|&o| o as u16 != k as u16));
            assert!(k as u16 != 0 && (k as u16) < KIND_USER, "{k:?}");
        }
        assert_eq!(Kind::from_u16(0), None);
        assert_eq!(Kind::from_u16(KIND_USER), None);
        assert_eq!(Kind::Dns.name(), "Dns");
        assert_eq!(Kind::Net.fixed_size(), size_of::<Net>());
        assert!(Kind::FileOp.has_vars() && !Kind::Fork.has_vars());
        assert_eq!(<FileOpen as Event>::KIND, Kind::FileOpen);
        let e = ProcessExit {
            ev: EventHeader {
                var_count: 2.into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut b = e.as_bytes().to_vec();
        assert_eq!(
            AnyEvent::decode(Kind::ProcessExit as u16, &b).map(|_| ()),
            Err(DecodeError::BadVar),
            "a kind without var fields still has its declared ones checked"
        );
        b.extend_from_slice(&[0; 2 * VAR_PREFIX]);
        let any = AnyEvent::decode(Kind::ProcessExit as u16, &b).unwrap();
        assert!(matches!(any, AnyEvent::ProcessExit(_)));
        assert_eq!(
            (any.kind(), any.ev().var_count.get()),
            (Kind::ProcessExit, 2)
        );
        assert!(any.vars().is_none());
        assert_eq!(
            AnyEvent::decode(KIND_USER, &b).map(|_| ()),
            Err(DecodeError::UnknownKind(KIND_USER))
        );
    }

    /// `RING.md` §2.2 lists every kind with its number, name, fixed size and var fields.
    #[test]
    fn ring_md_lists_the_kinds_of_the_table() {
        let doc = include_str!("../RING.md");
        let rows: Vec<Vec<&str>> = doc
            .lines()
            .filter_map(|l| l.strip_prefix('|'))
            .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>())
            .filter(|c| {
                c.len() >= 4 && c[0].parse::<u16>().is_ok() && c[2].parse::<usize>().is_ok()
            })
            .collect();
        let listed: Vec<(u16, &str, usize, bool)> = rows
            .iter()
            .map(|c| {
                (
                    c[0].parse().unwrap(),
                    c[1],
                    c[2].parse().unwrap(),
                    !c[3].starts_with('—'),
                )
            })
            .collect();
        let table: Vec<(u16, &str, usize, bool)> = Kind::ALL
            .iter()
            .map(|&k| (k as u16, k.name(), k.fixed_size(), k.has_vars()))
            .collect();
        assert_eq!(listed, table);
    }

    #[test]
    fn plan_cuts_the_first_field_that_does_not_fit_and_drops_the_rest() {
        let f: [&[u8]; 3] = [b"abcd", b"efghij", b"k"];
        assert_eq!(
            plan_vars(f.iter().copied(), 100),
            VarPlan {
                bytes: 23,
                count: 3,
                truncated: false
            }
        );
        assert_eq!(
            plan_vars(f.iter().copied(), 12),
            VarPlan {
                bytes: 12,
                count: 2,
                truncated: true
            }
        );
        assert_eq!(
            plan_vars(f.iter().copied(), 9),
            VarPlan {
                bytes: 8,
                count: 1,
                truncated: true
            }
        );
    }

    #[test]
    fn process_start_vars_split_with_shim_values_told_unset_from_empty() {
        let fields: [&[u8]; 6] = [b"/bin/sh", b"/tmp", b"", b"ses_x", b"sh", b"-c"];
        let mut b = vec![];
        for f in fields {
            b.extend_from_slice(&(f.len() as u32).to_le_bytes());
            b.extend_from_slice(f);
        }
        let mut e = ProcessStart {
            start_flags: (start_flags::EXEC | start_flags::SHIM_SESSION_ID).into(),
            ..Default::default()
        };
        let sv = e.split_vars(Vars::new(&b, 6));
        assert_eq!((sv.exe, sv.cwd), (&b"/bin/sh"[..], &b"/tmp"[..]));
        assert_eq!(sv.shim_parent_span, None);
        assert_eq!(sv.shim_session_id, Some(&b"ses_x"[..]));
        assert_eq!(sv.argv.collect::<Vec<_>>(), [&b"sh"[..], b"-c"]);
        // Set but empty; and a record cut before its SHIM fields.
        e.start_flags = (start_flags::SHIM_PARENT_SPAN | start_flags::SHIM_SESSION_ID).into();
        let sv = e.split_vars(Vars::new(&b, 6));
        assert_eq!(sv.shim_parent_span, Some(&b""[..]));
        let sv = e.split_vars(Vars::new(&b, 2));
        assert_eq!(sv.shim_session_id, Some(&b""[..]));
        assert_eq!(sv.argv.count(), 0);
        assert_eq!(
            shim_value(&[b'a'; 200]),
            (&[b'a'; SHIM_VALUE_MAX][..], true)
        );
        assert_eq!(shim_value(b"spn_1"), (&b"spn_1"[..], false));
    }

    #[test]
    fn version_1_and_2_process_starts_decode_with_their_own_layout() {
        let e = ProcessStartV2 {
            ev: EventHeader {
                var_count: 3.into(),
                ..Default::default()
            },
            parent_span: [1; 16],
            session_id: [2; 16],
            ..Default::default()
        };
        let mut b = e.as_bytes().to_vec();
        for f in [&b"/bin/sh"[..], b"/tmp", b"sh"] {
            b.extend_from_slice(&(f.len() as u32).to_le_bytes());
            b.extend_from_slice(f);
        }
        let kind = Kind::ProcessStart as u16;
        for version in [1, 2] {
            let any = AnyEvent::decode_version(version, kind, &b).unwrap();
            assert_eq!(any.kind(), Kind::ProcessStart);
            let AnyEvent::ProcessStartV2(got, vars) = any else {
                panic!("{any:?}")
            };
            assert_eq!((got.parent_span, got.session_id), ([1; 16], [2; 16]));
            let (exe, cwd, argv) = got.split_vars(vars);
            assert_eq!((exe, cwd), (&b"/bin/sh"[..], &b"/tmp"[..]));
            assert_eq!(argv.collect::<Vec<_>>(), [&b"sh"[..]]);
        }
        // Version 3 reads the same bytes as its own layout: a different record altogether.
        assert!(!matches!(
            AnyEvent::decode_version(3, kind, &b),
            Ok(AnyEvent::ProcessStartV2(..))
        ));
        // Other kinds decode alike in every version.
        let exit = ProcessExit::default();
        let any = AnyEvent::decode_version(1, Kind::ProcessExit as u16, exit.as_bytes()).unwrap();
        assert!(matches!(any, AnyEvent::ProcessExit(_)));
    }

    #[test]
    fn vars_reject_lengths_that_run_past_the_record() {
        let mut b = vec![];
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(b"abc");
        b.extend_from_slice(&9u32.to_le_bytes());
        b.extend_from_slice(b"xy");
        let v = Vars::new(&b, 2);
        assert_eq!(v.validate(), Err(DecodeError::BadVar));
        assert_eq!(
            Vars::new(&b, 1).collect::<Vec<_>>(),
            vec![b"abc".as_slice()]
        );
    }
}
