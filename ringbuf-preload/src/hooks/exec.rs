//! The exec family. Each entry point is hooked on its own (glibc's `execv`, `execvp` and
//! `execl*` call its internal `__execve`, never the exported one).
//!
//! An exec is recorded before the call (a successful one never returns), with the path as
//! given and the exact argv; a failure adds an `exec_failed` record with the `errno`. The
//! call always goes through a real function that takes an explicit environment (`execve`,
//! `execvpe`, `fexecve`, `execveat`), with the child environment of [`crate::childenv`].
//!
//! Before the library reads the path, `argv` or `envp` (to record them, inspect the target and
//! build the child's environment), it checks that all of them are readable
//! ([`readable::exec_args`]). If one is not (a pointer the kernel will refuse with `EFAULT`, a
//! string without a NUL within the kernel's limit), the library does none of its own work: the
//! real function gets the program's own arguments and fails exactly as without the library.
//! The call is still recorded, without what could not be read, and flagged.

use core::ffi::{c_char, c_int};

use format::records::{proc_op, Exec, ExecFailed};
use format::supervise;

use crate::buf::Scratch;
use crate::cstr::CStrs;
use crate::proc_info::environ_now;
use crate::readable;
use crate::real::call_real;
use crate::{childenv, emit, errno, guard, lifecycle, objects, session, supervisor, target};

type Argv = *const *const c_char;

/// Where an exec will find its program.
#[derive(Clone, Copy)]
enum Target {
    /// A path, relative to a directory descriptor (`AT_FDCWD` usually).
    Path {
        dirfd: c_int,
        path: *const c_char,
        search: bool,
        at_flags: c_int,
    },
    /// An open descriptor (`fexecve`).
    Fd(c_int),
}

/// Record and perform one exec. `envp` is the environment the program asked for; `call`
/// performs the exec with the environment to use.
///
/// # Safety
/// The exec function's arguments as the program passed them (any values: nothing is read
/// before it is known readable).
unsafe fn exec(
    op: u16,
    target: Target,
    argv: Argv,
    envp: Argv,
    call: impl FnOnce(Argv) -> c_int,
) -> c_int {
    if lifecycle::recording().is_none() {
        return call(envp);
    }
    let unseen_child = lifecycle::check_pid();
    // Asked again: `check_pid` may have made this process's image.
    let Some((fx, img)) = session::current() else {
        return call(envp);
    };
    if !unseen_child {
        // The image ends here if the exec succeeds: the objects it loaded since the last
        // checkpoint. Exec is async-signal-safe: no loader lock (objects.rs). Not in a child
        // the library did not see created, which may share its parent's memory.
        objects::check(img, objects::Checkpoint::SignalSafe);
    }
    let (path, fd, at_flags) = match target {
        Target::Path {
            dirfd,
            path,
            at_flags,
            ..
        } => (path, dirfd, at_flags),
        Target::Fd(fd) => (core::ptr::null(), fd, 0),
    };
    // `fexecve` has no path; `execveat` with AT_EMPTY_PATH may pass NULL.
    let null_path_ok = matches!(target, Target::Fd(_)) || at_flags & libc::AT_EMPTY_PATH != 0;
    // SAFETY: exec_args reads nothing before the kernel says it is readable.
    let args = unsafe { readable::exec_args(path, null_path_ok, argv, envp) };
    let mut scratch = None;
    let mut untraced = 0;
    let mut new_env = envp;
    if args.readable() {
        // SAFETY: envp is NULL or a readable environment (checked above).
        let size = unsafe { childenv::scratch_size(fx, envp, 2 * 4096 + 256) };
        scratch = Scratch::new(size);
        untraced = match target {
            Target::Path {
                dirfd,
                path,
                search,
                at_flags,
            } => match scratch.as_mut() {
                // SAFETY: path is a readable C string (checked above).
                Some(s) if at_flags & libc::AT_EMPTY_PATH == 0 => unsafe {
                    target::untraced_path(s, dirfd, path, search)
                },
                _ if at_flags & libc::AT_EMPTY_PATH != 0 => target::untraced_fd(dirfd),
                _ => 0,
            },
            Target::Fd(fd) => target::untraced_fd(fd),
        };
        new_env = scratch
            .as_mut()
            // SAFETY: envp as above.
            .and_then(|s| unsafe { childenv::build(s, fx, img, envp) })
            .unwrap_or(envp);
    }
    // Otherwise the program's own arguments go to the real call, which fails as without the
    // library (EFAULT, or an error the kernel finds first, such as ENOENT).
    // A static target: the supervisor, if the session has one, follows it instead.
    let follow = supervisor::follow(fx, img, untraced, supervise::op::EXEC);
    if follow.is_some() {
        untraced |= format::records::untraced::SUPERVISED;
    }
    let mut ev = Exec {
        ev: emit::header(img),
        op: op.into(),
        untraced: untraced.into(),
        fd: fd.into(),
        at_flags: at_flags.into(),
        reserved: 0.into(),
    };
    ev.ev.flags = args.flags().into();
    let argv_read = if args.argv { argv } else { core::ptr::null() };
    // SAFETY: argv_read is NULL or a readable argv (checked above).
    let vars = core::iter::once(args.path.unwrap_or(b"")).chain(unsafe { CStrs::new(argv_read) });
    let pos = emit::event(img, &ev, vars);
    let r = guard::hold(|| call(new_env));
    // The exec's errno: recorded, and set back when `e` drops, after the scratch is unmapped.
    let e = errno::Saved::now();
    supervisor::done(follow, img);
    let failed = ExecFailed {
        ev: emit::header(img),
        exec_pos: pos.unwrap_or(u64::MAX).into(),
        errno: e.get().into(),
        reserved: 0.into(),
    };
    emit::event(img, &failed, core::iter::empty());
    drop(scratch);
    r
}

fn at(path: *const c_char, search: bool) -> Target {
    Target::Path {
        dirfd: libc::AT_FDCWD,
        path,
        search,
        at_flags: 0,
    }
}

/// `execve(2)`.
///
/// # Safety
/// C contract of `execve`.
#[no_mangle]
pub unsafe extern "C" fn execve(path: *const c_char, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        exec(proc_op::EXECVE, at(path, false), argv, envp, |env| {
            call_real!(execve(path, argv, env))
        })
    }
}

/// `execv(3)`: `execve` with `environ`.
///
/// # Safety
/// C contract of `execv`.
#[no_mangle]
pub unsafe extern "C" fn execv(path: *const c_char, argv: Argv) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        exec(
            proc_op::EXECV,
            at(path, false),
            argv,
            environ_now(),
            |env| call_real!(execve(path, argv, env)),
        )
    }
}

/// `execvp(3)`: `execvpe` with `environ`.
///
/// # Safety
/// C contract of `execvp`.
#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: Argv) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        exec(
            proc_op::EXECVP,
            at(file, true),
            argv,
            environ_now(),
            |env| call_real!(execvpe(file, argv, env)),
        )
    }
}

/// `execvpe(3)`.
///
/// # Safety
/// C contract of `execvpe`.
#[no_mangle]
pub unsafe extern "C" fn execvpe(file: *const c_char, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        exec(proc_op::EXECVPE, at(file, true), argv, envp, |env| {
            call_real!(execvpe(file, argv, env))
        })
    }
}

/// `fexecve(3)`.
///
/// # Safety
/// C contract of `fexecve`.
#[no_mangle]
pub unsafe extern "C" fn fexecve(fd: c_int, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        exec(proc_op::FEXECVE, Target::Fd(fd), argv, envp, |env| {
            call_real!(fexecve(fd, argv, env))
        })
    }
}

/// `execveat(2)` (glibc 2.34+; the raw syscall when the libc has no wrapper).
///
/// # Safety
/// C contract of `execveat`.
#[no_mangle]
pub unsafe extern "C" fn execveat(
    dirfd: c_int,
    path: *const c_char,
    argv: Argv,
    envp: Argv,
    flags: c_int,
) -> c_int {
    let target = Target::Path {
        dirfd,
        path,
        search: false,
        at_flags: flags,
    };
    // SAFETY: forwarded.
    unsafe {
        exec(
            proc_op::EXECVEAT,
            target,
            argv,
            envp,
            |env| match crate::real::execveat() {
                Some(f) => f(dirfd, path, argv, env, flags),
                None => libc::syscall(libc::SYS_execveat, dirfd, path, argv, env, flags) as c_int,
            },
        )
    }
}

/// Entry from the C shim for `execl`, `execlp`, `execle` (variadic), with the arguments
/// collected into `argv`; `envp` is NULL except for `execle`.
///
/// # Safety
/// C contract of the `execl*` functions.
#[no_mangle]
pub unsafe extern "C" fn substrate_execl_hook(
    op: c_int,
    path: *const c_char,
    argv: Argv,
    envp: Argv,
) -> c_int {
    let op = op as u16;
    let search = op == proc_op::EXECLP;
    let env = if op == proc_op::EXECLE {
        envp
    } else {
        environ_now()
    };
    // SAFETY: forwarded.
    unsafe {
        exec(op, at(path, search), argv, env, |env| {
            if search {
                call_real!(execvpe(path, argv, env))
            } else {
                call_real!(execve(path, argv, env))
            }
        })
    }
}
