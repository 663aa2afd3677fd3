//! Files: `open*` (plain, 64-bit, fortified, `creat*`, `fopen*`, `freopen*`, `mkstemp`
//! family, `tmpfile*`, `opendir`), the path
//! mutations (rename, unlink, mkdir, rmdir, link, symlink) and `chdir`/`fchdir`, which let
//! the drain resolve relative paths without a system call here. Changes of a file's size,
//! mode, owner, times and extended attributes are in `hooks/meta.rs`.
//!
//! Paths are read after the real call, and only as far as its outcome shows them readable
//! ([`readable::after`]): a call that failed with `EFAULT` has its path recorded empty and
//! flagged, whichever argument the kernel refused, and one that failed with an error proving
//! nothing (a flag check's `EINVAL`) has its path probed first. A path is never read past
//! `PATH_MAX` bytes, the most the kernel reads.

use core::ffi::{c_char, c_int, c_uint, c_void};

use format::records::{ev_flags, file_op, open_op, FileOp, FileOpen};
use libc::{mode_t, FILE};

use crate::readable::{self, Arg, Proof};
use crate::real::call_real;
use crate::{emit, errno, guard, lifecycle};

/// Whether an `open` with these flags takes a mode argument.
#[inline(always)]
fn needs_mode(flags: c_int) -> bool {
    flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE
}

/// Call `real`, then record an open of `path` with its outcome.
///
/// # Safety
/// `path` is the pointer the program passed (any value: it is read only as far as the call's
/// outcome shows it readable).
#[inline(always)]
unsafe fn opened(
    op: u16,
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: Option<c_uint>,
    real: impl FnOnce() -> c_int,
) -> c_int {
    let Some((_, img)) = lifecycle::recording() else {
        return real();
    };
    let fd = real();
    // The call's errno: recorded, and set back when `e` drops, after the record.
    let e = errno::Saved::now();
    // SAFETY: the proof is the outcome of the call `path` was given to.
    let p = unsafe { readable::path_after(path, readable::after(Arg::Path, fd < 0, e.get())) };
    let mut ev = FileOpen {
        ev: emit::header(img),
        op: op.into(),
        has_mode: (mode.is_some() as u16).into(),
        flags: flags.into(),
        mode: mode.unwrap_or(0).into(),
        dirfd: dirfd.into(),
        fd: fd.into(),
        errno: if fd < 0 { e.get() } else { 0 }.into(),
    };
    if p.is_none() {
        ev.ev.flags = ev_flags::PATH_UNREADABLE.into();
    }
    emit::event(img, &ev, core::iter::once(p.unwrap_or(b"")));
    fd
}

/// The `sym` codes of [`substrate_open_hook`], shared with the C shim (which gets them as
/// generated `#define`s).
pub(crate) mod open_sym {
    use format::c_consts;
    include!("../c/open_sym.rs");
}

/// Entry from the C shim for `open`, `open64`, `openat`, `openat64` (variadic); `mode` is
/// meaningful only with `O_CREAT` or `O_TMPFILE`.
///
/// # Safety
/// C contract of `open`.
#[no_mangle]
pub unsafe extern "C" fn substrate_open_hook(
    sym: c_int,
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    let m = needs_mode(flags).then_some(mode);
    // SAFETY: forwarded to the real function with the caller's arguments.
    unsafe {
        match sym {
            open_sym::OPEN => opened(open_op::OPEN, libc::AT_FDCWD, path, flags, m, || {
                call_real!(open(path, flags, mode))
            }),
            open_sym::OPEN64 => opened(open_op::OPEN, libc::AT_FDCWD, path, flags, m, || {
                call_real!(open64(path, flags, mode))
            }),
            open_sym::OPENAT => opened(open_op::OPENAT, dirfd, path, flags, m, || {
                call_real!(openat(dirfd, path, flags, mode))
            }),
            _ => {
                debug_assert_eq!(sym, open_sym::OPENAT64);
                opened(open_op::OPENAT, dirfd, path, flags, m, || {
                    call_real!(openat64(dirfd, path, flags, mode))
                })
            }
        }
    }
}

macro_rules! fortified {
    ($($name:ident, $op:expr, $at:tt;)*) => {$(
        fortified!(@one $name, $op, $at);
    )*};
    (@one $name:ident, $op:expr, path) => {
        /// Fortified `open` (`-D_FORTIFY_SOURCE`): no mode argument.
        ///
        /// # Safety
        /// C contract of the function.
        #[no_mangle]
        pub unsafe extern "C" fn $name(path: *const c_char, flags: c_int) -> c_int {
            // SAFETY: forwarded.
            unsafe { opened($op, libc::AT_FDCWD, path, flags, None, || call_real!($name(path, flags))) }
        }
    };
    (@one $name:ident, $op:expr, at) => {
        /// Fortified `openat` (`-D_FORTIFY_SOURCE`): no mode argument.
        ///
        /// # Safety
        /// C contract of the function.
        #[no_mangle]
        pub unsafe extern "C" fn $name(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
            // SAFETY: forwarded.
            unsafe { opened($op, dirfd, path, flags, None, || call_real!($name(dirfd, path, flags))) }
        }
    };
}

fortified! {
    __open_2, open_op::OPEN, path;
    __open64_2, open_op::OPEN, path;
    __openat_2, open_op::OPENAT, at;
    __openat64_2, open_op::OPENAT, at;
}

const CREAT_FLAGS: c_int = libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC;

/// `creat(2)`.
///
/// # Safety
/// C contract of `creat`.
#[no_mangle]
pub unsafe extern "C" fn creat(path: *const c_char, mode: mode_t) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        opened(
            open_op::CREAT,
            libc::AT_FDCWD,
            path,
            CREAT_FLAGS,
            Some(mode),
            || call_real!(creat(path, mode)),
        )
    }
}

/// `creat64(2)`.
///
/// # Safety
/// C contract of `creat64`.
#[no_mangle]
pub unsafe extern "C" fn creat64(path: *const c_char, mode: mode_t) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        opened(
            open_op::CREAT,
            libc::AT_FDCWD,
            path,
            CREAT_FLAGS,
            Some(mode),
            || call_real!(creat64(path, mode)),
        )
    }
}

/// The most of an `fopen` mode glibc reads before it opens the file: the access letter and
/// six flag characters.
const FOPEN_MODE_READ: usize = 7;

/// The `open` flags an `fopen` mode string implies (`r`, `w`, `a`, then `+`, `x`, `e`).
/// Reads no more of `mode` than glibc's `fopen` does before its open.
///
/// # Safety
/// `mode` is NULL or a C string readable up to its NUL or 7 bytes (glibc reads as much).
unsafe fn fopen_flags(mode: *const c_char) -> c_int {
    // SAFETY: caller's contract.
    let m = unsafe { readable::cstr_max(mode, FOPEN_MODE_READ) };
    let plus = m
        .iter()
        .skip(1)
        .take_while(|&&c| c != b',')
        .any(|&c| c == b'+');
    let access = if plus {
        libc::O_RDWR
    } else if m.first() == Some(&b'r') {
        libc::O_RDONLY
    } else {
        libc::O_WRONLY
    };
    let mut f = access
        | match m.first() {
            Some(b'w') => libc::O_CREAT | libc::O_TRUNC,
            Some(b'a') => libc::O_CREAT | libc::O_APPEND,
            _ => 0,
        };
    for &c in m.iter().skip(1).take_while(|&&c| c != b',') {
        match c {
            b'x' => f |= libc::O_EXCL,
            b'e' => f |= libc::O_CLOEXEC,
            _ => {}
        }
    }
    f
}

/// Call a stdio open and record it as an open of the descriptor it got.
///
/// # Safety
/// `path`, `mode`: valid C strings (or NULL where the function allows it).
unsafe fn fopened(
    op: u16,
    path: *const c_char,
    mode: *const c_char,
    real: impl FnOnce() -> *mut FILE,
) -> *mut FILE {
    if lifecycle::recording().is_none() {
        return real();
    }
    // SAFETY: caller's contract.
    let flags = unsafe { fopen_flags(mode) };
    // SAFETY: forwarded.
    unsafe { fopened_as(op, path, flags, real) }
}

/// Call a stdio open and record it with the given open flags.
///
/// # Safety
/// `path`: NULL or a valid C string.
unsafe fn fopened_as(
    op: u16,
    path: *const c_char,
    flags: c_int,
    real: impl FnOnce() -> *mut FILE,
) -> *mut FILE {
    if lifecycle::recording().is_none() {
        return real();
    }
    let creates = flags & libc::O_CREAT != 0;
    let mut fp = core::ptr::null_mut();
    // SAFETY: forwarded; the guard keeps an fopen that calls the exported open from
    // recording twice.
    unsafe {
        opened(
            op,
            libc::AT_FDCWD,
            path,
            flags,
            creates.then_some(0o666),
            || {
                fp = guard::hold(real);
                if fp.is_null() {
                    -1
                } else {
                    libc::fileno(fp)
                }
            },
        )
    };
    fp
}

/// `fopen(3)`.
///
/// # Safety
/// C contract of `fopen`.
#[no_mangle]
pub unsafe extern "C" fn fopen(path: *const c_char, mode: *const c_char) -> *mut FILE {
    // SAFETY: forwarded.
    unsafe { fopened(open_op::FOPEN, path, mode, || call_real!(fopen(path, mode))) }
}

/// `fopen64(3)`.
///
/// # Safety
/// C contract of `fopen64`.
#[no_mangle]
pub unsafe extern "C" fn fopen64(path: *const c_char, mode: *const c_char) -> *mut FILE {
    // SAFETY: forwarded.
    unsafe {
        fopened(open_op::FOPEN, path, mode, || {
            call_real!(fopen64(path, mode))
        })
    }
}

/// `freopen(3)` (a NULL path reopens the same file with a new mode: nothing to record).
///
/// # Safety
/// C contract of `freopen`.
#[no_mangle]
pub unsafe extern "C" fn freopen(
    path: *const c_char,
    mode: *const c_char,
    s: *mut FILE,
) -> *mut FILE {
    if path.is_null() {
        return call_real!(freopen(path, mode, s));
    }
    // SAFETY: forwarded.
    unsafe {
        fopened(open_op::FREOPEN, path, mode, || {
            call_real!(freopen(path, mode, s))
        })
    }
}

/// `freopen64(3)`.
///
/// # Safety
/// C contract of `freopen64`.
#[no_mangle]
pub unsafe extern "C" fn freopen64(
    path: *const c_char,
    mode: *const c_char,
    s: *mut FILE,
) -> *mut FILE {
    if path.is_null() {
        return call_real!(freopen64(path, mode, s));
    }
    // SAFETY: forwarded.
    unsafe {
        fopened(open_op::FREOPEN, path, mode, || {
            call_real!(freopen64(path, mode, s))
        })
    }
}

const MKSTEMP_FLAGS: c_int = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL;

macro_rules! mkstemp_hooks {
    ($($name:ident($($arg:ident: $t:ty),*) extra $extra:expr;)*) => {$(
        /// Temporary file creation: recorded as an open of the name it created, after the call
        /// (the template is filled in by then).
        ///
        /// # Safety
        /// C contract of the function.
        #[no_mangle]
        pub unsafe extern "C" fn $name(tmpl: *mut c_char $(, $arg: $t)*) -> c_int {
            let extra: c_int = $extra;
            // SAFETY: forwarded; the template is a valid C string per contract.
            unsafe {
                opened(open_op::MKSTEMP, libc::AT_FDCWD, tmpl, MKSTEMP_FLAGS | extra, Some(0o600), || {
                    call_real!($name(tmpl $(, $arg)*))
                })
            }
        }
    )*};
}

mkstemp_hooks! {
    mkstemp() extra 0;
    mkstemp64() extra 0;
    mkostemp(flags: c_int) extra flags;
    mkostemp64(flags: c_int) extra flags;
    mkstemps(suffixlen: c_int) extra { let _ = suffixlen; 0 };
    mkstemps64(suffixlen: c_int) extra { let _ = suffixlen; 0 };
    mkostemps(suffixlen: c_int, flags: c_int) extra { let _ = suffixlen; flags };
    mkostemps64(suffixlen: c_int, flags: c_int) extra { let _ = suffixlen; flags };
}

macro_rules! tmpfile_hooks {
    ($($name:ident),*) => {$(
        #[doc = concat!("`", stringify!($name), "(3)`: an unnamed temporary file, recorded with an")]
        /// empty path.
        ///
        /// # Safety
        /// C contract.
        #[no_mangle]
        pub unsafe extern "C" fn $name() -> *mut FILE {
            let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL;
            // SAFETY: forwarded; no path.
            unsafe { fopened_as(open_op::TMPFILE, core::ptr::null(), flags, || call_real!($name())) }
        }
    )*};
}

tmpfile_hooks!(tmpfile, tmpfile64);

/// `opendir(3)`: a directory opened for reading.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn opendir(path: *const c_char) -> *mut libc::DIR {
    if lifecycle::recording().is_none() {
        return call_real!(opendir(path));
    }
    let mut dir = core::ptr::null_mut();
    // SAFETY: forwarded; the guard keeps an opendir calling the exported open from recording twice.
    unsafe {
        opened(
            open_op::OPENDIR,
            libc::AT_FDCWD,
            path,
            libc::O_RDONLY | libc::O_DIRECTORY,
            None,
            || {
                dir = guard::hold(|| call_real!(opendir(path)));
                if dir.is_null() {
                    -1
                } else {
                    libc::dirfd(dir)
                }
            },
        )
    };
    dir
}

/// A path operation's arguments, for its record.
#[derive(Clone, Copy)]
struct PathOp {
    op: u16,
    dirfd: c_int,
    path: *const c_char,
    dirfd2: c_int,
    path2: *const c_char,
    flags: c_int,
    mode: u32,
}

impl PathOp {
    fn new(op: u16, path: *const c_char) -> PathOp {
        PathOp {
            op,
            dirfd: libc::AT_FDCWD,
            path,
            dirfd2: libc::AT_FDCWD,
            path2: core::ptr::null(),
            flags: 0,
            mode: 0,
        }
    }
}

/// Call `real`, then record the path operation with its outcome.
///
/// # Safety
/// The paths are the pointers the program passed (any value: read only as far as the call's
/// outcome shows them readable).
#[inline(always)]
unsafe fn path_op(p: PathOp, real: impl FnOnce() -> c_int) -> c_int {
    let Some((_, img)) = lifecycle::recording() else {
        return real();
    };
    let r = real();
    // The call's errno: recorded, and set back when `e` drops, after the record.
    let e = errno::Saved::now();
    let mut proof = readable::after(Arg::Path, r < 0, e.get());
    if proof == Proof::Read && r < 0 && p.op == file_op::LINK && p.flags & libc::AT_EMPTY_PATH != 0
    {
        // Linux 5.x to 6.9 fail linkat(AT_EMPTY_PATH) without CAP_DAC_READ_SEARCH with ENOENT
        // before looking at either path.
        proof = Proof::Unknown;
    }
    // SAFETY: the proof is the outcome of the call the paths were given to.
    let (a, b) = unsafe {
        (
            readable::path_after(p.path, proof),
            readable::path_after(p.path2, proof),
        )
    };
    let mut ev = FileOp {
        ev: emit::header(img),
        op: p.op.into(),
        reserved: 0.into(),
        dirfd: p.dirfd.into(),
        dirfd2: p.dirfd2.into(),
        flags: p.flags.into(),
        mode: p.mode.into(),
        result: r.into(),
        errno: if r < 0 { e.get() } else { 0 }.into(),
        reserved2: 0.into(),
    };
    if a.is_none() || b.is_none() {
        ev.ev.flags = ev_flags::PATH_UNREADABLE.into();
    }
    let n = if p.path2.is_null() { 1 } else { 2 };
    let vars = [a.unwrap_or(b""), b.unwrap_or(b"")];
    emit::event(img, &ev, vars.into_iter().take(n));
    r
}

/// `rename(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn rename(old: *const c_char, new: *const c_char) -> c_int {
    let p = PathOp {
        path2: new,
        ..PathOp::new(file_op::RENAME, old)
    };
    // SAFETY: forwarded.
    unsafe { path_op(p, || call_real!(rename(old, new))) }
}

/// `renameat(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn renameat(
    ofd: c_int,
    old: *const c_char,
    nfd: c_int,
    new: *const c_char,
) -> c_int {
    let p = PathOp {
        dirfd: ofd,
        dirfd2: nfd,
        path2: new,
        ..PathOp::new(file_op::RENAME, old)
    };
    // SAFETY: forwarded.
    unsafe { path_op(p, || call_real!(renameat(ofd, old, nfd, new))) }
}

/// `renameat2(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn renameat2(
    ofd: c_int,
    old: *const c_char,
    nfd: c_int,
    new: *const c_char,
    flags: c_uint,
) -> c_int {
    let p = PathOp {
        dirfd: ofd,
        dirfd2: nfd,
        path2: new,
        flags: flags as c_int,
        ..PathOp::new(file_op::RENAME, old)
    };
    // SAFETY: forwarded.
    unsafe { path_op(p, || call_real!(renameat2(ofd, old, nfd, new, flags))) }
}

/// `unlink(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn unlink(path: *const c_char) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        path_op(PathOp::new(file_op::UNLINK, path), || {
            call_real!(unlink(path))
        })
    }
}

/// `unlinkat(2)` (`AT_REMOVEDIR` makes it an rmdir).
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    let op = if flags & libc::AT_REMOVEDIR != 0 {
        file_op::RMDIR
    } else {
        file_op::UNLINK
    };
    let p = PathOp {
        dirfd,
        flags,
        ..PathOp::new(op, path)
    };
    // SAFETY: forwarded.
    unsafe { path_op(p, || call_real!(unlinkat(dirfd, path, flags))) }
}

/// `mkdir(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn mkdir(path: *const c_char, mode: mode_t) -> c_int {
    let p = PathOp {
        mode,
        ..PathOp::new(file_op::MKDIR, path)
    };
    // SAFETY: forwarded.
    unsafe { path_op(p, || call_real!(mkdir(path, mode))) }
}

/// `mkdirat(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn mkdirat(dirfd: c_int, path: *const c_char, mode: mode_t) -> c_int {
    let p = PathOp {
        dirfd,
        mode,
        ..PathOp::new(file_op::MKDIR, path)
    };
    // SAFETY: forwarded.
    unsafe { path_op(p, || call_real!(mkdirat(dirfd, path, mode))) }
}

/// `rmdir(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn rmdir(path: *const c_char) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        path_op(PathOp::new(file_op::RMDIR, path), || {
            call_real!(rmdir(path))
        })
    }
}

/// `link(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn link(old: *const c_char, new: *const c_char) -> c_int {
    let p = PathOp {
        path2: new,
        ..PathOp::new(file_op::LINK, old)
    };
    // SAFETY: forwarded.
    unsafe { path_op(p, || call_real!(link(old, new))) }
}

/// `linkat(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn linkat(
    ofd: c_int,
    old: *const c_char,
    nfd: c_int,
    new: *const c_char,
    flags: c_int,
) -> c_int {
    let p = PathOp {
        dirfd: ofd,
        dirfd2: nfd,
        path2: new,
        flags,
        ..PathOp::new(file_op::LINK, old)
    };
    // SAFETY: forwarded.
    unsafe { path_op(p, || call_real!(linkat(ofd, old, nfd, new, flags))) }
}

/// `symlink(2)`: `path` is the target text, `path2` the link created.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn symlink(target: *const c_char, linkpath: *const c_char) -> c_int {
    let p = PathOp {
        path2: linkpath,
        ..PathOp::new(file_op::SYMLINK, target)
    };
    // SAFETY: forwarded.
    unsafe { path_op(p, || call_real!(symlink(target, linkpath))) }
}

/// `symlinkat(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn symlinkat(
    target: *const c_char,
    nfd: c_int,
    linkpath: *const c_char,
) -> c_int {
    let p = PathOp {
        dirfd2: nfd,
        path2: linkpath,
        ..PathOp::new(file_op::SYMLINK, target)
    };
    // SAFETY: forwarded.
    unsafe { path_op(p, || call_real!(symlinkat(target, nfd, linkpath))) }
}

/// `chdir(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn chdir(path: *const c_char) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        path_op(PathOp::new(file_op::CHDIR, path), || {
            call_real!(chdir(path))
        })
    }
}

/// `fchdir(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn fchdir(fd: c_int) -> c_int {
    let p = PathOp {
        dirfd: fd,
        ..PathOp::new(file_op::FCHDIR, core::ptr::null())
    };
    // SAFETY: forwarded.
    unsafe { path_op(p, || call_real!(fchdir(fd))) }
}

macro_rules! scandir_hooks {
    ($($name:ident),*) => {$(
        #[doc = concat!("`", stringify!($name), "(3)`: a directory opened and listed (its open is")]
        /// libc-internal). The filter and comparison functions are the program's; they run
        /// inside the real call.
        ///
        /// # Safety
        /// C contract.
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            path: *const c_char,
            list: *mut c_void,
            filter: *mut c_void,
            compar: *mut c_void,
        ) -> c_int {
            // SAFETY: forwarded.
            unsafe {
                path_op(PathOp::new(file_op::SCANDIR, path), || {
                    call_real!($name(path, list, filter, compar))
                })
            }
        }
    )*};
}

scandir_hooks!(scandir, scandir64);

/// `scandirat(3)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn scandirat(
    dirfd: c_int,
    path: *const c_char,
    list: *mut c_void,
    filter: *mut c_void,
    compar: *mut c_void,
) -> c_int {
    let p = PathOp {
        dirfd,
        ..PathOp::new(file_op::SCANDIR, path)
    };
    // SAFETY: forwarded.
    unsafe {
        path_op(p, || {
            call_real!(scandirat(dirfd, path, list, filter, compar))
        })
    }
}
