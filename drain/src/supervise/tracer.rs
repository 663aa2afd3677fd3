//! The `ptrace` side of the supervisor: which threads it traces and why, what each stop
//! means, and the records it writes on the traced processes' behalf.
//!
//! Invariants:
//! - Every thread is seized with `PTRACE_O_TRACEEXEC | TRACEFORK | TRACEVFORK | TRACECLONE`
//!   (children and threads are traced from birth) and nothing else: a traced process stops
//!   only at exec, at the birth of a thread or process, and for signal delivery (the signal is
//!   delivered unchanged). No system call stops.
//! - A thread is in [`Supervisor::tasks`] from its seize (or birth) to its exit or detach; a
//!   process whose image is followed is in [`Supervisor::procs`] with its own writer slot in the
//!   ring, attached under the traced process's pid and start time, so the drain's "is anyone
//!   still running" counts it exactly as a preloaded process.
//! - An image the preload will enter (dynamic, with the library in `LD_PRELOAD` and
//!   `SUBSTRATE_RING` set) is handed over at its exec stop: its `SUBSTRATE_PARENT_IMAGE` is
//!   set to the image that exec'd (in place), the writer slot is left for the preload to adopt,
//!   and every thread is detached.
//! - If the supervisor dies, the kernel detaches every tracee and they run on: nothing the
//!   supervisor does changes what a traced program computes.

use std::collections::{HashMap, HashSet};

use format::records::{
    exit_how, proc_op, start_flags, untraced, EventHeader, Exec, Fork, ProcessExit, ProcessStart,
    SHIM_VALUE_MAX,
};
use format::{Event, Ring, Writer, WriterIdentity};

use super::procfs::{self, ImageInfo};

const OPTIONS: libc::c_int = libc::PTRACE_O_TRACEEXEC
    | libc::PTRACE_O_TRACEFORK
    | libc::PTRACE_O_TRACEVFORK
    | libc::PTRACE_O_TRACECLONE
    // Syscall stops (only with `--static full`) are told from SIGTRAP by bit 0x80.
    | libc::PTRACE_O_TRACESYSGOOD;

/// `PTRACE_GET_SYSCALL_INFO` (Linux 5.3).
const PTRACE_GET_SYSCALL_INFO: libc::c_uint = 0x420e;
const SYSCALL_INFO_ENTRY: u8 = 1;
const SYSCALL_INFO_EXIT: u8 = 2;

/// `struct ptrace_syscall_info`, with the entry and exit members of its union side by side
/// (`rval` and `is_error` overlay `nr` and the first argument).
#[repr(C)]
#[derive(Default)]
struct SyscallInfo {
    op: u8,
    pad: [u8; 3],
    arch: u32,
    instruction_pointer: u64,
    stack_pointer: u64,
    /// Entry: `nr`; exit: `rval`.
    nr_or_rval: u64,
    /// Entry: `args[0]`; exit: `is_error` in the low byte.
    args: [u64; 6],
}

/// Why a thread is traced.
#[derive(Debug, Clone, Copy)]
enum Role {
    /// A preloaded thread seized at its own request, until its exec (or spawn) is done. Its
    /// image is the preload's: `span` is the new image's parent.
    Requester { span: [u8; 16] },
    /// A child a requester's spawn created, not yet exec'd.
    Spawned { parent_image: [u8; 16] },
    /// A thread of a followed process.
    Member,
    /// A thread a requester created while traced: detached at its first stop.
    Foreign,
}

#[derive(Debug)]
struct Task {
    tgid: i32,
    role: Role,
}

/// A followed process: its image and its writer.
struct Proc<'r> {
    writer: Option<Writer<'r>>,
    span: [u8; 16],
    info: ImageInfo,
}

/// The tracer's state.
pub struct Supervisor<'r> {
    ring: &'r Ring,
    /// `--static full`: followed processes also stop at every system call, and their file
    /// opens are recorded.
    full: bool,
    /// The system call each thread of a followed process is in (`full` only).
    in_syscall: HashMap<i32, (u64, [u64; 6])>,
    tasks: HashMap<i32, Task>,
    procs: HashMap<i32, Proc<'r>>,
    /// New threads whose first stop came before their creator's event.
    unclaimed: HashSet<i32>,
    /// New threads whose creator's event came first: resumed at their first stop.
    expected: HashSet<i32>,
}

fn ptrace(req: libc::c_uint, tid: i32, data: usize) -> libc::c_long {
    // SAFETY: ptrace requests with integer arguments on a thread we trace (or seize).
    unsafe { libc::ptrace(req, tid, 0usize, data) }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn event_msg(tid: i32) -> u64 {
    let mut m: libc::c_ulong = 0;
    // SAFETY: GETEVENTMSG writes one c_ulong at the address given.
    unsafe { libc::ptrace(libc::PTRACE_GETEVENTMSG, tid, 0usize, &mut m as *mut _) };
    m as u64
}

impl<'r> Supervisor<'r> {
    /// A supervisor writing into `ring`.
    pub fn new(ring: &'r Ring, full: bool) -> Self {
        Supervisor {
            ring,
            full,
            in_syscall: HashMap::new(),
            tasks: HashMap::new(),
            procs: HashMap::new(),
            unclaimed: HashSet::new(),
            expected: HashSet::new(),
        }
    }

    /// Seize `tid` (of process `pid`) for a request; `Err(errno)` when the kernel refuses.
    pub fn seize(&mut self, pid: i32, tid: i32, span: [u8; 16]) -> Result<(), i32> {
        if ptrace(libc::PTRACE_SEIZE, tid, OPTIONS as usize) < 0 {
            return Err(errno());
        }
        self.tasks.insert(
            tid,
            Task {
                tgid: pid,
                role: Role::Requester { span },
            },
        );
        Ok(())
    }

    /// Stop tracing a requester whose exec failed or whose spawn returned. Waits for the
    /// thread's stop (handling whatever other stop it reports first).
    pub fn release(&mut self, tid: i32) {
        if !matches!(
            self.tasks.get(&tid),
            Some(Task {
                role: Role::Requester { .. },
                ..
            })
        ) {
            return;
        }
        if ptrace(libc::PTRACE_INTERRUPT, tid, 0) < 0 {
            self.tasks.remove(&tid);
            return;
        }
        loop {
            let mut status = 0;
            // SAFETY: waiting for one tracee of ours.
            let r = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
            if r < 0 {
                if errno() == libc::EINTR {
                    continue;
                }
                self.tasks.remove(&tid);
                return;
            }
            if !libc::WIFSTOPPED(status) {
                self.on_wait(tid, status);
                return;
            }
            let event = (status >> 16) & 0xff;
            let sig = libc::WSTOPSIG(status);
            if event == libc::PTRACE_EVENT_STOP || event == 0 {
                // The interrupt's stop, or a signal on its way: detach, delivering it.
                let deliver = if event == 0 { sig } else { 0 };
                ptrace(libc::PTRACE_DETACH, tid, deliver as usize);
                self.tasks.remove(&tid);
                return;
            }
            self.on_wait(tid, status);
            if !self.tasks.contains_key(&tid) {
                return;
            }
        }
    }

    /// Handle one `waitpid` report of `tid`.
    pub fn on_wait(&mut self, tid: i32, status: i32) {
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            self.on_exit(tid, status);
            return;
        }
        if !libc::WIFSTOPPED(status) {
            return;
        }
        let sig = libc::WSTOPSIG(status);
        match (status >> 16) & 0xff {
            libc::PTRACE_EVENT_EXEC => self.on_exec(tid),
            e @ (libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE) => {
                let child = event_msg(tid) as i32;
                self.on_birth(tid, child, e);
                self.resume(tid, 0);
            }
            libc::PTRACE_EVENT_STOP => {
                if matches!(
                    sig,
                    libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
                ) {
                    // A group stop: stay stopped (job control) until SIGCONT.
                    ptrace(libc::PTRACE_LISTEN, tid, 0);
                } else if !self.tasks.contains_key(&tid) {
                    // A new thread's first stop, before its creator's event: wait for it.
                    self.unclaimed.insert(tid);
                } else {
                    self.expected.remove(&tid);
                    self.resume_new(tid);
                }
            }
            0 if sig == libc::SIGTRAP | 0x80 => self.on_syscall(tid),
            // A signal on its way to the thread: deliver it.
            0 => self.resume(tid, sig),
            _ => self.resume(tid, 0),
        }
    }

    fn resume_new(&mut self, tid: i32) {
        if matches!(self.tasks.get(&tid).map(|t| t.role), Some(Role::Foreign)) {
            self.tasks.remove(&tid);
            ptrace(libc::PTRACE_DETACH, tid, 0);
        } else {
            self.resume(tid, 0);
        }
    }

    /// Let `tid` run on, delivering `sig`: to its next system call in full mode (a thread of a
    /// followed process), else to its next event.
    fn resume(&self, tid: i32, sig: i32) {
        let member = matches!(self.tasks.get(&tid).map(|t| t.role), Some(Role::Member));
        let req = if self.full && member {
            libc::PTRACE_SYSCALL
        } else {
            libc::PTRACE_CONT
        };
        ptrace(req, tid, sig as usize);
    }

    /// A system call stop of a followed thread (full mode): note the call at entry; at exit,
    /// record it if it opened a file.
    fn on_syscall(&mut self, tid: i32) {
        let mut i = SyscallInfo::default();
        // SAFETY: the kernel writes at most the size given into `i`.
        let n = unsafe {
            libc::ptrace(
                PTRACE_GET_SYSCALL_INFO,
                tid,
                size_of::<SyscallInfo>(),
                &mut i as *mut SyscallInfo,
            )
        };
        if n > 0 && i.op == SYSCALL_INFO_ENTRY {
            self.in_syscall.insert(tid, (i.nr_or_rval, i.args));
        } else if n > 0 && i.op == SYSCALL_INFO_EXIT {
            if let Some((nr, args)) = self.in_syscall.remove(&tid) {
                let rval = i.nr_or_rval as i64;
                self.syscall_done(tid, nr, &args, rval);
            }
        }
        self.resume(tid, 0);
    }

    fn syscall_done(&mut self, tid: i32, nr: u64, a: &[u64; 6], rval: i64) {
        use format::records::{open_op, FileOpen};
        let (op, dirfd, path, flags, mode) = match nr as i64 {
            libc::SYS_open => (
                open_op::OPEN,
                libc::AT_FDCWD,
                a[0],
                a[1] as i32,
                a[2] as u32,
            ),
            libc::SYS_openat => (open_op::OPENAT, a[0] as i32, a[1], a[2] as i32, a[3] as u32),
            libc::SYS_creat => (
                open_op::CREAT,
                libc::AT_FDCWD,
                a[0],
                libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
                a[1] as u32,
            ),
            _ => return,
        };
        let Some(pid) = self.tasks.get(&tid).map(|t| t.tgid) else {
            return;
        };
        let Some(p) = self.procs.get(&pid) else {
            return;
        };
        let has_mode = flags & (libc::O_CREAT | libc::O_TMPFILE) != 0;
        let (fd, err) = if rval < 0 {
            (-1, -rval as i32)
        } else {
            (rval as i32, 0)
        };
        let path = procfs::read_cstr(tid, path, libc::PATH_MAX as usize);
        let mut ev = FileOpen {
            ev: self.header(pid, tid, p.span),
            op: op.into(),
            has_mode: u16::from(has_mode).into(),
            flags: flags.into(),
            mode: if has_mode { mode } else { 0 }.into(),
            dirfd: dirfd.into(),
            fd: fd.into(),
            errno: err.into(),
        };
        if path.is_none() {
            ev.ev.flags = format::records::ev_flags::PATH_UNREADABLE.into();
        }
        Self::write(&p.writer, self.ring, &ev, &[path.as_deref().unwrap_or(b"")]);
    }

    fn header(&self, pid: i32, tid: i32, span: [u8; 16]) -> EventHeader {
        EventHeader {
            ts_ns: format::sys::clock_ns(self.ring.clock()).into(),
            span,
            pid: (pid as u32).into(),
            tid: (tid as u32).into(),
            ..Default::default()
        }
    }

    fn write<E: Event>(w: &Option<Writer<'r>>, ring: &Ring, e: &E, vars: &[&[u8]]) {
        match w {
            Some(w) => {
                let _ = w.write_event(e, vars.iter().copied());
            }
            None => ring.count_drop(format::DropReason::NoSlot),
        }
    }

    fn attach(&self, pid: i32, start_time: u64) -> Option<Writer<'r>> {
        Writer::attach_as(
            self.ring,
            WriterIdentity {
                pid: pid as u32,
                start_time,
                previous_span: [0; 16],
            },
        )
        .ok()
    }

    /// Write the `process_start` of a followed image.
    fn start(&self, p: &Proc<'r>, pid: i32, flags: u32, parent: [u8; 16]) {
        let i = &p.info;
        let mut flags = flags | start_flags::SUPERVISED;
        if parent == [0; 16] {
            flags |= start_flags::ROOT;
        }
        if i.shim_parent_span.is_some() {
            flags |= start_flags::SHIM_PARENT_SPAN;
        }
        if i.shim_session_id.is_some() {
            flags |= start_flags::SHIM_SESSION_ID;
        }
        fn shim(v: &Option<Vec<u8>>) -> &[u8] {
            let v = v.as_deref().unwrap_or(b"");
            &v[..v.len().min(SHIM_VALUE_MAX)]
        }
        let e = ProcessStart {
            ev: self.header(pid, pid, p.span),
            ppid: i.ppid.into(),
            start_flags: flags.into(),
            parent_image: parent,
            start_time: i.start_time.into(),
        };
        let mut vars: Vec<&[u8]> = vec![
            &i.exe,
            &i.cwd,
            shim(&i.shim_parent_span),
            shim(&i.shim_session_id),
        ];
        vars.extend(i.argv.iter().map(Vec::as_slice));
        Self::write(&p.writer, self.ring, &e, &vars);
        if let Some(w) = &p.writer {
            w.set_span(&p.span);
        }
    }

    fn on_exec(&mut self, tid: i32) {
        // A thread other than the leader exec'd: it now has the leader's id.
        let former = event_msg(tid) as i32;
        if former != tid {
            if let Some(t) = self.tasks.remove(&former) {
                self.tasks.insert(tid, t);
            }
        }
        let Some(task) = self.tasks.get(&tid) else {
            ptrace(libc::PTRACE_CONT, tid, 0);
            return;
        };
        let (pid, role) = (task.tgid, task.role);
        // Every other thread of the process is gone.
        self.tasks.retain(|&t, k| k.tgid != pid || t == tid);
        let info = procfs::image(pid);
        let parent = match role {
            Role::Requester { span, .. } => span,
            Role::Spawned { parent_image } => parent_image,
            Role::Member => match self.procs.get(&pid) {
                Some(p) => {
                    // The image it leaves: its exec, as the preload would have written it.
                    let bits = if info.preload_enters {
                        0
                    } else {
                        untraced::STATIC | untraced::SUPERVISED
                    };
                    let e = Exec {
                        ev: self.header(pid, tid, p.span),
                        op: proc_op::EXECVE.into(),
                        untraced: bits.into(),
                        fd: libc::AT_FDCWD.into(),
                        ..Default::default()
                    };
                    let mut vars: Vec<&[u8]> = vec![&info.exe];
                    vars.extend(info.argv.iter().map(Vec::as_slice));
                    Self::write(&p.writer, self.ring, &e, &vars);
                    p.span
                }
                None => [0; 16],
            },
            Role::Foreign => {
                self.tasks.remove(&tid);
                ptrace(libc::PTRACE_DETACH, tid, 0);
                return;
            }
        };
        if info.preload_enters {
            // Hand over: the preload names `parent` as its parent image (a requester already
            // set that value itself), and adopts the writer slot, which stays held.
            if matches!(role, Role::Member) {
                procfs::set_parent_image(pid, &parent);
            }
            if let Some(p) = self.procs.remove(&pid) {
                std::mem::forget(p.writer);
            }
            self.tasks.remove(&tid);
            ptrace(libc::PTRACE_DETACH, tid, 0);
            return;
        }
        let writer = match self.procs.remove(&pid) {
            Some(p) => p.writer,
            // The preload's slot of this pid (the requester's image) is adopted.
            None => self.attach(pid, info.start_time),
        };
        let p = Proc {
            writer,
            span: format::ids::new_uuid_v7(),
            info,
        };
        self.start(&p, pid, start_flags::EXEC, parent);
        self.procs.insert(pid, p);
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.role = Role::Member;
        }
        self.resume(tid, 0);
    }

    fn on_birth(&mut self, parent_tid: i32, child: i32, event: i32) {
        let Some(pt) = self.tasks.get(&parent_tid) else {
            return;
        };
        let (ptgid, prole) = (pt.tgid, pt.role);
        let thread = event == libc::PTRACE_EVENT_CLONE && procfs::is_thread_of(ptgid, child);
        let task = match prole {
            Role::Requester { span, .. } if !thread => Task {
                tgid: child,
                role: Role::Spawned { parent_image: span },
            },
            Role::Requester { .. } | Role::Foreign => Task {
                tgid: if thread { ptgid } else { child },
                role: Role::Foreign,
            },
            Role::Spawned { parent_image } => Task {
                tgid: if thread { ptgid } else { child },
                role: if thread {
                    Role::Spawned { parent_image }
                } else {
                    Role::Foreign
                },
            },
            Role::Member if thread => Task {
                tgid: ptgid,
                role: Role::Member,
            },
            Role::Member => {
                self.forked(ptgid, parent_tid, child, event);
                Task {
                    tgid: child,
                    role: Role::Member,
                }
            }
        };
        self.tasks.insert(child, task);
        if self.unclaimed.remove(&child) {
            self.resume_new(child);
        } else {
            self.expected.insert(child);
        }
    }

    /// A followed process forked: its `fork` record, and the child's `process_start`.
    fn forked(&mut self, pid: i32, tid: i32, child: i32, event: i32) {
        let Some(p) = self.procs.get(&pid) else {
            return;
        };
        let op = match event {
            libc::PTRACE_EVENT_FORK => proc_op::FORK,
            libc::PTRACE_EVENT_VFORK => proc_op::VFORK,
            _ => proc_op::CLONE,
        };
        let f = Fork {
            ev: self.header(pid, tid, p.span),
            op: op.into(),
            child_pid: child.into(),
            ..Default::default()
        };
        Self::write(&p.writer, self.ring, &f, &[]);
        let mut info = p.info.clone();
        info.ppid = pid as u32;
        info.start_time = procfs::start_time(child);
        let c = Proc {
            writer: self.attach(child, info.start_time),
            span: format::ids::new_uuid_v7(),
            info,
        };
        let parent = p.span;
        self.start(&c, child, start_flags::FORKED, parent);
        self.procs.insert(child, c);
    }

    fn on_exit(&mut self, tid: i32, status: i32) {
        self.in_syscall.remove(&tid);
        self.unclaimed.remove(&tid);
        self.expected.remove(&tid);
        let Some(t) = self.tasks.remove(&tid) else {
            return;
        };
        if t.tgid != tid {
            return;
        }
        let Some(p) = self.procs.remove(&tid) else {
            return;
        };
        let (how, code) = if libc::WIFSIGNALED(status) {
            (exit_how::SIGNALED, libc::WTERMSIG(status))
        } else {
            (exit_how::EXIT, libc::WEXITSTATUS(status))
        };
        let e = ProcessExit {
            ev: self.header(tid, tid, p.span),
            how: how.into(),
            status: code.into(),
            ..Default::default()
        };
        Self::write(&p.writer, self.ring, &e, &[]);
        // Dropping the writer releases the slot.
    }
}
