//! Will the program about to be started be traced? The loader ignores `LD_PRELOAD` for static
//! executables (no `PT_INTERP`) and in secure-execution mode (setuid/setgid to another user,
//! file capabilities). The exec and spawn records say so instead of falling silent.
//!
//! Runs only on the exec/spawn path, which makes system calls anyway: it opens the target
//! (`O_CLOEXEC`, closed before returning), reads its ELF header and program headers, and looks
//! for a `security.capability` attribute. Raw syscalls; `errno` is restored.

use core::ffi::{c_char, c_int};

use format::records::untraced;
use format::sys;

use crate::buf::Scratch;
use crate::cstr::cstr;
use crate::errno;

fn raw(r: libc::c_long) -> Option<i64> {
    (r >= 0).then_some(r)
}

/// Why the program at `path` (relative to `dirfd`) will be untraced; 0 if it will be traced or
/// cannot be inspected. With `search`, a `path` without `/` is looked up in `PATH` the way
/// `execvp` does.
///
/// # Safety
/// `path` is a valid C string or NULL.
pub unsafe fn untraced_path(
    s: &mut Scratch,
    dirfd: c_int,
    path: *const c_char,
    search: bool,
) -> u16 {
    // SAFETY: caller's contract.
    let name = unsafe { cstr(path) };
    if name.is_empty() {
        return 0;
    }
    let _e = errno::Saved::now();
    if search && !name.contains(&b'/') {
        // SAFETY: getenv reads the environment; it is not hooked.
        let p = unsafe { libc::getenv(c"PATH".as_ptr()) };
        let dirs = if p.is_null() {
            b"/bin:/usr/bin".as_slice()
        } else {
            // SAFETY: getenv returned a valid C string.
            unsafe { cstr(p) }
        };
        let mut reason = 0;
        for dir in dirs.split(|&c| c == b':') {
            let dir = if dir.is_empty() { b".".as_slice() } else { dir };
            let Some(c) = s.cstring(&[dir, b"/", name]) else {
                break;
            };
            if let Some(r) = inspect_at(libc::AT_FDCWD, c, true) {
                reason = r;
                break;
            }
        }
        reason
    } else {
        inspect_at(dirfd, path, false).unwrap_or(0)
    }
}

/// Why the program open at `fd` (`fexecve`) will be untraced.
pub fn untraced_fd(fd: c_int) -> u16 {
    errno::preserve(|| inspect_fd(fd))
}

/// Open `path` and inspect it; `None` when it is not an executable regular file (with
/// `need_exec`, the `execvp` search goes on).
fn inspect_at(dirfd: c_int, path: *const c_char, need_exec: bool) -> Option<u16> {
    if need_exec {
        // SAFETY: valid C string; faccessat only checks permissions.
        let ok = unsafe { libc::syscall(libc::SYS_faccessat, dirfd, path, libc::X_OK, 0) };
        raw(ok)?;
    }
    // SAFETY: valid C string; the descriptor is closed below.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat,
            dirfd,
            path,
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK,
            0,
        )
    };
    let fd = raw(fd)? as c_int;
    let r = match sys::fstat(fd) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG => Some(inspect(fd, &st)),
        _ => None,
    };
    sys::close(fd);
    r
}

fn pread(fd: c_int, buf: &mut [u8], off: u64) -> usize {
    // SAFETY: buf is valid for writes of its length.
    let r = unsafe { libc::syscall(libc::SYS_pread64, fd, buf.as_mut_ptr(), buf.len(), off) };
    raw(r).unwrap_or(0) as usize
}

fn inspect_fd(fd: c_int) -> u16 {
    match sys::fstat(fd) {
        Ok(st) => inspect(fd, &st),
        Err(_) => 0,
    }
}

/// [`inspect_fd`] with the file's status already read. Asks for the ids only of a
/// setuid/setgid file, and reads the ELF header with the first program headers in one go.
fn inspect(fd: c_int, st: &libc::stat) -> u16 {
    let mut reason = 0;
    // SAFETY: plain id queries.
    let setuid = st.st_mode & libc::S_ISUID != 0
        && st.st_uid as i64 != unsafe { libc::syscall(libc::SYS_geteuid) };
    // SAFETY: as above.
    let setgid = st.st_mode & libc::S_ISGID != 0
        && st.st_gid as i64 != unsafe { libc::syscall(libc::SYS_getegid) };
    if setuid || setgid {
        reason |= untraced::SETUID;
    }
    // SAFETY: a size query (NULL buffer, size 0) of an attribute name.
    let caps = unsafe {
        libc::syscall(
            libc::SYS_fgetxattr,
            fd,
            c"security.capability".as_ptr(),
            core::ptr::null_mut::<u8>(),
            0usize,
        )
    };
    if caps > 0 {
        reason |= untraced::SETCAP;
    }
    if is_static_elf(fd) {
        reason |= untraced::STATIC;
    }
    reason
}

/// An ELF executable without a `PT_INTERP` program header (static, or static-pie).
fn is_static_elf(fd: c_int) -> bool {
    format::elf::is_static_executable(&mut |buf, off| pread(fd, buf, off))
}
