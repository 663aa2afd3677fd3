//! Reading the program's pointer arguments without trusting them.
//!
//! A program may hand a libc function a pointer the kernel refuses — `open((char *)1, …)`, an
//! argv element in a `PROT_NONE` page, a path that runs into such a page before its NUL — and
//! expect `-1`/`EFAULT`: the test suites of libc, the kernel and language runtimes do it on
//! purpose. The library must never touch such memory where the program without it would not
//! have crashed. Two tools:
//!
//! - [`after`]: what a call that returned proves about the pointers it was given. A successful
//!   call, or one that failed with an error the kernel can only report after copying its path
//!   or address in (`ENOENT`, `EEXIST`, `ECONNREFUSED`, …), read that memory, so the hook may
//!   read the same bytes again, no system call needed: the common case stays on the recording
//!   path's no-syscall promise. `EFAULT` proves the opposite: nothing is read. Any other error
//!   (`EINVAL` from a flag check made before the path is read, `EBADF`, a seccomp filter's
//!   `EPERM`) proves nothing, and the memory is [probed](Pages) first.
//! - [`Pages`]: ask the kernel whether a page is readable, one system call per page, remembered
//!   for the rest of one hook's work. Used before exec and spawn read `argv`/`envp` (paths that
//!   make system calls anyway), and after a call whose outcome proves nothing.
//!
//! The probe is `rt_sigprocmask(how = -1, set = page, NULL, 8)`: the kernel copies the 8-byte
//! set in before it looks at `how`, so an unreadable page gives `EFAULT` and a readable one
//! `EINVAL`, and the signal mask is never changed. It needs no descriptor, allocates nothing, is
//! async-signal-safe, and no seccomp policy filters it (every program calls it), unlike
//! `process_vm_readv`, which systemd's `@system-service` filter leaves out (`@debug`) and whose
//! default action kills the process. Protection is page-granular, so one probe answers for the
//! whole page; 4096 bytes is the smallest page Linux has, which keeps it right on larger ones.
//!
//! Strings are read at most up to the kernel's own limit (`PATH_MAX` for a path,
//! `MAX_ARG_STRLEN` for an argv or envp string): the kernel never reads past it either.

use core::ffi::{c_char, c_int};

use crate::errno;

/// The longest path the kernel reads, its NUL included (`PATH_MAX`).
pub const PATH_MAX: usize = 4096;
/// The longest argv or envp string exec accepts, its NUL included (`MAX_ARG_STRLEN`).
pub const ARG_MAX_STRLEN: usize = 32 * 4096;
/// The longest socket address the kernel copies in (`sizeof(struct sockaddr_storage)`).
pub const SOCKADDR_MAX: usize = 128;

const PAGE: usize = 4096;

/// What a call that returned proves about the pointers the kernel had to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    /// The kernel read them: the hook may read the same bytes.
    Read,
    /// The kernel refused one (`EFAULT`), which one is unknown: read none.
    Refused,
    /// Nothing either way: probe before reading.
    Unknown,
}

/// What kind of pointer argument the kernel copies in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// A path (`getname`).
    Path,
    /// A socket address (`move_addr_to_kernel`) or a `msghdr`.
    Addr,
}

/// What a call that failed (`failed`) with `errno` `e`, or succeeded, proves about its `kind`
/// pointer arguments.
pub fn after(kind: Arg, failed: bool, e: c_int) -> Proof {
    if !failed {
        return Proof::Read;
    }
    if e == libc::EFAULT {
        return Proof::Refused;
    }
    // Errors the kernel can only reach once it has copied the argument in. Not EINVAL (flag
    // and length checks come first), not EBADF/ENOTSOCK (the descriptor is looked up before
    // an address is copied), not EPERM/ENOSYS/ENOMEM (seccomp, libc's own failures).
    let read = match kind {
        Arg::Path => matches!(
            e,
            libc::ENOENT
                | libc::ENOTDIR
                | libc::EEXIST
                | libc::EACCES
                | libc::EISDIR
                | libc::ELOOP
                | libc::ENAMETOOLONG
                | libc::EROFS
                | libc::ENOTEMPTY
                | libc::EXDEV
                | libc::EBUSY
                | libc::ETXTBSY
                | libc::EMLINK
                | libc::ENOSPC
                | libc::EDQUOT
                | libc::EMFILE
                | libc::ENFILE
        ),
        Arg::Addr => matches!(
            e,
            libc::ECONNREFUSED
                | libc::EINPROGRESS
                | libc::EALREADY
                | libc::EISCONN
                | libc::EAGAIN
                | libc::EADDRINUSE
                | libc::EADDRNOTAVAIL
                | libc::EAFNOSUPPORT
                | libc::ENETUNREACH
                | libc::EHOSTUNREACH
                | libc::ETIMEDOUT
                | libc::ECONNRESET
                | libc::ENOENT
                | libc::EACCES
        ),
    };
    if read {
        Proof::Read
    } else {
        Proof::Unknown
    }
}

/// The bytes of the C string at `p` up to its NUL, or `max` bytes if none comes first (empty
/// for NULL). Never reads past `max` bytes.
///
/// # Safety
/// `p` is NULL, or readable up to its NUL or `max` bytes, whichever comes first, for `'a`.
#[inline(always)]
pub unsafe fn cstr_max<'a>(p: *const c_char, max: usize) -> &'a [u8] {
    if p.is_null() {
        return b"";
    }
    // SAFETY: strnlen reads no byte past the NUL or `max` outside the pages holding the bytes
    // before them, which are readable (caller's contract; protection is per page).
    let n = unsafe { libc::strnlen(p, max) };
    // SAFETY: the `n` bytes before the NUL or the limit.
    unsafe { core::slice::from_raw_parts(p.cast::<u8>(), n) }
}

/// A C string examined page by page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Str<'a> {
    /// Readable up to its NUL, which comes within the limit.
    Ok(&'a [u8]),
    /// Readable, but no NUL within the limit (the kernel says `ENAMETOOLONG` or `E2BIG`).
    Unterminated(&'a [u8]),
    /// A byte before the NUL (or the limit) is not readable.
    Unreadable,
}

/// Pages known to be readable, for one hook's work (a small cache on the stack: argv and envp
/// strings usually share a handful of pages).
pub struct Pages {
    known: [usize; 16],
    len: usize,
    next: usize,
}

impl Default for Pages {
    fn default() -> Self {
        Self::new()
    }
}

impl Pages {
    /// Nothing known yet.
    pub const fn new() -> Pages {
        Pages {
            known: [0; 16],
            len: 0,
            next: 0,
        }
    }

    /// Whether the byte at `addr` is readable: asks the kernel once per page.
    pub fn readable(&mut self, addr: usize) -> bool {
        let page = addr & !(PAGE - 1);
        if self.known[..self.len].contains(&page) {
            return true;
        }
        if !probe(page) {
            return false;
        }
        self.known[self.next] = page;
        self.next = (self.next + 1) % self.known.len();
        self.len = (self.len + 1).min(self.known.len());
        true
    }

    /// Whether all of `[addr, addr + n)` is readable.
    pub fn range(&mut self, addr: usize, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        let Some(last) = addr.checked_add(n - 1) else {
            return false;
        };
        let mut a = addr;
        loop {
            if !self.readable(a) {
                return false;
            }
            let next_page = (a & !(PAGE - 1)).wrapping_add(PAGE);
            if next_page == 0 || next_page > last {
                return true;
            }
            a = next_page;
        }
    }

    /// The C string at `p`, read only where readable, at most `max` bytes. NULL is `Ok("")`.
    ///
    /// # Safety
    /// Any `p`: nothing is read before the kernel says its page is readable. The bytes returned
    /// stay valid as long as the program keeps that memory mapped.
    pub unsafe fn cstr<'a>(&mut self, p: *const c_char, max: usize) -> Str<'a> {
        if p.is_null() {
            return Str::Ok(b"");
        }
        let base = p as usize;
        let p = p.cast::<u8>();
        let mut n = 0;
        // A page at a time: check it, then look for the NUL in its part of the string.
        loop {
            if n == max {
                // SAFETY: the `max` bytes just searched, all in readable pages.
                return Str::Unterminated(unsafe { core::slice::from_raw_parts(p, n) });
            }
            let Some(a) = base.checked_add(n) else {
                return Str::Unreadable;
            };
            if !self.readable(a) {
                return Str::Unreadable;
            }
            let chunk = (PAGE - a % PAGE).min(max - n);
            // SAFETY: `chunk` bytes from `a`, all inside its page, which is readable.
            let nul = unsafe { libc::memchr(p.add(n).cast(), 0, chunk) };
            if !nul.is_null() {
                let len = n + (nul as usize - a);
                // SAFETY: the bytes before the NUL, all in readable pages.
                return Str::Ok(unsafe { core::slice::from_raw_parts(p, len) });
            }
            n += chunk;
        }
    }

    /// Whether the NULL-terminated array of C strings at `arr` (an argv or envp) is readable:
    /// every slot up to the NULL, every string up to its NUL within `max` bytes. NULL is
    /// readable (the kernel takes it as empty).
    ///
    /// # Safety
    /// Any `arr`: nothing is read before its page is known readable.
    pub unsafe fn strings(&mut self, arr: *const *const c_char, max: usize) -> bool {
        if arr.is_null() {
            return true;
        }
        let mut slot = arr as usize;
        loop {
            if !self.range(slot, size_of::<*const c_char>()) {
                return false;
            }
            // SAFETY: the slot's bytes are readable (checked above); unaligned is allowed.
            let s = unsafe { (slot as *const *const c_char).read_unaligned() };
            if s.is_null() {
                return true;
            }
            // SAFETY: any pointer.
            if !matches!(unsafe { self.cstr(s, max) }, Str::Ok(_)) {
                return false;
            }
            let Some(n) = slot.checked_add(size_of::<*const c_char>()) else {
                return false;
            };
            slot = n;
        }
    }
}

/// Whether the kernel can read the page at `page` (page aligned): `rt_sigprocmask` with an
/// invalid `how` copies the set in first, so `EFAULT` means unreadable and `EINVAL` readable;
/// the mask is never changed. Any other answer counts as unreadable. `errno` is preserved.
fn probe(page: usize) -> bool {
    // The probe's own errno is read below, then the program's is restored.
    let _e = errno::Saved::now();
    // SAFETY: rt_sigprocmask with an invalid `how` and no old-set pointer changes nothing; the
    // kernel checks the set pointer itself (copy_from_user), so any address is allowed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            -1 as c_int,
            page as *const u8,
            core::ptr::null_mut::<u8>(),
            8usize,
        )
    };
    r == -1 && errno::get() == libc::EINVAL
}

/// A path argument of a call that returned, for its record: its bytes (at most [`PATH_MAX`]),
/// or `None` when it must not or cannot be read.
///
/// # Safety
/// `p` is any pointer the program passed; `proof` is what the call's outcome proves about it.
pub unsafe fn path_after<'a>(p: *const c_char, proof: Proof) -> Option<&'a [u8]> {
    // SAFETY: the caller's contract; the kernel reads a path up to PATH_MAX bytes.
    unsafe { cstr_after(p, proof, PATH_MAX) }
}

/// A string argument of a call that returned, which the kernel reads up to its NUL or `max`
/// bytes: its bytes (at most `max`), or `None` when it must not or cannot be read. NULL is
/// `Some("")`.
///
/// # Safety
/// `p` is any pointer the program passed; `proof` is what the call's outcome proves about it,
/// given that the kernel reads at most `max` bytes of it.
pub unsafe fn cstr_after<'a>(p: *const c_char, proof: Proof, max: usize) -> Option<&'a [u8]> {
    if p.is_null() {
        return Some(b"");
    }
    match proof {
        // SAFETY: the kernel read it up to its NUL or `max` bytes.
        Proof::Read => Some(unsafe { cstr_max(p, max) }),
        Proof::Refused => None,
        // SAFETY: any pointer.
        Proof::Unknown => match unsafe { Pages::new().cstr(p, max) } {
            Str::Ok(b) | Str::Unterminated(b) => Some(b),
            Str::Unreadable => None,
        },
    }
}

/// The `n` bytes at `p`, an argument the kernel copies in whole (a `struct timespec[2]`), of
/// a call that returned: `None` when they must not or cannot be read.
///
/// # Safety
/// `p` is any non-NULL pointer the program passed; `proof` is what the call's outcome proves
/// about those `n` bytes.
pub unsafe fn bytes_after<'a>(p: *const u8, n: usize, proof: Proof) -> Option<&'a [u8]> {
    let ok = match proof {
        Proof::Read => true,
        Proof::Refused => false,
        Proof::Unknown => Pages::new().range(p as usize, n),
    };
    // SAFETY: the kernel (or a probe of every page they lie in) read these `n` bytes.
    ok.then(|| unsafe { core::slice::from_raw_parts(p, n) })
}

/// What [`exec_args`] found of an exec's or spawn's arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecArgs<'a> {
    /// The path up to its NUL, or `None`: unreadable, NULL where the kernel needs a path, or no
    /// NUL within [`PATH_MAX`].
    pub path: Option<&'a [u8]>,
    /// Every `argv` slot and string readable, each string ending within [`ARG_MAX_STRLEN`].
    pub argv: bool,
    /// The same of `envp`.
    pub envp: bool,
}

impl ExecArgs<'_> {
    /// Whether the library may read all of them (and so do its own work for the child).
    pub fn readable(&self) -> bool {
        self.path.is_some() && self.argv && self.envp
    }

    /// The record's [`ev_flags`](format::records::ev_flags) for what was not readable.
    pub fn flags(&self) -> u16 {
        use format::records::ev_flags;
        let mut f = 0;
        if self.path.is_none() {
            f |= ev_flags::PATH_UNREADABLE;
        }
        if !self.argv {
            f |= ev_flags::ARGV_UNREADABLE;
        }
        if !self.envp {
            f |= ev_flags::ENVP_UNREADABLE;
        }
        f
    }
}

/// Check an exec's or spawn's arguments before anything reads them: the path (`NULL` allowed
/// only with `null_path_ok`: `fexecve`, `execveat` with `AT_EMPTY_PATH`), and the `argv` and
/// `envp` arrays with every string. A few system calls (one per page not seen before); exec
/// and spawn make many anyway.
///
/// # Safety
/// Any pointers: nothing is read before the kernel says its page is readable.
pub unsafe fn exec_args<'a>(
    path: *const c_char,
    null_path_ok: bool,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> ExecArgs<'a> {
    let mut pages = Pages::new();
    let path = if path.is_null() {
        null_path_ok.then_some(&b""[..])
    } else {
        // SAFETY: any pointer.
        match unsafe { pages.cstr(path, PATH_MAX) } {
            Str::Ok(b) => Some(b),
            Str::Unterminated(_) | Str::Unreadable => None,
        }
    };
    ExecArgs {
        path,
        // SAFETY: any pointers.
        argv: unsafe { pages.strings(argv, ARG_MAX_STRLEN) },
        // SAFETY: as above.
        envp: unsafe { pages.strings(envp, ARG_MAX_STRLEN) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Map {
        base: *mut u8,
    }

    /// Two pages: the first readable, filled with `a`, the second PROT_NONE.
    fn two_pages() -> Map {
        // SAFETY: a fresh private mapping, unmapped in Drop.
        unsafe {
            let m = libc::mmap(
                core::ptr::null_mut(),
                2 * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(m, libc::MAP_FAILED);
            let base = m.cast::<u8>();
            core::ptr::write_bytes(base, b'a', PAGE);
            assert_eq!(
                libc::mprotect(m.cast::<u8>().add(PAGE).cast(), PAGE, libc::PROT_NONE),
                0
            );
            Map { base }
        }
    }

    impl Drop for Map {
        fn drop(&mut self) {
            // SAFETY: our mapping.
            unsafe { libc::munmap(self.base.cast(), 2 * PAGE) };
        }
    }

    #[test]
    fn probes_tell_readable_from_unreadable_and_keep_errno_and_mask() {
        let m = two_pages();
        // SAFETY: a sigset_t is plain bytes; all zeros is an empty set.
        let mut before: libc::sigset_t = unsafe { core::mem::zeroed() };
        // SAFETY: as above.
        let mut after: libc::sigset_t = unsafe { core::mem::zeroed() };
        // SAFETY: plain mask queries into local sets.
        unsafe { libc::sigprocmask(libc::SIG_BLOCK, core::ptr::null(), &mut before) };
        errno::set(1234);
        let mut p = Pages::new();
        assert!(p.readable(m.base as usize));
        assert!(p.readable(m.base as usize + PAGE - 1));
        assert!(!p.readable(m.base as usize + PAGE));
        assert!(!p.readable(1));
        assert!(!p.readable(usize::MAX - 5));
        assert!(p.range(m.base as usize, PAGE));
        assert!(!p.range(m.base as usize + PAGE - 4, 8));
        assert!(!p.range(usize::MAX - 3, 8));
        assert_eq!(errno::get(), 1234);
        // SAFETY: as above.
        unsafe { libc::sigprocmask(libc::SIG_BLOCK, core::ptr::null(), &mut after) };
        // SAFETY: comparing two initialised sets of the same size.
        let same = unsafe {
            libc::memcmp(
                (&raw const before).cast(),
                (&raw const after).cast(),
                size_of::<libc::sigset_t>(),
            )
        };
        assert_eq!(same, 0, "the signal mask is unchanged");
    }

    #[test]
    fn strings_are_read_only_where_readable_and_within_the_limit() {
        let m = two_pages();
        let mut p = Pages::new();
        // SAFETY: Pages::cstr takes any pointer.
        unsafe {
            let end = m.base.add(PAGE - 3);
            assert_eq!(p.cstr(end.cast(), PATH_MAX), Str::Unreadable);
            *m.base.add(PAGE - 1) = 0;
            assert_eq!(p.cstr(end.cast(), PATH_MAX), Str::Ok(b"aa"));
            assert_eq!(p.cstr(m.base.cast(), 10), Str::Unterminated(b"aaaaaaaaaa"));
            assert_eq!(
                p.cstr(core::ptr::dangling::<c_char>(), PATH_MAX),
                Str::Unreadable
            );
            assert_eq!(p.cstr(core::ptr::null(), PATH_MAX), Str::Ok(b""));
            assert_eq!(cstr_max(m.base.cast(), 5), b"aaaaa");
            let none = m.base.add(PAGE).cast::<c_char>();
            assert_eq!(path_after(none, Proof::Refused), None);
            assert_eq!(path_after(none, Proof::Unknown), None);
            assert_eq!(path_after(end.cast(), Proof::Unknown), Some(&b"aa"[..]));
            assert_eq!(
                cstr_after(m.base.cast(), Proof::Unknown, 4),
                Some(&b"aaaa"[..])
            );
            assert_eq!(cstr_after(none, Proof::Unknown, 4), None);
            assert_eq!(
                cstr_after(core::ptr::null(), Proof::Refused, 4),
                Some(&b""[..])
            );
            assert_eq!(
                bytes_after(end.cast(), 3, Proof::Unknown),
                Some(&b"aa\0"[..])
            );
            assert_eq!(bytes_after(end.cast(), 4, Proof::Unknown), None);
            assert_eq!(bytes_after(m.base, 2, Proof::Refused), None);
            assert_eq!(bytes_after(m.base, 2, Proof::Read), Some(&b"aa"[..]));
        }
    }

    #[test]
    fn arrays_of_strings_need_every_slot_and_string_readable() {
        let m = two_pages();
        let mut p = Pages::new();
        let ok: [*const c_char; 3] = [c"a".as_ptr(), c"bc".as_ptr(), core::ptr::null()];
        // SAFETY: Pages::strings takes any pointer.
        unsafe {
            let none = m.base.add(PAGE).cast::<c_char>();
            let bad: [*const c_char; 3] = [c"a".as_ptr(), none, core::ptr::null()];
            assert!(p.strings(ok.as_ptr(), ARG_MAX_STRLEN));
            assert!(p.strings(core::ptr::null(), ARG_MAX_STRLEN));
            assert!(!p.strings(bad.as_ptr(), ARG_MAX_STRLEN));
            assert!(!p.strings(none.cast(), ARG_MAX_STRLEN));
            assert!(!p.strings(core::ptr::dangling::<*const c_char>(), ARG_MAX_STRLEN));
            // A slot straddling the readable page's end.
            let straddle = m.base.add(PAGE - 4).cast::<*const c_char>();
            assert!(!p.strings(straddle, ARG_MAX_STRLEN));
            assert!(!p.strings(ok.as_ptr(), 1));
        }
    }

    #[test]
    fn outcomes_prove_what_the_kernel_read() {
        assert_eq!(after(Arg::Path, false, 0), Proof::Read);
        assert_eq!(after(Arg::Path, true, libc::EFAULT), Proof::Refused);
        assert_eq!(after(Arg::Path, true, libc::ENOENT), Proof::Read);
        assert_eq!(after(Arg::Path, true, libc::EINVAL), Proof::Unknown);
        assert_eq!(after(Arg::Addr, true, libc::EBADF), Proof::Unknown);
        assert_eq!(after(Arg::Addr, true, libc::ECONNREFUSED), Proof::Read);
        assert_eq!(after(Arg::Addr, true, libc::EFAULT), Proof::Refused);
    }
}
