//! The process tree: `fork`, `vfork` (performed as `fork`: a hook cannot return twice into a
//! borrowed address space), `_Fork`, `clone` of processes, and the ends of a process
//! (`exit`, `_exit`, `_Exit`), and children killed by a signal as their parent reaps them
//! (`wait`, `waitpid`, `wait3`, `wait4`, `waitid`): a killed process cannot record its own end.
//!
//! The parent records a `fork` record with the child's pid. The child attaches as its own
//! writer, gets a new span whose parent is the forking image's span, and records its
//! `process_start` (flag FORKED). A `clone` that shares memory without being a thread
//! (`CLONE_VM` without `CLONE_THREAD`) cannot get its own writer state, since the writer state
//! lives in the memory it shares: the parent records the clone, and the child is attached at
//! its exec (see [`crate::lifecycle::check_pid`]). The child's side of a fork and the ends of a
//! process are [`crate::lifecycle`]'s; the hooks here call into it.

use core::ffi::{c_int, c_void};

use format::records::{exit_how, proc_op, Fork};
use libc::pid_t;

use crate::real::{self, call_real};
use crate::{emit, errno, lifecycle, objects};

fn record_fork(op: u16, r: pid_t, e: c_int) {
    // The hook asked `lifecycle::recording` before the call; this is the image after it.
    if let Some((_, img)) = lifecycle::active() {
        let ev = Fork {
            ev: emit::header(img),
            op: op.into(),
            reserved: 0.into(),
            child_pid: r.into(),
            errno: if r < 0 { e } else { 0 }.into(),
            reserved2: 0.into(),
        };
        emit::event(img, &ev, core::iter::empty());
    }
}

fn fork_like(op: u16, call: impl FnOnce() -> pid_t) -> pid_t {
    // Before the first fork, resolve what the children will call (real.rs), recording or not.
    real::resolve_all();
    let Some((_, img)) = lifecycle::recording() else {
        return call();
    };
    // What the image loaded so far is its own; the child inherits it (objects.rs).
    let single = objects::before_fork(img);
    let r = call();
    // The call's errno: recorded, and set back when `e` drops.
    let e = errno::Saved::now();
    if r == 0 {
        lifecycle::after_fork_child(single);
    } else {
        record_fork(op, r, e.get());
    }
    r
}

/// `fork(2)`.
#[no_mangle]
pub extern "C" fn fork() -> pid_t {
    fork_like(proc_op::FORK, || call_real!(fork()))
}

/// `vfork(2)`, performed as `fork`: the child gets a copy of the address space instead of a
/// borrowed one, which every correct vfork program tolerates.
#[no_mangle]
pub extern "C" fn vfork() -> pid_t {
    fork_like(proc_op::VFORK, || call_real!(fork()))
}

/// `_Fork(3)` (glibc 2.34+): fork without the atfork handlers.
#[no_mangle]
pub extern "C" fn _Fork() -> pid_t {
    fork_like(proc_op::FORK, || call_real!(_Fork()))
}

/// What a process-cloning child runs first: attach, then the program's function.
#[repr(C)]
struct Trampoline {
    f: extern "C" fn(*mut c_void) -> c_int,
    arg: *mut c_void,
    /// The parent was single-threaded ([`objects::before_fork`]).
    single: bool,
}

extern "C" fn clone_child(t: *mut c_void) -> c_int {
    // SAFETY: `t` is the parent's Trampoline, copied into this child's own address space by
    // clone (no CLONE_VM), so it is valid and unchanged.
    let t = unsafe { &*(t as *const Trampoline) };
    lifecycle::after_fork_child(t.single);
    (t.f)(t.arg)
}

/// Entry from the C shim for `clone` (variadic).
///
/// # Safety
/// C contract of `clone`.
#[no_mangle]
pub unsafe extern "C" fn substrate_clone_hook(
    f: extern "C" fn(*mut c_void) -> c_int,
    stack: *mut c_void,
    flags: c_int,
    arg: *mut c_void,
    ptid: *mut pid_t,
    tls: *mut c_void,
    ctid: *mut pid_t,
) -> c_int {
    let thread = flags & libc::CLONE_THREAD != 0;
    if !thread {
        // As in `fork_like`.
        real::resolve_all();
    }
    // Threads share the image: nothing to record.
    let active = lifecycle::recording().filter(|_| !thread);
    let Some((_, img)) = active else {
        return call_real!(clone(f, stack, flags, arg, ptid, tls, ctid));
    };
    let r = if flags & libc::CLONE_VM != 0 {
        call_real!(clone(f, stack, flags, arg, ptid, tls, ctid))
    } else {
        let single = objects::before_fork(img);
        let mut t = Trampoline { f, arg, single };
        let tp = &mut t as *mut Trampoline as *mut c_void;
        // As the caller asked, with our function first in the child; `t` outlives the call in
        // the parent and is copied into the child (no CLONE_VM).
        call_real!(clone(clone_child, stack, flags, tp, ptid, tls, ctid))
    };
    let e = errno::Saved::now();
    record_fork(proc_op::CLONE, r, e.get());
    r
}

/// `exit(3)`: note how the process ends; the `on_exit` handler records it with the status
/// after the program's own `atexit` handlers have run.
#[no_mangle]
pub extern "C" fn exit(status: c_int) -> ! {
    // Not `lifecycle::recording`: the end is noted even from inside a hook (see `exiting`).
    lifecycle::exiting();
    // SAFETY: the real exit; a missing one cannot happen (libc defines it), _exit otherwise.
    unsafe {
        match crate::real::exit() {
            Some(f) => f(status),
            None => libc::_exit(status),
        }
    }
}

/// `_exit(2)`: record the end and release the slot, then end at once.
#[no_mangle]
pub extern "C" fn _exit(status: c_int) -> ! {
    // Not `lifecycle::recording`: the end is recorded even from inside a hook (see `end_now`).
    lifecycle::end_now(exit_how::UNDERSCORE_EXIT, status);
    // SAFETY: the real _exit; the raw syscall if the lookup failed.
    unsafe {
        match crate::real::_exit() {
            Some(f) => f(status),
            None => {
                libc::syscall(libc::SYS_exit_group, status);
                core::hint::unreachable_unchecked()
            }
        }
    }
}

/// `_Exit(3)`: as `_exit`.
#[no_mangle]
pub extern "C" fn _Exit(status: c_int) -> ! {
    lifecycle::end_now(exit_how::UNDERSCORE_EXIT_C99, status);
    // SAFETY: as for _exit.
    unsafe {
        match crate::real::_Exit() {
            Some(f) => f(status),
            None => {
                libc::syscall(libc::SYS_exit_group, status);
                core::hint::unreachable_unchecked()
            }
        }
    }
}

/// Record a reaped child that was killed by a signal.
fn reaped(pid: pid_t, status: c_int) {
    if pid <= 0 || !libc::WIFSIGNALED(status) {
        return;
    }
    // The hook asked `lifecycle::recording` before the call; this is the image after it.
    if let Some((_, img)) = lifecycle::active() {
        let mut ev = format::records::ProcessExit {
            ev: emit::header(img),
            how: exit_how::SIGNALED.into(),
            reserved: 0.into(),
            status: libc::WTERMSIG(status).into(),
        };
        // The child's pid; its span is found by the reader (see exit_how::SIGNALED).
        ev.ev.pid = (pid as u32).into();
        ev.ev.tid = (pid as u32).into();
        ev.ev.span = [0; 16];
        emit::event(img, &ev, core::iter::empty());
    }
}

/// A wait that reports the status even when the caller passes no status pointer.
fn waited(status: *mut c_int, call: impl FnOnce(*mut c_int) -> pid_t) -> pid_t {
    if lifecycle::recording().is_none() {
        return call(status);
    }
    let mut local: c_int = 0;
    let p = if status.is_null() {
        &mut local as *mut c_int
    } else {
        status
    };
    let r = call(p);
    let _e = errno::Saved::now();
    if r > 0 {
        // SAFETY: `p` is the caller's status or our local, written by the real call.
        reaped(r, unsafe { *p });
    }
    r
}

/// `waitpid(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn waitpid(pid: pid_t, status: *mut c_int, options: c_int) -> pid_t {
    waited(status, |p| call_real!(waitpid(pid, p, options)))
}

/// `wait(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn wait(status: *mut c_int) -> pid_t {
    waited(status, |p| call_real!(wait(p)))
}

/// `wait4(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn wait4(
    pid: pid_t,
    status: *mut c_int,
    options: c_int,
    ru: *mut libc::rusage,
) -> pid_t {
    waited(status, |p| call_real!(wait4(pid, p, options, ru)))
}

/// `wait3(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn wait3(status: *mut c_int, options: c_int, ru: *mut libc::rusage) -> pid_t {
    waited(status, |p| call_real!(wait3(p, options, ru)))
}

/// `waitid(2)`: a child reaped (not merely observed with `WNOWAIT`) after being killed.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn waitid(
    idtype: libc::idtype_t,
    id: libc::id_t,
    info: *mut libc::siginfo_t,
    options: c_int,
) -> c_int {
    let r = call_real!(waitid(idtype, id, info, options));
    if r == 0 && !info.is_null() && options & libc::WNOWAIT == 0 && lifecycle::recording().is_some()
    {
        let _e = errno::Saved::now();
        // SAFETY: the real call filled *info.
        let (code, pid, sig) = unsafe { ((*info).si_code, (*info).si_pid(), (*info).si_status()) };
        if code == libc::CLD_KILLED || code == libc::CLD_DUMPED {
            // Encode as a wait status "killed by sig" for `reaped`.
            reaped(pid, sig & 0x7f);
        }
    }
    r
}
