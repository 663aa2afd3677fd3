//! The real functions behind the hooks: what `dlsym(RTLD_NEXT, name)` would return, found by
//! [`crate::symbols`].
//!
//! Each is looked up once, on its first call, in the symbol tables the constructor kept
//! ([`crate::symbols::save_next_objects`]: no walk of the loaded objects, no lock), or by a walk
//! when a hook runs before the constructor (another library's constructor calling `open`). A
//! process start resolves only what the program calls: a start that resolved all hundred
//! would read the libc symbol tables' pages for names most programs never call. The pointer
//! is cached in an atomic; a racing second lookup stores the same value.
//!
//! Calling the exported name from inside this library would come back into the hook, so the
//! library calls the real functions only through these pointers, and makes its own system
//! calls raw (`format::sys`).

use core::ffi::{c_char, c_int, c_void, CStr};
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering::Relaxed};

use libc::{
    gid_t, mode_t, off64_t, off_t, pid_t, size_t, sockaddr, socklen_t, ssize_t, timespec, timeval,
    uid_t, utimbuf, FILE,
};

/// A lazily resolved symbol.
pub struct RealFn {
    ptr: AtomicPtr<c_void>,
    name: &'static CStr,
}

impl RealFn {
    const fn new(name: &'static CStr) -> RealFn {
        RealFn {
            ptr: AtomicPtr::new(core::ptr::null_mut()),
            name,
        }
    }

    #[inline(always)]
    fn get(&self) -> *mut c_void {
        // Relaxed: the pointer is the only datum published; the code it names is immutable.
        let p = self.ptr.load(Relaxed);
        if !p.is_null() {
            return p;
        }
        self.resolve()
    }

    /// Resolve from the constructor's tables, unless done. Not inlined: [`resolve_all`] stays
    /// one small loop.
    #[inline(never)]
    fn resolve_in(&self, objects: &crate::symbols::NextObjects) {
        if self.ptr.load(Relaxed).is_null() {
            self.ptr.store(objects.find(self.name), Relaxed);
        }
    }

    #[cold]
    fn resolve(&self) -> *mut c_void {
        // The definition after this library (libc's, or the next preloaded library's).
        let p = crate::symbols::next(self.name);
        self.ptr.store(p, Relaxed);
        p
    }
}

/// The value a hook returns, with `errno = ENOSYS`, when its real function does not exist
/// (only possible for a symbol the running libc lacks, which a program could not have linked).
pub trait FailValue {
    /// The error return value.
    const FAIL: Self;
}
impl FailValue for c_int {
    const FAIL: Self = -1;
}
impl FailValue for ssize_t {
    const FAIL: Self = -1;
}
impl<T> FailValue for *mut T {
    const FAIL: Self = core::ptr::null_mut();
}

/// Set `errno = ENOSYS` and return the failure value of `T`.
#[cold]
pub fn missing<T: FailValue>() -> T {
    crate::errno::set(libc::ENOSYS);
    T::FAIL
}

/// Call a real function: `call_real!(open(path, flags, mode))`. Only used inside the hook of
/// the same function (or one with the same contract), passing the caller's arguments on: the
/// caller of the hook upholds the real function's contract.
macro_rules! call_real {
    ($name:ident($($a:expr),* $(,)?)) => {
        match $crate::real::$name() {
            // SAFETY: the hook's caller upholds this function's C contract (see above).
            #[allow(unused_unsafe)]
            Some(f) => unsafe { f($($a),*) },
            None => $crate::real::missing(),
        }
    };
}
pub(crate) use call_real;

macro_rules! reals {
    ($($name:ident : $ty:ty;)*) => {
        mod slot {
            use super::*;
            $(
                #[allow(non_upper_case_globals)]
                pub static $name: RealFn = RealFn::new(
                    // SAFETY: the literal ends with its only NUL.
                    unsafe { CStr::from_bytes_with_nul_unchecked(concat!(stringify!($name), "\0").as_bytes()) }
                );
            )*
        }
        $(
            #[allow(non_snake_case)]
            /// The real function, if the libc (or the next library) defines it.
            #[inline(always)]
            pub fn $name() -> Option<$ty> {
                let p = slot::$name.get();
                if p.is_null() {
                    None
                } else {
                    // SAFETY: dlsym found this symbol, a C function of this prototype.
                    Some(unsafe { core::mem::transmute::<*mut c_void, $ty>(p) })
                }
            }
        )*
        /// Every real function's slot, for [`resolve_all`].
        static ALL: &[&RealFn] = &[$( &slot::$name ),*];
    };
}

/// Every function resolved already ([`resolve_all`]).
static ALL_RESOLVED: AtomicBool = AtomicBool::new(false);

/// Resolve every real function now, once per process, from the constructor's tables (nothing
/// if there are none yet: a walk would take the loader's lock). The fork hooks call it in the
/// parent before its first fork: a child inherits the pointers, where each child would
/// otherwise look its `execve` up again, reading (and faulting in) the same symbol-table pages
/// the parent already had. Lock-free and allocation-free, like the fork it precedes.
pub fn resolve_all() {
    // Relaxed: a racing second pass only repeats idempotent stores.
    if ALL_RESOLVED.load(Relaxed) {
        return;
    }
    let Some(objects) = crate::symbols::saved() else {
        return;
    };
    for f in ALL {
        f.resolve_in(objects);
    }
    ALL_RESOLVED.store(true, Relaxed);
}

type Argv = *const *const c_char;

reals! {
    execve: unsafe extern "C" fn(*const c_char, Argv, Argv) -> c_int;
    execvpe: unsafe extern "C" fn(*const c_char, Argv, Argv) -> c_int;
    fexecve: unsafe extern "C" fn(c_int, Argv, Argv) -> c_int;
    execveat: unsafe extern "C" fn(c_int, *const c_char, Argv, Argv, c_int) -> c_int;
    posix_spawn: unsafe extern "C" fn(*mut pid_t, *const c_char, *const libc::posix_spawn_file_actions_t, *const libc::posix_spawnattr_t, Argv, Argv) -> c_int;
    posix_spawnp: unsafe extern "C" fn(*mut pid_t, *const c_char, *const libc::posix_spawn_file_actions_t, *const libc::posix_spawnattr_t, Argv, Argv) -> c_int;
    system: unsafe extern "C" fn(*const c_char) -> c_int;
    popen: unsafe extern "C" fn(*const c_char, *const c_char) -> *mut FILE;
    pclose: unsafe extern "C" fn(*mut FILE) -> c_int;
    fork: unsafe extern "C" fn() -> pid_t;
    _Fork: unsafe extern "C" fn() -> pid_t;
    clone: unsafe extern "C" fn(extern "C" fn(*mut c_void) -> c_int, *mut c_void, c_int, *mut c_void, ...) -> c_int;
    waitpid: unsafe extern "C" fn(pid_t, *mut c_int, c_int) -> pid_t;
    wait: unsafe extern "C" fn(*mut c_int) -> pid_t;
    wait3: unsafe extern "C" fn(*mut c_int, c_int, *mut libc::rusage) -> pid_t;
    waitid: unsafe extern "C" fn(libc::idtype_t, libc::id_t, *mut libc::siginfo_t, c_int) -> c_int;
    wait4: unsafe extern "C" fn(pid_t, *mut c_int, c_int, *mut libc::rusage) -> pid_t;
    exit: unsafe extern "C" fn(c_int) -> !;
    _exit: unsafe extern "C" fn(c_int) -> !;
    _Exit: unsafe extern "C" fn(c_int) -> !;
    open: unsafe extern "C" fn(*const c_char, c_int, ...) -> c_int;
    open64: unsafe extern "C" fn(*const c_char, c_int, ...) -> c_int;
    openat: unsafe extern "C" fn(c_int, *const c_char, c_int, ...) -> c_int;
    openat64: unsafe extern "C" fn(c_int, *const c_char, c_int, ...) -> c_int;
    __open_2: unsafe extern "C" fn(*const c_char, c_int) -> c_int;
    __open64_2: unsafe extern "C" fn(*const c_char, c_int) -> c_int;
    __openat_2: unsafe extern "C" fn(c_int, *const c_char, c_int) -> c_int;
    __openat64_2: unsafe extern "C" fn(c_int, *const c_char, c_int) -> c_int;
    creat: unsafe extern "C" fn(*const c_char, mode_t) -> c_int;
    creat64: unsafe extern "C" fn(*const c_char, mode_t) -> c_int;
    fopen: unsafe extern "C" fn(*const c_char, *const c_char) -> *mut FILE;
    fopen64: unsafe extern "C" fn(*const c_char, *const c_char) -> *mut FILE;
    freopen: unsafe extern "C" fn(*const c_char, *const c_char, *mut FILE) -> *mut FILE;
    freopen64: unsafe extern "C" fn(*const c_char, *const c_char, *mut FILE) -> *mut FILE;
    mkstemp: unsafe extern "C" fn(*mut c_char) -> c_int;
    mkstemp64: unsafe extern "C" fn(*mut c_char) -> c_int;
    mkostemp: unsafe extern "C" fn(*mut c_char, c_int) -> c_int;
    mkostemp64: unsafe extern "C" fn(*mut c_char, c_int) -> c_int;
    mkstemps: unsafe extern "C" fn(*mut c_char, c_int) -> c_int;
    mkstemps64: unsafe extern "C" fn(*mut c_char, c_int) -> c_int;
    mkostemps: unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;
    mkostemps64: unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;
    tmpfile: unsafe extern "C" fn() -> *mut FILE;
    tmpfile64: unsafe extern "C" fn() -> *mut FILE;
    scandir: unsafe extern "C" fn(*const c_char, *mut c_void, *mut c_void, *mut c_void) -> c_int;
    scandir64: unsafe extern "C" fn(*const c_char, *mut c_void, *mut c_void, *mut c_void) -> c_int;
    scandirat: unsafe extern "C" fn(c_int, *const c_char, *mut c_void, *mut c_void, *mut c_void) -> c_int;
    opendir: unsafe extern "C" fn(*const c_char) -> *mut libc::DIR;
    rename: unsafe extern "C" fn(*const c_char, *const c_char) -> c_int;
    renameat: unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char) -> c_int;
    renameat2: unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, libc::c_uint) -> c_int;
    unlink: unsafe extern "C" fn(*const c_char) -> c_int;
    unlinkat: unsafe extern "C" fn(c_int, *const c_char, c_int) -> c_int;
    mkdir: unsafe extern "C" fn(*const c_char, mode_t) -> c_int;
    mkdirat: unsafe extern "C" fn(c_int, *const c_char, mode_t) -> c_int;
    rmdir: unsafe extern "C" fn(*const c_char) -> c_int;
    link: unsafe extern "C" fn(*const c_char, *const c_char) -> c_int;
    linkat: unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, c_int) -> c_int;
    symlink: unsafe extern "C" fn(*const c_char, *const c_char) -> c_int;
    symlinkat: unsafe extern "C" fn(*const c_char, c_int, *const c_char) -> c_int;
    truncate: unsafe extern "C" fn(*const c_char, off_t) -> c_int;
    truncate64: unsafe extern "C" fn(*const c_char, off64_t) -> c_int;
    ftruncate: unsafe extern "C" fn(c_int, off_t) -> c_int;
    ftruncate64: unsafe extern "C" fn(c_int, off64_t) -> c_int;
    chmod: unsafe extern "C" fn(*const c_char, mode_t) -> c_int;
    lchmod: unsafe extern "C" fn(*const c_char, mode_t) -> c_int;
    fchmod: unsafe extern "C" fn(c_int, mode_t) -> c_int;
    fchmodat: unsafe extern "C" fn(c_int, *const c_char, mode_t, c_int) -> c_int;
    chown: unsafe extern "C" fn(*const c_char, uid_t, gid_t) -> c_int;
    lchown: unsafe extern "C" fn(*const c_char, uid_t, gid_t) -> c_int;
    fchown: unsafe extern "C" fn(c_int, uid_t, gid_t) -> c_int;
    fchownat: unsafe extern "C" fn(c_int, *const c_char, uid_t, gid_t, c_int) -> c_int;
    utimensat: unsafe extern "C" fn(c_int, *const c_char, *const timespec, c_int) -> c_int;
    futimens: unsafe extern "C" fn(c_int, *const timespec) -> c_int;
    utimes: unsafe extern "C" fn(*const c_char, *const timeval) -> c_int;
    lutimes: unsafe extern "C" fn(*const c_char, *const timeval) -> c_int;
    futimes: unsafe extern "C" fn(c_int, *const timeval) -> c_int;
    futimesat: unsafe extern "C" fn(c_int, *const c_char, *const timeval) -> c_int;
    utime: unsafe extern "C" fn(*const c_char, *const utimbuf) -> c_int;
    setxattr: unsafe extern "C" fn(*const c_char, *const c_char, *const c_void, size_t, c_int) -> c_int;
    lsetxattr: unsafe extern "C" fn(*const c_char, *const c_char, *const c_void, size_t, c_int) -> c_int;
    fsetxattr: unsafe extern "C" fn(c_int, *const c_char, *const c_void, size_t, c_int) -> c_int;
    removexattr: unsafe extern "C" fn(*const c_char, *const c_char) -> c_int;
    lremovexattr: unsafe extern "C" fn(*const c_char, *const c_char) -> c_int;
    fremovexattr: unsafe extern "C" fn(c_int, *const c_char) -> c_int;
    chdir: unsafe extern "C" fn(*const c_char) -> c_int;
    fchdir: unsafe extern "C" fn(c_int) -> c_int;
    connect: unsafe extern "C" fn(c_int, *const sockaddr, socklen_t) -> c_int;
    bind: unsafe extern "C" fn(c_int, *const sockaddr, socklen_t) -> c_int;
    accept: unsafe extern "C" fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int;
    accept4: unsafe extern "C" fn(c_int, *mut sockaddr, *mut socklen_t, c_int) -> c_int;
    sendto: unsafe extern "C" fn(c_int, *const c_void, size_t, c_int, *const sockaddr, socklen_t) -> ssize_t;
    sendmsg: unsafe extern "C" fn(c_int, *const libc::msghdr, c_int) -> ssize_t;
    getaddrinfo: unsafe extern "C" fn(*const c_char, *const c_char, *const libc::addrinfo, *mut *mut libc::addrinfo) -> c_int;
}
