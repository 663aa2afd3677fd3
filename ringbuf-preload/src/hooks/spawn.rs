//! Processes started without exec in this image: `posix_spawn`, `posix_spawnp`, `system`,
//! `popen` (+ `pclose`).
//!
//! glibc's `system` and `popen` spawn `/bin/sh` through its internal `__posix_spawn` with
//! `environ`, so hooking `posix_spawn` sees neither, and there is no way to hand them another
//! environment. The library therefore performs both itself, the way glibc does (same
//! signal dispositions and mask for `system`, same pipe and descriptor handling for `popen`),
//! through the real `posix_spawn` with the child environment. `pclose` of a stream this
//! library opened waits for its child; any other stream goes to the real `pclose`.
//!
//! As for exec, the path, `argv` and `envp` (the command of `system` and `popen`) are checked
//! readable before the library reads them; if one is not, the real function gets the program's
//! own arguments and fails exactly as without the library, and the record says what was not
//! read ([`crate::readable`]).

use core::ffi::{c_char, c_int};
use core::mem::MaybeUninit;
use core::ptr;
use core::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, Ordering::*};

use format::records::{ev_flags, proc_op, Spawn};
use libc::{pid_t, posix_spawn_file_actions_t, posix_spawnattr_t, FILE};

use crate::buf::Scratch;
use crate::cstr::{cstr, CStrs};
use crate::proc_info::environ_now;
use crate::readable::{self, Pages, Str};
use crate::real::call_real;
use crate::session::{Fixed, Image};
use crate::{childenv, emit, errno, guard, lifecycle, objects, supervisor, target};

type Argv = *const *const c_char;

/// Record a spawn that returned. `flags`: the [`ev_flags`] of arguments not read.
#[allow(clippy::too_many_arguments)]
fn record(
    img: &Image,
    op: u16,
    untraced: u16,
    flags: u16,
    pid: pid_t,
    err: c_int,
    status: c_int,
    path: &[u8],
    argv: CStrs<'_>,
) {
    let mut ev = Spawn {
        ev: emit::header(img),
        op: op.into(),
        untraced: untraced.into(),
        child_pid: pid.into(),
        errno: err.into(),
        status: status.into(),
    };
    ev.ev.flags = flags.into();
    emit::event(img, &ev, core::iter::once(path).chain(argv));
}

/// The child environment for a spawn from this image, in `s`; `envp` if it cannot be built.
///
/// # Safety
/// `envp`: NULL or a valid environment.
unsafe fn child_env(s: &mut Option<Scratch>, fx: &Fixed, img: &Image, envp: Argv) -> Argv {
    s.as_mut()
        // SAFETY: forwarded.
        .and_then(|s| unsafe { childenv::build(s, fx, img, envp) })
        .unwrap_or(envp)
}

/// `posix_spawn` / `posix_spawnp`: `call` performs the real call with a pid out-parameter and
/// the environment to use (file actions and attributes are passed on unchanged by the caller).
///
/// # Safety
/// The arguments as the program passed them (any values: nothing is read before it is known
/// readable).
unsafe fn spawn(
    op: u16,
    pid: *mut pid_t,
    path: *const c_char,
    argv: Argv,
    envp: Argv,
    call: impl FnOnce(*mut pid_t, Argv) -> c_int,
) -> c_int {
    let Some((fx, img)) = lifecycle::recording() else {
        return call(pid, envp);
    };
    // Not async-signal-safe: the loader's lock may be taken (objects.rs).
    objects::check(img, objects::Checkpoint::MayLock);
    // SAFETY: exec_args reads nothing before the kernel says it is readable.
    let args = unsafe { readable::exec_args(path, false, argv, envp) };
    let mut scratch = None;
    let mut untraced = 0;
    let mut env = envp;
    if args.readable() {
        // SAFETY: envp is NULL or a readable environment (checked above).
        scratch = Scratch::new(unsafe { childenv::scratch_size(fx, envp, 2 * 4096 + 256) });
        let search = op == proc_op::POSIX_SPAWNP;
        untraced = scratch
            .as_mut()
            // SAFETY: path is a readable C string (checked above).
            .map_or(0, |s| unsafe {
                target::untraced_path(s, libc::AT_FDCWD, path, search)
            });
        // SAFETY: as above.
        env = unsafe { child_env(&mut scratch, fx, img, envp) };
    }
    // Otherwise the program's own arguments go to the real call, which fails (or crashes in
    // libc) as without the library.
    // A static target: the supervisor, if the session has one, follows the child.
    let follow = supervisor::follow(fx, img, untraced, format::supervise::op::SPAWN);
    if follow.is_some() {
        untraced |= format::records::untraced::SUPERVISED;
    }
    let mut child: pid_t = 0;
    let r = guard::hold(|| call(&mut child, env));
    let _e = errno::Saved::now();
    supervisor::done(follow, img);
    if !pid.is_null() && r == 0 {
        // SAFETY: the caller's out-parameter.
        unsafe { *pid = child };
    }
    let argv_read = if args.argv { argv } else { ptr::null() };
    record(
        img,
        op,
        untraced,
        args.flags(),
        if r == 0 { child } else { -1 },
        r,
        0,
        args.path.unwrap_or(b""),
        // SAFETY: argv_read is NULL or a readable argv (checked above).
        unsafe { CStrs::new(argv_read) },
    );
    drop(scratch);
    r
}

/// Whether a `system`/`popen` command may be read (and passed as `sh -c` argv): readable up to
/// a NUL within the kernel's argv string limit.
///
/// # Safety
/// Any pointer: nothing is read before the kernel says it is readable.
unsafe fn command_readable(cmd: *const c_char) -> bool {
    // SAFETY: any pointer: `Pages::cstr` reads only what the kernel shows readable.
    let s = unsafe { Pages::new().cstr(cmd, readable::ARG_MAX_STRLEN) };
    matches!(s, Str::Ok(_))
}

/// `posix_spawn(3)`.
///
/// # Safety
/// C contract of `posix_spawn`.
#[no_mangle]
pub unsafe extern "C" fn posix_spawn(
    pid: *mut pid_t,
    path: *const c_char,
    fa: *const posix_spawn_file_actions_t,
    attr: *const posix_spawnattr_t,
    argv: Argv,
    envp: Argv,
) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        spawn(proc_op::POSIX_SPAWN, pid, path, argv, envp, |p, env| {
            call_real!(posix_spawn(p, path, fa, attr, argv, env))
        })
    }
}

/// `posix_spawnp(3)`.
///
/// # Safety
/// C contract of `posix_spawnp`.
#[no_mangle]
pub unsafe extern "C" fn posix_spawnp(
    pid: *mut pid_t,
    file: *const c_char,
    fa: *const posix_spawn_file_actions_t,
    attr: *const posix_spawnattr_t,
    argv: Argv,
    envp: Argv,
) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        spawn(proc_op::POSIX_SPAWNP, pid, file, argv, envp, |p, env| {
            call_real!(posix_spawnp(p, file, fa, attr, argv, env))
        })
    }
}

const SHELL: &core::ffi::CStr = c"/bin/sh";

/// `{"sh", "-c", cmd, NULL}` (glibc 2.36's form, which passes no `--`).
fn shell_argv(cmd: *const c_char) -> [*const c_char; 4] {
    [c"sh".as_ptr(), c"-c".as_ptr(), cmd, ptr::null()]
}

/// Spawn `/bin/sh -c cmd` with the real `posix_spawn` and the child environment.
///
/// # Safety
/// `cmd` a C string; `fa`/`attr` NULL or initialised.
unsafe fn spawn_shell(
    fx: &Fixed,
    img: &Image,
    cmd: *const c_char,
    fa: *const posix_spawn_file_actions_t,
    attr: *const posix_spawnattr_t,
) -> (c_int, pid_t) {
    let envp = environ_now();
    // SAFETY: environ is a valid environment.
    let mut scratch = Scratch::new(unsafe { childenv::scratch_size(fx, envp, 256) });
    // SAFETY: as above.
    let env = unsafe { child_env(&mut scratch, fx, img, envp) };
    let argv = shell_argv(cmd);
    let mut pid: pid_t = -1;
    let r = guard::hold(|| {
        call_real!(posix_spawn(
            &mut pid,
            SHELL.as_ptr(),
            fa,
            attr,
            argv.as_ptr(),
            env
        ))
    });
    drop(scratch);
    (r, pid)
}

/// How many `system` calls are running (the first saves SIGINT/SIGQUIT, the last restores
/// them), as glibc counts them.
static SYSTEM_USERS: AtomicU32 = AtomicU32::new(0);

struct SavedSignals {
    intr: MaybeUninit<libc::sigaction>,
    quit: MaybeUninit<libc::sigaction>,
}
static mut SAVED: SavedSignals = SavedSignals {
    intr: MaybeUninit::zeroed(),
    quit: MaybeUninit::zeroed(),
};

/// `system(3)`, performed as glibc does it: SIGINT and SIGQUIT ignored and SIGCHLD blocked in
/// the caller while the shell runs; the child gets the caller's mask and default SIGINT and
/// SIGQUIT unless they were ignored; the wait status is returned.
///
/// # Safety
/// C contract of `system`.
#[no_mangle]
pub unsafe extern "C" fn system(cmd: *const c_char) -> c_int {
    let real_system = || call_real!(system(cmd));
    let Some((fx, img)) = lifecycle::recording() else {
        return real_system();
    };
    if cmd.is_null() {
        // "Is a shell available?": no child worth recording.
        return real_system();
    }
    objects::check(img, objects::Checkpoint::MayLock);
    // SAFETY: any pointer.
    if !unsafe { command_readable(cmd) } {
        // libc's own system, as without the library: the shell cannot get the command.
        let status = guard::hold(real_system);
        let e = errno::Saved::now();
        // SAFETY: an empty argv.
        let no_argv = unsafe { CStrs::new(ptr::null()) };
        let flags = ev_flags::ARGV_UNREADABLE;
        record(
            img,
            proc_op::SYSTEM,
            0,
            flags,
            -1,
            e.get(),
            status,
            SHELL.to_bytes(),
            no_argv,
        );
        return status;
    }
    // SAFETY: plain libc signal calls on local, initialised structures; SAVED is only
    // touched by the first and last concurrent caller (SYSTEM_USERS), as glibc's own
    // implementation does under its lock.
    unsafe {
        let mut ign: libc::sigaction = core::mem::zeroed();
        ign.sa_sigaction = libc::SIG_IGN;
        libc::sigemptyset(&mut ign.sa_mask);
        let saved = &raw mut SAVED;
        if SYSTEM_USERS.fetch_add(1, AcqRel) == 0 {
            libc::sigaction(libc::SIGINT, &ign, (*saved).intr.as_mut_ptr());
            libc::sigaction(libc::SIGQUIT, &ign, (*saved).quit.as_mut_ptr());
        }
        let mut block: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGCHLD);
        let mut omask: libc::sigset_t = core::mem::zeroed();
        libc::sigprocmask(libc::SIG_BLOCK, &block, &mut omask);

        let mut reset: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut reset);
        if (*saved).intr.assume_init_ref().sa_sigaction != libc::SIG_IGN {
            libc::sigaddset(&mut reset, libc::SIGINT);
        }
        if (*saved).quit.assume_init_ref().sa_sigaction != libc::SIG_IGN {
            libc::sigaddset(&mut reset, libc::SIGQUIT);
        }
        let mut attr = MaybeUninit::<posix_spawnattr_t>::uninit();
        libc::posix_spawnattr_init(attr.as_mut_ptr());
        libc::posix_spawnattr_setsigmask(attr.as_mut_ptr(), &omask);
        libc::posix_spawnattr_setsigdefault(attr.as_mut_ptr(), &reset);
        libc::posix_spawnattr_setflags(
            attr.as_mut_ptr(),
            (libc::POSIX_SPAWN_SETSIGDEF | libc::POSIX_SPAWN_SETSIGMASK) as _,
        );
        let (r, pid) = spawn_shell(fx, img, cmd, ptr::null(), attr.as_ptr());
        libc::posix_spawnattr_destroy(attr.as_mut_ptr());
        let mut status: c_int = 0;
        let mut err = 0;
        if r == 0 {
            loop {
                let w = libc::waitpid(pid, &mut status, 0);
                if w == pid {
                    break;
                }
                if w == -1 && errno::get() == libc::EINTR {
                    continue;
                }
                err = errno::get();
                status = -1;
                break;
            }
        } else {
            // The shell could not be started: as if it exited 127.
            status = 127 << 8;
            err = r;
        }
        if SYSTEM_USERS.fetch_sub(1, AcqRel) == 1 {
            libc::sigaction(libc::SIGINT, (*saved).intr.as_ptr(), ptr::null_mut());
            libc::sigaction(libc::SIGQUIT, (*saved).quit.as_ptr(), ptr::null_mut());
        }
        libc::sigprocmask(libc::SIG_SETMASK, &omask, ptr::null_mut());
        let argv = shell_argv(cmd);
        record(
            img,
            proc_op::SYSTEM,
            0,
            0,
            if r == 0 { pid } else { -1 },
            err,
            status,
            SHELL.to_bytes(),
            CStrs::new(argv.as_ptr()),
        );
        if err != 0 {
            errno::set(err);
        }
        status
    }
}

/// Streams opened by this library's `popen`, with their children, for `pclose`.
const POPEN_MAX: usize = 256;
static POPEN_FILES: [AtomicPtr<FILE>; POPEN_MAX] =
    [const { AtomicPtr::new(ptr::null_mut()) }; POPEN_MAX];
static POPEN_PIDS: [AtomicI32; POPEN_MAX] = [const { AtomicI32::new(0) }; POPEN_MAX];
/// A slot being filled.
const CLAIMED: *mut FILE = ptr::dangling_mut();

/// `popen(3)`: a pipe to or from `/bin/sh -c cmd`. The child's end becomes its stdin or
/// stdout; descriptors of streams from earlier `popen` calls are closed in the child (POSIX);
/// the caller's end is close-on-exec only with the `e` mode flag.
///
/// # Safety
/// C contract of `popen`.
#[no_mangle]
pub unsafe extern "C" fn popen(cmd: *const c_char, mode: *const c_char) -> *mut FILE {
    let real_popen = || call_real!(popen(cmd, mode));
    let active = lifecycle::recording();
    let free = POPEN_FILES.iter().position(|f| f.load(Relaxed).is_null());
    let (Some((fx, img)), Some(_), false) = (active, free, cmd.is_null() || mode.is_null()) else {
        return real_popen();
    };
    objects::check(img, objects::Checkpoint::MayLock);
    // SAFETY: mode is a C string.
    let m = unsafe { cstr(mode) };
    let reading = match m.first() {
        Some(b'r') => true,
        Some(b'w') => false,
        _ => {
            errno::set(libc::EINVAL);
            return ptr::null_mut();
        }
    };
    let cloexec = m[1..].contains(&b'e');
    // SAFETY: any pointer.
    if !unsafe { command_readable(cmd) } {
        // libc's own popen, as without the library: the shell cannot get the command.
        let fp = guard::hold(real_popen);
        let e = errno::Saved::now();
        let err = if fp.is_null() { e.get() } else { 0 };
        // SAFETY: an empty argv.
        let no_argv = unsafe { CStrs::new(ptr::null()) };
        let flags = ev_flags::ARGV_UNREADABLE;
        record(
            img,
            proc_op::POPEN,
            0,
            flags,
            -1,
            err,
            0,
            SHELL.to_bytes(),
            no_argv,
        );
        return fp;
    }
    // SAFETY: libc calls on local storage; descriptors are ours until handed to the stream.
    unsafe {
        let mut fds = [0 as c_int; 2];
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return ptr::null_mut();
        }
        let (parent_end, child_end, child_std) = if reading {
            (fds[0], fds[1], 1)
        } else {
            (fds[1], fds[0], 0)
        };
        let mut fa = MaybeUninit::<posix_spawn_file_actions_t>::uninit();
        libc::posix_spawn_file_actions_init(fa.as_mut_ptr());
        if child_end == child_std {
            // dup2 onto itself would keep O_CLOEXEC: move it away first.
            let moved = libc::fcntl(child_end, libc::F_DUPFD_CLOEXEC, 3);
            libc::posix_spawn_file_actions_adddup2(fa.as_mut_ptr(), moved, child_std);
            libc::posix_spawn_file_actions_addclose(fa.as_mut_ptr(), moved);
        } else {
            libc::posix_spawn_file_actions_adddup2(fa.as_mut_ptr(), child_end, child_std);
        }
        for f in &POPEN_FILES {
            let f = f.load(Acquire);
            if !f.is_null() && f != CLAIMED {
                let fd = libc::fileno(f);
                if fd >= 0 && fd != child_std {
                    libc::posix_spawn_file_actions_addclose(fa.as_mut_ptr(), fd);
                }
            }
        }
        let (r, pid) = spawn_shell(fx, img, cmd, fa.as_ptr(), ptr::null());
        libc::posix_spawn_file_actions_destroy(fa.as_mut_ptr());
        libc::close(child_end);
        let argv = shell_argv(cmd);
        record(
            img,
            proc_op::POPEN,
            0,
            0,
            if r == 0 { pid } else { -1 },
            r,
            0,
            SHELL.to_bytes(),
            CStrs::new(argv.as_ptr()),
        );
        if r != 0 {
            libc::close(parent_end);
            errno::set(r);
            return ptr::null_mut();
        }
        if !cloexec {
            libc::fcntl(parent_end, libc::F_SETFD, 0);
        }
        let fmode = if reading { c"r" } else { c"w" };
        let fp = libc::fdopen(parent_end, fmode.as_ptr());
        if fp.is_null() {
            // fdopen's errno, kept through the cleanup.
            let _e = errno::Saved::now();
            libc::close(parent_end);
            let mut st = 0;
            libc::waitpid(pid, &mut st, 0);
            return ptr::null_mut();
        }
        for (i, slot) in POPEN_FILES.iter().enumerate() {
            // Claim the slot, then fill it: a concurrent popen cannot take it meanwhile.
            if slot
                .compare_exchange(ptr::null_mut(), CLAIMED, Relaxed, Relaxed)
                .is_ok()
            {
                POPEN_PIDS[i].store(pid, Relaxed);
                // Release: pclose, which acquires the stream, sees the pid.
                slot.store(fp, Release);
                return fp;
            }
        }
        // Every slot was taken meanwhile: the stream works, but pclose cannot wait for it.
        fp
    }
}

/// `pclose(3)`: for a stream of this library's `popen`, close it and wait for the shell.
///
/// # Safety
/// C contract of `pclose`.
#[no_mangle]
pub unsafe extern "C" fn pclose(fp: *mut FILE) -> c_int {
    let found = POPEN_FILES
        .iter()
        .position(|f| !fp.is_null() && f.load(Acquire) == fp);
    let Some(i) = found else {
        return call_real!(pclose(fp));
    };
    let pid = POPEN_PIDS[i].load(Relaxed);
    // SAFETY: our stream, closed once; the slot is released after.
    unsafe {
        POPEN_FILES[i].store(ptr::null_mut(), Release);
        libc::fclose(fp);
        let mut status = 0;
        loop {
            let w = libc::waitpid(pid, &mut status, 0);
            if w == pid {
                return status;
            }
            if w == -1 && errno::get() == libc::EINTR {
                continue;
            }
            return -1;
        }
    }
}
