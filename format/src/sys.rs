//! The few system calls the crate makes, issued with `syscall(2)` directly.
//!
//! The preload library interposes `open`, `openat` and friends; calling those exported names
//! from inside it would come back into its own hooks. Raw syscalls never do, and they touch no
//! libc state except `errno`, which every function here restores before returning, so calling
//! them from a hook leaves the traced program's `errno` as it was.
//!
//! None of these run on the recording path except [`pid_exists`], and that only on the cold
//! overwrite-mode path that finds a record whose writer may be dead.

use core::ffi::CStr;

/// The calling thread's `errno` location.
fn errno_loc() -> *mut i32 {
    // SAFETY: glibc's __errno_location never fails and returns this thread's errno.
    unsafe { libc::__errno_location() }
}

/// Run `f`, then put `errno` back as it was; returns `f`'s result and the errno `f` left.
fn keep_errno<T>(f: impl FnOnce() -> T) -> (T, i32) {
    // SAFETY: the pointer is this thread's errno, valid for the thread's lifetime.
    let saved = unsafe { *errno_loc() };
    let r = f();
    // SAFETY: as above.
    let e = unsafe { core::mem::replace(&mut *errno_loc(), saved) };
    (r, e)
}

/// A raw syscall's result: `Ok(value)` or `Err(errno)`.
pub type SysResult = Result<i64, i32>;

fn check(r: (i64, i32)) -> SysResult {
    if r.0 < 0 {
        Err(r.1)
    } else {
        Ok(r.0)
    }
}

/// `openat(AT_FDCWD, path, flags, mode)`.
pub fn open(path: &CStr, flags: i32, mode: u32) -> SysResult {
    // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
    check(keep_errno(|| unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            mode as libc::c_uint,
        )
    }))
}

/// `close(fd)`.
pub fn close(fd: i32) {
    // SAFETY: closing a descriptor we opened; errors are irrelevant here.
    let _ = keep_errno(|| unsafe { libc::syscall(libc::SYS_close, fd) });
}

/// `fstat(fd)`.
pub fn fstat(fd: i32) -> Result<libc::stat, i32> {
    let mut st = core::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `st` is valid for writes of a `struct stat`.
    check(keep_errno(|| unsafe {
        libc::syscall(libc::SYS_fstat, fd, st.as_mut_ptr())
    }))?;
    // SAFETY: fstat succeeded and filled the structure (it was zeroed before anyway).
    Ok(unsafe { st.assume_init() })
}

/// `read(fd, buf)`, retried on `EINTR`.
pub fn read(fd: i32, buf: &mut [u8]) -> SysResult {
    loop {
        // SAFETY: `buf` is valid for writes of its length.
        let r = check(keep_errno(|| unsafe {
            libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len())
        }));
        if r != Err(libc::EINTR) {
            return r;
        }
    }
}

/// Whether a process with this pid exists (`kill(pid, 0)` is not `ESRCH`). Pids are reused, so
/// `true` can be wrong; callers only use `false` as proof of death.
pub fn pid_exists(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 sends nothing; it only checks for existence.
    let r = keep_errno(|| unsafe { libc::syscall(libc::SYS_kill, pid as i32, 0) });
    !(r.0 < 0 && r.1 == libc::ESRCH)
}

/// `getpid()`.
pub fn getpid() -> u32 {
    // SAFETY: always succeeds.
    unsafe { libc::syscall(libc::SYS_getpid) as u32 }
}

/// `gettid()`.
pub fn gettid() -> u32 {
    // SAFETY: always succeeds.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

/// Fill `buf` from `getrandom(GRND_NONBLOCK)`; false if the kernel could not.
pub fn getrandom(buf: &mut [u8]) -> bool {
    // SAFETY: `buf` is valid for writes of its length.
    let r = keep_errno(|| unsafe {
        libc::syscall(
            libc::SYS_getrandom,
            buf.as_mut_ptr(),
            buf.len(),
            libc::GRND_NONBLOCK,
        )
    });
    r.0 == buf.len() as i64
}

/// `geteuid()`.
pub fn geteuid() -> u32 {
    // SAFETY: always succeeds.
    unsafe { libc::syscall(libc::SYS_geteuid) as u32 }
}

/// `clock_gettime(clock)` in ns. Goes through libc, which uses the vDSO (no syscall) for the
/// monotonic and realtime clocks on every mainstream clocksource.
#[inline(always)]
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid for writes; these clocks always exist, so errno is never touched.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// An upper bound of the calling process's start time, in the unit of `/proc/PID/stat` field
/// 22 (clock ticks after boot): the boot-time clock now, rounded up. No system call (vDSO clock,
/// `getauxval`). A process started at or before now, and the kernel rounds its start time down,
/// so field 22 of this process is at most the value returned; a process that reuses this pid
/// later starts later, and its field 22 exceeds the value once a clock tick or two have passed
/// (RING.md §1.3, §5).
pub fn start_time_bound() -> u64 {
    // SAFETY: getauxval has no preconditions; 0 means absent.
    let hz = match unsafe { libc::getauxval(libc::AT_CLKTCK) } {
        0 => 100,
        hz => hz,
    };
    let ns = clock_ns(libc::CLOCK_BOOTTIME) as u128;
    (ns * hz as u128).div_ceil(1_000_000_000) as u64
}

/// Start time of process `pid` (clock ticks after boot, `/proc/PID/stat` field 22), read
/// without allocating. `None` if the process does not exist or the file is unreadable.
pub fn process_start_time(pid: u32) -> Option<u64> {
    // "/proc/" + up to 10 digits + "/stat" + NUL
    let mut path = [0u8; 32];
    let mut n = 0;
    for &b in b"/proc/" {
        path[n] = b;
        n += 1;
    }
    let mut digits = [0u8; 10];
    let mut d = 0;
    let mut v = pid;
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        path[n] = digits[d];
        n += 1;
    }
    for &b in b"/stat" {
        path[n] = b;
        n += 1;
    }
    let path = CStr::from_bytes_until_nul(&path).ok()?;
    let fd = open(path, libc::O_RDONLY | libc::O_CLOEXEC, 0).ok()? as i32;
    let mut buf = [0u8; 1024];
    let got = read(fd, &mut buf);
    close(fd);
    parse_stat_start_time(&buf[..got.ok()? as usize])
}

/// Field 22 of a `/proc/PID/stat` line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after the last `)`.
pub fn parse_stat_start_time(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    // After ")": " S ppid ..." -> field 3 is the first token; field 22 is token index 19.
    let field = stat[close + 1..]
        .split(|&b| b == b' ')
        .filter(|t| !t.is_empty())
        .nth(19)?;
    let mut v: u64 = 0;
    for &b in field {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((b - b'0') as u64)?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_start_time_counts_fields_after_the_last_parenthesis() {
        let line =
            b"42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        assert_eq!(parse_stat_start_time(line), Some(987654));
        assert_eq!(parse_stat_start_time(b"42 (x) S 1"), None);
    }

    #[test]
    #[cfg_attr(miri, ignore = "raw system calls")]
    fn own_start_time_is_readable_and_errno_is_kept() {
        // SAFETY: this thread's errno.
        unsafe { *errno_loc() = 1234 };
        assert!(process_start_time(getpid()).is_some());
        let exact = process_start_time(getpid()).unwrap();
        let bound = start_time_bound();
        assert!(exact <= bound, "{exact} <= {bound}");
        assert!(!pid_exists(0));
        // SAFETY: as above.
        assert_eq!(unsafe { *errno_loc() }, 1234);
    }
}
