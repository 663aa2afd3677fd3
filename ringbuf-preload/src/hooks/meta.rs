//! File metadata changes, one [`FileMeta`] record each: the size (`truncate`, `ftruncate` and
//! their `64` forms, with the whole 64-bit length), the mode (`chmod`, `fchmod`, `fchmodat`,
//! `lchmod`), the owner (`chown`, `fchown`, `lchown`, `fchownat`), the times (`utimensat`,
//! `futimens`, `utimes`, `utime`, `futimes`, `lutimes`, `futimesat`) and extended attributes
//! (`setxattr`, `lsetxattr`, `fsetxattr`, `removexattr`, `lremovexattr`, `fremovexattr`).
//! These are what `chmod`, `touch`, `cp -p`, `install`, `tar x` and `truncate` call. glibc
//! exports no `fchmodat2`, so there is none to hook.
//!
//! As for the path operations (`hooks/file.rs`), the program's pointers are read only after
//! the real call, and only as far as its outcome proves the kernel (or libc) read them
//! ([`readable::after`]); what is not proven readable is probed, what the kernel refused
//! (`EFAULT`, which does not say which pointer) is not read at all. Per pointer:
//!
//! - the **path**: as for every path call. An xattr call that failed with `ENODATA` or
//!   `EOPNOTSUPP` looked its path up (those come from the file system). A `utimensat` whose
//!   two times are both `UTIME_OMIT` succeeds without looking at its path: probed.
//! - the **times** (`struct timespec[2]`, `struct timeval[2]`, `struct utimbuf`): the kernel
//!   copies them in before it looks the path up (and glibc's `utimes`, `futimes`, `lutimes`,
//!   `futimesat` and `utime` convert them in user space before the call), so a success or an
//!   error that proves the path was read proves them read too.
//! - the xattr **name** (read by the kernel up to 256 bytes): proven read by success, or by
//!   `ENODATA`, `EEXIST`, `EOPNOTSUPP` (the attribute was looked up by name); else probed.
//!   Kernels before 6.13 look the path up before they copy the name, so `ENOENT` does not
//!   prove it. The value is never read.

use core::ffi::{c_char, c_int, c_void};

use format::records::{ev_flags, meta_call, meta_flags, meta_op, utime_nsec, FileMeta};
use libc::{gid_t, mode_t, off64_t, off_t, size_t, timespec, timeval, uid_t, utimbuf};

use crate::readable::{self, Arg, Proof};
use crate::real::call_real;
use crate::{emit, errno, lifecycle};

/// The most of an xattr name the kernel reads (`XATTR_NAME_MAX + 1`).
const XATTR_NAME_READ: usize = 256;

/// The times argument of a `utime`-family call, as the program passed it.
#[derive(Clone, Copy)]
enum Times {
    /// Not a `utime` call.
    None,
    /// `const struct timespec[2]` (`utimensat`, `futimens`); NULL: both now.
    Spec(*const timespec),
    /// `const struct timeval[2]` (`utimes`, `futimes`, `lutimes`, `futimesat`); NULL: both now.
    Val(*const timeval),
    /// `const struct utimbuf *` (`utime`); NULL: both now.
    Buf(*const utimbuf),
}

impl Times {
    fn is_null(self) -> bool {
        match self {
            Times::None => true,
            Times::Spec(p) => p.is_null(),
            Times::Val(p) => p.is_null(),
            Times::Buf(p) => p.is_null(),
        }
    }
}

/// A metadata change's arguments, for its record.
#[derive(Clone, Copy)]
struct Change {
    call: u16,
    /// The descriptor acted on (`on_fd`), or the directory descriptor of `path`.
    fd: c_int,
    path: *const c_char,
    /// The call names no path: `fd` is the file.
    on_fd: bool,
    flags: c_int,
    value: u64,
    uid: u32,
    gid: u32,
    times: Times,
    /// The xattr name (NULL for other calls).
    name: *const c_char,
}

impl Change {
    /// A call on `path` (relative to the working directory).
    fn path(call: u16, path: *const c_char) -> Change {
        Change {
            call,
            fd: libc::AT_FDCWD,
            path,
            on_fd: false,
            flags: 0,
            value: 0,
            uid: u32::MAX,
            gid: u32::MAX,
            times: Times::None,
            name: core::ptr::null(),
        }
    }

    /// A call on the descriptor `fd`.
    fn fd(call: u16, fd: c_int) -> Change {
        Change {
            fd,
            on_fd: true,
            ..Change::path(call, core::ptr::null())
        }
    }
}

/// A `tv_nsec` as recorded: valid nanoseconds, `UTIME_NOW`, `UTIME_OMIT`, else
/// [`utime_nsec::INVALID`] (the kernel refuses it with `EINVAL`).
fn nsec(n: i64) -> i32 {
    if (0..1_000_000_000).contains(&n)
        || n == utime_nsec::NOW as i64
        || n == utime_nsec::OMIT as i64
    {
        n as i32
    } else {
        utime_nsec::INVALID
    }
}

/// A `tv_usec` as recorded nanoseconds (glibc multiplies it by 1000 for the kernel, which
/// refuses anything out of range, as the `utimes` system call does).
fn usec(u: i64) -> i32 {
    if (0..1_000_000).contains(&u) {
        (u * 1000) as i32
    } else {
        utime_nsec::INVALID
    }
}

/// The two times `(sec, nsec)` a call was given, or `None` when they must not or cannot be
/// read.
///
/// # Safety
/// The pointer in `t` is any pointer the program passed; `proof` is what the call's outcome
/// proves about it.
unsafe fn read_times(t: Times, proof: Proof) -> Option<[(i64, i32); 2]> {
    const NOW: (i64, i32) = (0, utime_nsec::NOW);
    if t.is_null() {
        return Some([NOW, NOW]);
    }
    /// The bytes of `T`s at `p`, read unaligned.
    ///
    /// # Safety
    /// As [`readable::bytes_after`].
    unsafe fn get<T: Copy, const N: usize>(p: *const T, proof: Proof) -> Option<[T; N]> {
        // SAFETY: any pointer, per the caller's proof.
        let b = unsafe { readable::bytes_after(p.cast(), N * size_of::<T>(), proof) }?;
        // SAFETY: `b` holds `N` whole `T`s (plain C structs of integers).
        Some(unsafe { b.as_ptr().cast::<[T; N]>().read_unaligned() })
    }
    // SAFETY: the pointers are the program's, read per `proof`.
    unsafe {
        match t {
            Times::None => None,
            Times::Spec(p) => get::<timespec, 2>(p, proof)
                .map(|[a, m]| [(a.tv_sec, nsec(a.tv_nsec)), (m.tv_sec, nsec(m.tv_nsec))]),
            Times::Val(p) => get::<timeval, 2>(p, proof)
                .map(|[a, m]| [(a.tv_sec, usec(a.tv_usec)), (m.tv_sec, usec(m.tv_usec))]),
            Times::Buf(p) => get::<utimbuf, 1>(p, proof).map(|[b]| [(b.actime, 0), (b.modtime, 0)]),
        }
    }
}

/// Call `real`, then record the change with its outcome.
///
/// # Safety
/// The pointers in `c` are the ones the program passed (any value: read only as far as the
/// call's outcome shows them readable).
#[inline(always)]
unsafe fn changed(c: Change, real: impl FnOnce() -> c_int) -> c_int {
    let Some((_, img)) = lifecycle::recording() else {
        return real();
    };
    let r = real();
    // The call's errno: recorded, and set back when `e` drops, after the record.
    let e = errno::Saved::now();
    let failed = r < 0;
    let op = meta_call::describe(c.call).map_or(0, |(_, op)| op);
    let xattr = op == meta_op::SETXATTR || op == meta_op::REMOVEXATTR;
    let mut path_proof = readable::after(Arg::Path, failed, e.get());
    let mut flags = 0;

    let mut times = [(0, 0); 2];
    if op == meta_op::UTIME {
        // Times are copied in before the path is looked up (or converted by libc before the
        // call): what proves the path read proves them read.
        // SAFETY: the proof is the outcome of the call the times were given to.
        match unsafe { read_times(c.times, path_proof) } {
            Some(t) => times = t,
            None => flags |= ev_flags::TIMES_UNREADABLE,
        }
        let omit = utime_nsec::OMIT;
        if !failed && !c.times.is_null() && times[0].1 == omit && times[1].1 == omit {
            // Nothing to change: the kernel returned before it looked at the path.
            path_proof = Proof::Unknown;
        }
    }
    if xattr && failed && matches!(e.get(), libc::ENODATA | libc::EOPNOTSUPP) {
        path_proof = Proof::Read;
    }
    // SAFETY: the proof is the outcome of the call the path was given to.
    let path = unsafe { readable::path_after(c.path, path_proof) };
    let name = if xattr {
        let proof = match (failed, e.get()) {
            (false, _) => Proof::Read,
            (true, libc::EFAULT) => Proof::Refused,
            (true, libc::ENODATA | libc::EEXIST | libc::EOPNOTSUPP) => Proof::Read,
            _ => Proof::Unknown,
        };
        // SAFETY: the proof is the outcome of the call the name was given to; the kernel
        // reads at most XATTR_NAME_READ bytes of it.
        unsafe { readable::cstr_after(c.name, proof, XATTR_NAME_READ) }
    } else {
        Some(&b""[..])
    };
    if path.is_none() {
        flags |= ev_flags::PATH_UNREADABLE;
    }
    if name.is_none() {
        flags |= ev_flags::NAME_UNREADABLE;
    }
    let mut ev = FileMeta {
        ev: emit::header(img),
        op: op.into(),
        call: c.call.into(),
        fd: c.fd.into(),
        flags: c.flags.into(),
        result: r.into(),
        errno: if failed { e.get() } else { 0 }.into(),
        uid: c.uid.into(),
        gid: c.gid.into(),
        value: c.value.into(),
        atime_sec: times[0].0.into(),
        mtime_sec: times[1].0.into(),
        atime_nsec: times[0].1.into(),
        mtime_nsec: times[1].1.into(),
        meta_flags: if c.on_fd { meta_flags::FD } else { 0 }.into(),
        reserved: 0.into(),
    };
    ev.ev.flags = flags.into();
    let vars = [path.unwrap_or(b""), name.unwrap_or(b"")];
    emit::event(img, &ev, vars.into_iter().take(if xattr { 2 } else { 1 }));
    r
}

// ---- size ----

/// `truncate(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn truncate(path: *const c_char, len: off_t) -> c_int {
    let c = Change {
        value: len as u64,
        ..Change::path(meta_call::TRUNCATE, path)
    };
    // SAFETY: forwarded.
    unsafe { changed(c, || call_real!(truncate(path, len))) }
}

/// `truncate64(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn truncate64(path: *const c_char, len: off64_t) -> c_int {
    let c = Change {
        value: len as u64,
        ..Change::path(meta_call::TRUNCATE, path)
    };
    // SAFETY: forwarded.
    unsafe { changed(c, || call_real!(truncate64(path, len))) }
}

/// `ftruncate(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn ftruncate(fd: c_int, len: off_t) -> c_int {
    let c = Change {
        value: len as u64,
        ..Change::fd(meta_call::FTRUNCATE, fd)
    };
    // SAFETY: forwarded.
    unsafe { changed(c, || call_real!(ftruncate(fd, len))) }
}

/// `ftruncate64(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn ftruncate64(fd: c_int, len: off64_t) -> c_int {
    let c = Change {
        value: len as u64,
        ..Change::fd(meta_call::FTRUNCATE, fd)
    };
    // SAFETY: forwarded.
    unsafe { changed(c, || call_real!(ftruncate64(fd, len))) }
}

// ---- mode ----

/// `chmod(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn chmod(path: *const c_char, mode: mode_t) -> c_int {
    let c = Change {
        value: mode.into(),
        ..Change::path(meta_call::CHMOD, path)
    };
    // SAFETY: forwarded.
    unsafe { changed(c, || call_real!(chmod(path, mode))) }
}

/// `lchmod(3)` (glibc: `fchmodat` with `AT_SYMLINK_NOFOLLOW`, called internally).
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn lchmod(path: *const c_char, mode: mode_t) -> c_int {
    let c = Change {
        value: mode.into(),
        ..Change::path(meta_call::LCHMOD, path)
    };
    // SAFETY: forwarded.
    unsafe { changed(c, || call_real!(lchmod(path, mode))) }
}

/// `fchmod(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn fchmod(fd: c_int, mode: mode_t) -> c_int {
    let c = Change {
        value: mode.into(),
        ..Change::fd(meta_call::FCHMOD, fd)
    };
    // SAFETY: forwarded.
    unsafe { changed(c, || call_real!(fchmod(fd, mode))) }
}

/// `fchmodat(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn fchmodat(
    dirfd: c_int,
    path: *const c_char,
    mode: mode_t,
    flags: c_int,
) -> c_int {
    let c = Change {
        fd: dirfd,
        flags,
        value: mode.into(),
        ..Change::path(meta_call::FCHMODAT, path)
    };
    // SAFETY: forwarded.
    unsafe { changed(c, || call_real!(fchmodat(dirfd, path, mode, flags))) }
}

// ---- owner ----

/// `chown(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn chown(path: *const c_char, uid: uid_t, gid: gid_t) -> c_int {
    let c = Change {
        uid,
        gid,
        ..Change::path(meta_call::CHOWN, path)
    };
    // SAFETY: forwarded.
    unsafe { changed(c, || call_real!(chown(path, uid, gid))) }
}

/// `lchown(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn lchown(path: *const c_char, uid: uid_t, gid: gid_t) -> c_int {
    let c = Change {
        uid,
        gid,
        ..Change::path(meta_call::LCHOWN, path)
    };
    // SAFETY: forwarded.
    unsafe { changed(c, || call_real!(lchown(path, uid, gid))) }
}

/// `fchown(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn fchown(fd: c_int, uid: uid_t, gid: gid_t) -> c_int {
    let c = Change {
        uid,
        gid,
        ..Change::fd(meta_call::FCHOWN, fd)
    };
    // SAFETY: forwarded.
    unsafe { changed(c, || call_real!(fchown(fd, uid, gid))) }
}

/// `fchownat(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn fchownat(
    dirfd: c_int,
    path: *const c_char,
    uid: uid_t,
    gid: gid_t,
    flags: c_int,
) -> c_int {
    let c = Change {
        fd: dirfd,
        flags,
        uid,
        gid,
        ..Change::path(meta_call::FCHOWNAT, path)
    };
    // SAFETY: forwarded.
    unsafe { changed(c, || call_real!(fchownat(dirfd, path, uid, gid, flags))) }
}

// ---- times ----

/// `utimensat(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn utimensat(
    dirfd: c_int,
    path: *const c_char,
    times: *const timespec,
    flags: c_int,
) -> c_int {
    let c = Change {
        fd: dirfd,
        flags,
        times: Times::Spec(times),
        ..Change::path(meta_call::UTIMENSAT, path)
    };
    // SAFETY: forwarded.
    unsafe { changed(c, || call_real!(utimensat(dirfd, path, times, flags))) }
}

/// `futimens(3)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn futimens(fd: c_int, times: *const timespec) -> c_int {
    let c = Change {
        times: Times::Spec(times),
        ..Change::fd(meta_call::FUTIMENS, fd)
    };
    // SAFETY: forwarded.
    unsafe { changed(c, || call_real!(futimens(fd, times))) }
}

/// `utimes(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn utimes(path: *const c_char, times: *const timeval) -> c_int {
    let c = Change {
        times: Times::Val(times),
        ..Change::path(meta_call::UTIMES, path)
    };
    // SAFETY: forwarded.
    unsafe { changed(c, || call_real!(utimes(path, times))) }
}

/// `lutimes(3)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn lutimes(path: *const c_char, times: *const timeval) -> c_int {
    let c = Change {
        times: Times::Val(times),
        ..Change::path(meta_call::LUTIMES, path)
    };
    // SAFETY: forwarded.
    unsafe { changed(c, || call_real!(lutimes(path, times))) }
}

/// `futimes(3)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn futimes(fd: c_int, times: *const timeval) -> c_int {
    let c = Change {
        times: Times::Val(times),
        ..Change::fd(meta_call::FUTIMES, fd)
    };
    // SAFETY: forwarded.
    unsafe { changed(c, || call_real!(futimes(fd, times))) }
}

/// `futimesat(2)` (a NULL path changes the file `dirfd` is open on).
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn futimesat(
    dirfd: c_int,
    path: *const c_char,
    times: *const timeval,
) -> c_int {
    let c = Change {
        fd: dirfd,
        on_fd: path.is_null(),
        times: Times::Val(times),
        ..Change::path(meta_call::FUTIMESAT, path)
    };
    // SAFETY: forwarded.
    unsafe { changed(c, || call_real!(futimesat(dirfd, path, times))) }
}

/// `utime(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn utime(path: *const c_char, times: *const utimbuf) -> c_int {
    let c = Change {
        times: Times::Buf(times),
        ..Change::path(meta_call::UTIME, path)
    };
    // SAFETY: forwarded.
    unsafe { changed(c, || call_real!(utime(path, times))) }
}

// ---- extended attributes ----

macro_rules! setxattr_hooks {
    ($($name:ident, $call:expr, $on:ident: $t:ty, $change:path;)*) => {$(
        #[doc = concat!("`", stringify!($name), "(2)`: the name and the value's size are")]
        /// recorded, never the value.
        ///
        /// # Safety
        /// C contract.
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            $on: $t,
            name: *const c_char,
            value: *const c_void,
            size: size_t,
            flags: c_int,
        ) -> c_int {
            let c = Change {
                name,
                flags,
                value: size as u64,
                ..$change($call, $on)
            };
            // SAFETY: forwarded.
            unsafe { changed(c, || call_real!($name($on, name, value, size, flags))) }
        }
    )*};
}

setxattr_hooks! {
    setxattr, meta_call::SETXATTR, path: *const c_char, Change::path;
    lsetxattr, meta_call::LSETXATTR, path: *const c_char, Change::path;
    fsetxattr, meta_call::FSETXATTR, fd: c_int, Change::fd;
}

macro_rules! removexattr_hooks {
    ($($name:ident, $call:expr, $on:ident: $t:ty, $change:path;)*) => {$(
        #[doc = concat!("`", stringify!($name), "(2)`.")]
        ///
        /// # Safety
        /// C contract.
        #[no_mangle]
        pub unsafe extern "C" fn $name($on: $t, name: *const c_char) -> c_int {
            let c = Change {
                name,
                ..$change($call, $on)
            };
            // SAFETY: forwarded.
            unsafe { changed(c, || call_real!($name($on, name))) }
        }
    )*};
}

removexattr_hooks! {
    removexattr, meta_call::REMOVEXATTR, path: *const c_char, Change::path;
    lremovexattr, meta_call::LREMOVEXATTR, path: *const c_char, Change::path;
    fremovexattr, meta_call::FREMOVEXATTR, fd: c_int, Change::fd;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_recorded_as_given_with_invalid_ones_marked() {
        assert_eq!(nsec(0), 0);
        assert_eq!(nsec(999_999_999), 999_999_999);
        assert_eq!(nsec(1_000_000_000), utime_nsec::INVALID);
        assert_eq!(nsec(-1), utime_nsec::INVALID);
        assert_eq!(nsec(utime_nsec::NOW as i64), utime_nsec::NOW);
        assert_eq!(nsec(utime_nsec::OMIT as i64), utime_nsec::OMIT);
        assert_eq!(
            nsec((1 << 32) + utime_nsec::NOW as i64),
            utime_nsec::INVALID
        );
        assert_eq!(usec(999_999), 999_999_000);
        assert_eq!(usec(1_000_000), utime_nsec::INVALID);
        assert_eq!(usec(i64::MIN), utime_nsec::INVALID);
        let ts = [
            timespec {
                tv_sec: 5,
                tv_nsec: 6,
            },
            timespec {
                tv_sec: -7,
                tv_nsec: utime_nsec::OMIT as i64,
            },
        ];
        // SAFETY: a local array, and NULL.
        unsafe {
            assert_eq!(
                read_times(Times::Spec(ts.as_ptr()), Proof::Read),
                Some([(5, 6), (-7, utime_nsec::OMIT)])
            );
            assert_eq!(read_times(Times::Spec(ts.as_ptr()), Proof::Refused), None);
            let now = (0, utime_nsec::NOW);
            assert_eq!(
                read_times(Times::Val(core::ptr::null()), Proof::Refused),
                Some([now, now])
            );
            let b = utimbuf {
                actime: 1,
                modtime: 2,
            };
            assert_eq!(
                read_times(Times::Buf(&b), Proof::Unknown),
                Some([(1, 0), (2, 0)])
            );
            assert_eq!(
                read_times(Times::Spec(core::ptr::dangling()), Proof::Unknown),
                None
            );
        }
    }
}
