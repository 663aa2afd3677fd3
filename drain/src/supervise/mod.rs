//! `substrate-drain supervise RING`: follow, with `ptrace`, the programs of a session the
//! preload cannot enter (static executables, such as Go programs), so that no subtree of the
//! process tree goes dark.
//!
//! One process, one thread: it listens on the ring's abstract socket
//! ([`format::supervise::socket_name`]), seizes the threads that ask ([`tracer`]), and waits for
//! their stops, multiplexed with `poll` over the socket and a `signalfd` for `SIGCHLD` (a
//! tracer is told of every stop of its tracees by `SIGCHLD`). It ends on `SIGTERM`, `SIGINT`
//! or `SIGHUP` (and when the process that started it dies, with `--ready-fd`); its tracees are
//! then detached by the kernel and run on.
//!
//! Why `ptrace` and not seccomp user notification: a seccomp filter outlives its supervisor and
//! then fails the calls it catches (`ENOSYS`), and needs `no_new_privs`, which disables setuid
//! programs for the whole subtree. A tracer that dies leaves its tracees running unharmed.

mod procfs;
mod tracer;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use format::supervise::{op, reply, Reply, Request, MAGIC};
use format::Ring;
use zerocopy::IntoBytes;

use tracer::Supervisor;

/// Arguments of `supervise`.
#[derive(Args)]
pub struct SuperviseArgs {
    /// The session ring.
    ring: PathBuf,
    /// Write one byte to this descriptor once listening, then close it; end when the parent
    /// process dies (how `record` starts a supervisor).
    #[arg(long, value_name = "FD", hide = true)]
    ready_fd: Option<i32>,
    /// What to record of the static programs followed: `process` events only (they stop at
    /// exec, fork and signals), or `full`: also their file opens (they then stop at every
    /// system call, which costs them several microseconds a call).
    #[arg(long = "static", value_enum, default_value = "process")]
    depth: StaticDepth,
}

/// How much of a static program is recorded.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StaticDepth {
    /// Process events: start, exec, fork, exit.
    Process,
    /// Process events and file opens (a stop per system call).
    Full,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("substrate-drain supervise: {msg}");
    ExitCode::from(2)
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Listen on the ring's supervisor socket.
fn listen(ring: &Ring) -> io::Result<OwnedFd> {
    let name = format::supervise::socket_name(ring.header());
    let (addr, len) = format::supervise::sockaddr(&name);
    // SAFETY: plain system calls; the descriptor is owned at once.
    let fd = unsafe {
        OwnedFd::from_raw_fd(cvt(libc::socket(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        ))?)
    };
    // SAFETY: addr is a valid sockaddr_un of length len.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), &addr as *const _ as *const _, len) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), 64) })?;
    Ok(fd)
}

/// A `signalfd` for the signals the supervisor waits on (blocked in this thread).
fn signals() -> io::Result<OwnedFd> {
    // SAFETY: sigset_t is plain data, filled by sigemptyset/sigaddset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is valid; blocking signals in this (only) thread, then a signalfd for them.
    unsafe {
        libc::sigemptyset(&mut set);
        for s in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        Ok(OwnedFd::from_raw_fd(cvt(libc::signalfd(
            -1,
            &set,
            libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
        ))?))
    }
}

/// One client connection: the request it made, once made.
struct Conn {
    fd: OwnedFd,
    /// The peer's process (from `SO_PEERCRED`): it may ask only for its own threads.
    peer_pid: i32,
    asked_ptracer: bool,
}

fn send(fd: &OwnedFd, status: u32, errno: i32) {
    let r = Reply {
        magic: MAGIC.into(),
        status: status.into(),
        errno: errno.into(),
        supervisor_pid: std::process::id().into(),
    };
    let b = r.as_bytes();
    // SAFETY: b is valid for reads of its length.
    unsafe {
        libc::send(
            fd.as_raw_fd(),
            b.as_ptr().cast(),
            b.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
}

fn peer_pid(fd: &OwnedFd) -> Option<i32> {
    // SAFETY: ucred is plain data, written by the kernel.
    let mut c: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: c and len are valid for writes.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut c as *mut _ as *mut _,
            &mut len,
        )
    };
    // SAFETY: a plain id query.
    (r == 0 && c.uid == unsafe { libc::geteuid() }).then_some(c.pid)
}

/// Whether thread `tid` belongs to process `pid`.
fn thread_of(pid: i32, tid: i32) -> bool {
    std::fs::metadata(format!("/proc/{pid}/task/{tid}")).is_ok()
}

/// Read and answer one request on `c`; `false` when the connection is over.
fn serve(sup: &mut Supervisor<'_>, c: &mut Conn) -> bool {
    let mut req = Request::default();
    let b = req.as_mut_bytes();
    // SAFETY: b is valid for writes of its length.
    let n = unsafe {
        libc::recv(
            c.fd.as_raw_fd(),
            b.as_mut_ptr().cast(),
            b.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock;
    }
    if n as usize != size_of::<Request>() || req.magic.get() != MAGIC {
        return false;
    }
    let (pid, tid) = (req.pid.get() as i32, req.tid.get() as i32);
    if pid != c.peer_pid || !thread_of(pid, tid) {
        send(&c.fd, reply::REFUSED, libc::EPERM);
        return false;
    }
    match req.op.get() {
        op::EXEC | op::SPAWN | op::ROOT => {
            match sup.seize(pid, tid, req.span) {
                Ok(()) => send(&c.fd, reply::FOLLOWING, 0),
                Err(libc::EPERM) if !c.asked_ptracer => {
                    c.asked_ptracer = true;
                    send(&c.fd, reply::NEED_PTRACER, libc::EPERM);
                }
                Err(e) => send(&c.fd, reply::REFUSED, e),
            }
            true
        }
        op::DONE => {
            sup.release(tid);
            send(&c.fd, reply::DETACHED, 0);
            true
        }
        _ => {
            send(&c.fd, reply::REFUSED, libc::EINVAL);
            false
        }
    }
}

/// Run `supervise`.
pub fn run(a: SuperviseArgs) -> ExitCode {
    let ring = match Ring::open(&a.ring) {
        Ok(r) => r,
        Err(e) => return fail(drain::ring_error(&a.ring, &e)),
    };
    let sigfd = match signals() {
        Ok(s) => s,
        Err(e) => return fail(format!("signalfd: {e}")),
    };
    let listener = match listen(&ring) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            return fail(format!(
                "{}: this ring already has a supervisor",
                a.ring.display()
            ))
        }
        Err(e) => return fail(format!("listening: {e}")),
    };
    if let Some(fd) = a.ready_fd {
        // SAFETY: end with the process that started us (it may be gone already: checked by
        // the getppid below); then tell it we listen, on the descriptor it gave us.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            if libc::getppid() == 1 {
                return ExitCode::SUCCESS;
            }
            libc::write(fd, b"1".as_ptr().cast(), 1);
            libc::close(fd);
        }
    }
    let mut sup = Supervisor::new(&ring, a.depth == StaticDepth::Full);
    let mut conns: Vec<Conn> = vec![];
    loop {
        let mut fds = vec![
            libc::pollfd {
                fd: sigfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        fds.extend(conns.iter().map(|c| libc::pollfd {
            fd: c.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }));
        // SAFETY: fds is a valid array of its length.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if r < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return fail(format!("poll: {}", io::Error::last_os_error()));
        }
        let mut quit = false;
        if fds[0].revents != 0 {
            // SAFETY: signalfd_siginfo is plain data, filled by read.
            let mut si: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            // SAFETY: si is valid for writes of its size.
            while unsafe {
                libc::read(
                    sigfd.as_raw_fd(),
                    &mut si as *mut _ as *mut _,
                    size_of::<libc::signalfd_siginfo>(),
                )
            } > 0
            {
                if si.ssi_signo != libc::SIGCHLD as u32 {
                    quit = true;
                }
            }
        }
        // Every stop and exit reported (SIGCHLD coalesces: reap until none is left).
        loop {
            let mut status = 0;
            // SAFETY: waiting for any tracee of ours, without blocking.
            let tid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::__WALL) };
            if tid <= 0 {
                break;
            }
            sup.on_wait(tid, status);
        }
        if fds[1].revents != 0 {
            loop {
                // SAFETY: accepting on our listener; the descriptor is owned at once.
                let fd = unsafe {
                    libc::accept4(
                        listener.as_raw_fd(),
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        libc::SOCK_CLOEXEC,
                    )
                };
                if fd < 0 {
                    break;
                }
                // SAFETY: a fresh descriptor of ours.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                if let Some(peer_pid) = peer_pid(&fd) {
                    conns.push(Conn {
                        fd,
                        peer_pid,
                        asked_ptracer: false,
                    });
                }
            }
        }
        let ready: Vec<bool> = fds[2..].iter().map(|f| f.revents != 0).collect();
        let mut i = 0;
        conns.retain_mut(|c| {
            // Connections accepted in this round are tried at once (their request may be in).
            let r = !ready.get(i).copied().unwrap_or(true) || serve(&mut sup, c);
            i += 1;
            r
        });
        if quit {
            return ExitCode::SUCCESS;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromBytes;

    #[test]
    fn request_and_reply_sizes_are_fixed() {
        assert_eq!(size_of::<Request>(), 32);
        assert_eq!(size_of::<Reply>(), 16);
        let r = Request::read_from_bytes(&[0u8; 32][..]).unwrap();
        assert_eq!(r.magic.get(), 0);
    }
}
