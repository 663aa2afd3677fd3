//! The supervisor protocol: how a traced process asks the session's supervisor to follow a
//! program the preload cannot enter (a static executable), and the client side of it.
//!
//! The supervisor (`substrate-drain supervise RING`, started by `record`) listens on an
//! abstract Unix socket whose name is derived from the ring header ([`socket_name`]): no file,
//! no environment variable, and a process of another session cannot reach it by accident.
//! A `SOCK_SEQPACKET` connection carries fixed-size messages:
//!
//! 1. The client sends a [`Request`]: [`op::EXEC`] (the calling thread is about to exec a
//!    static program), [`op::SPAWN`] (it is about to `posix_spawn` one) or [`op::ROOT`] (the
//!    first program of a session, which no traced image started).
//! 2. The supervisor `PTRACE_SEIZE`s the thread and answers [`reply::FOLLOWING`], or
//!    [`reply::NEED_PTRACER`] (Yama refused: the client allows the supervisor's pid with
//!    `PR_SET_PTRACER` and asks again), or [`reply::REFUSED`].
//! 3. The client performs the call. A successful exec closes the connection (it is
//!    `SOCK_CLOEXEC`) and the supervisor sees the new image at its `PTRACE_EVENT_EXEC` stop.
//!    A failed exec, and every spawn once it has returned, sends [`op::DONE`]; the supervisor
//!    detaches the thread and answers [`reply::DETACHED`].
//!
//! Every wait is bounded ([`TIMEOUT_MS`]) and every failure means "not followed": the call
//! proceeds exactly as without a supervisor, and the target is recorded `untraced`. The client
//! makes raw system calls only (no allocation, no lock, no libc function the preload hooks), so
//! it is safe in a forked child of a threaded program and between fork and exec.

use zerocopy::little_endian::{I32, U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::layout::FileHeader;

/// First word of every message.
pub const MAGIC: u32 = 0x5355_5056;

/// Longest wait for the supervisor's answer; past it the call proceeds unfollowed.
pub const TIMEOUT_MS: i64 = 2000;

/// [`Request::op`] values.
pub mod op {
    /// The calling thread is about to exec a program the preload cannot enter.
    pub const EXEC: u16 = 1;
    /// The calling thread is about to spawn one (`posix_spawn`: follow the child it creates).
    pub const SPAWN: u16 = 2;
    /// The calling thread is about to exec the session's first program (no parent image).
    pub const ROOT: u16 = 3;
    /// The exec failed, or the spawn returned: stop following the calling thread.
    pub const DONE: u16 = 4;
}

/// [`Reply::status`] values.
pub mod reply {
    /// The thread is traced; its next exec (or the child its spawn creates) is followed.
    pub const FOLLOWING: u32 = 1;
    /// Not followed (`errno` says why).
    pub const REFUSED: u32 = 2;
    /// Yama refused the attach: allow `supervisor_pid` with `PR_SET_PTRACER` and ask again.
    pub const NEED_PTRACER: u32 = 3;
    /// The thread is no longer traced.
    pub const DETACHED: u32 = 4;
}

/// Client to supervisor.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Request {
    /// [`MAGIC`].
    pub magic: U32,
    /// [`op`].
    pub op: U16,
    /// Zero.
    pub reserved: U16,
    /// The thread to trace (the one that will exec or spawn).
    pub tid: U32,
    /// Its process.
    pub pid: U32,
    /// Span of the client's process image: the new image's `parent_image` (zeros for
    /// [`op::ROOT`]).
    pub span: [u8; 16],
}

/// Supervisor to client.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Reply {
    /// [`MAGIC`].
    pub magic: U32,
    /// [`reply`].
    pub status: U32,
    /// Why it was refused (an `errno` value), else 0.
    pub errno: I32,
    /// The supervisor's pid (for `PR_SET_PTRACER`).
    pub supervisor_pid: U32,
}

/// Length of [`socket_name`]'s name: a NUL, `substrate-supervise/`, 16 + 8 hex digits.
pub const SOCKET_NAME_LEN: usize = 1 + 20 + 24;

/// The abstract socket name of a ring's supervisor: a NUL, then `substrate-supervise/`, the
/// ring's creation time (16 hex digits) and its creator's pid (8 hex digits): the ring's id.
pub fn socket_name(h: &FileHeader) -> [u8; SOCKET_NAME_LEN] {
    let mut n = [0u8; SOCKET_NAME_LEN];
    n[1..21].copy_from_slice(b"substrate-supervise/");
    hex(h.created_unix_ns.get(), &mut n[21..37]);
    hex(u64::from(h.creator_pid.get()), &mut n[37..45]);
    n
}

fn hex(mut v: u64, out: &mut [u8]) {
    for b in out.iter_mut().rev() {
        *b = b"0123456789abcdef"[(v & 15) as usize];
        v >>= 4;
    }
}

/// The `sockaddr_un` of `name` and its length.
pub fn sockaddr(name: &[u8; SOCKET_NAME_LEN]) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: sockaddr_un is plain data; all zeros is valid.
    let mut a: libc::sockaddr_un = unsafe { core::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in a.sun_path.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    let len = core::mem::size_of::<libc::sa_family_t>() + SOCKET_NAME_LEN;
    (a, len as libc::socklen_t)
}

/// An open request: the thread is traced until [`Following::done`] or a successful exec.
pub struct Following {
    fd: i32,
}

fn sys(r: libc::c_long) -> Option<libc::c_long> {
    (r >= 0).then_some(r)
}

/// Ask the supervisor of the ring whose header is `h` to follow the calling thread. `None`:
/// no supervisor, or it refused; the caller proceeds unfollowed. Raw system calls only; the
/// caller saves and restores `errno`.
pub fn request(h: &FileHeader, op: u16, pid: u32, tid: u32, span: [u8; 16]) -> Option<Following> {
    let name = socket_name(h);
    let (addr, len) = sockaddr(&name);
    // SAFETY: plain system calls on our own descriptor and stack buffers.
    let fd = sys(unsafe {
        libc::syscall(
            libc::SYS_socket,
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
        )
    })? as i32;
    let f = Following { fd };
    // SAFETY: addr is a valid sockaddr_un of length len.
    sys(unsafe { libc::syscall(libc::SYS_connect, fd, &addr as *const _, len) })?;
    // The supervisor must be this user's: a process of another user could take the name.
    // SAFETY: ucred is plain data, written by the kernel.
    let mut cred: libc::ucred = unsafe { core::mem::zeroed() };
    let mut clen = core::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and clen are valid for writes.
    sys(unsafe {
        libc::syscall(
            libc::SYS_getsockopt,
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut _,
            &mut clen as *mut _,
        )
    })?;
    // SAFETY: a plain id query.
    if i64::from(cred.uid) != unsafe { libc::syscall(libc::SYS_geteuid) } {
        return None;
    }
    let tv = libc::timeval {
        tv_sec: TIMEOUT_MS / 1000,
        tv_usec: (TIMEOUT_MS % 1000) * 1000,
    };
    // SAFETY: tv is a valid timeval.
    sys(unsafe {
        libc::syscall(
            libc::SYS_setsockopt,
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _,
            core::mem::size_of::<libc::timeval>(),
        )
    })?;
    let req = Request {
        magic: MAGIC.into(),
        op: op.into(),
        reserved: 0.into(),
        tid: tid.into(),
        pid: pid.into(),
        span,
    };
    let r = f.ask(&req)?;
    match r.status.get() {
        reply::FOLLOWING => Some(f),
        reply::NEED_PTRACER => {
            // Yama: let the supervisor attach. The exception is cleared again once the
            // answer is in (an established trace does not need it).
            // SAFETY: prctl with integer arguments.
            unsafe {
                libc::syscall(
                    libc::SYS_prctl,
                    libc::PR_SET_PTRACER,
                    r.supervisor_pid.get() as libc::c_ulong,
                    0,
                    0,
                    0,
                )
            };
            let again = f.ask(&req);
            // SAFETY: as above.
            unsafe { libc::syscall(libc::SYS_prctl, libc::PR_SET_PTRACER, 0, 0, 0, 0) };
            (again?.status.get() == reply::FOLLOWING).then_some(f)
        }
        _ => None,
    }
}

impl Following {
    /// Send `req` and read the answer (bounded by [`TIMEOUT_MS`]).
    fn ask(&self, req: &Request) -> Option<Reply> {
        let b = req.as_bytes();
        // SAFETY: b is valid for reads of its length.
        let n = unsafe {
            libc::syscall(
                libc::SYS_sendto,
                self.fd,
                b.as_ptr(),
                b.len(),
                libc::MSG_NOSIGNAL,
                core::ptr::null::<u8>(),
                0,
            )
        };
        if n != b.len() as libc::c_long {
            return None;
        }
        let mut r = Reply::default();
        loop {
            let out = r.as_mut_bytes();
            // SAFETY: out is valid for writes of its length.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_recvfrom,
                    self.fd,
                    out.as_mut_ptr(),
                    out.len(),
                    0,
                    core::ptr::null_mut::<u8>(),
                    core::ptr::null_mut::<u8>(),
                )
            };
            // SAFETY: reading this thread's errno.
            if n < 0 && unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            if n != size_of::<Reply>() as libc::c_long || r.magic.get() != MAGIC {
                return None;
            }
            return Some(r);
        }
    }

    /// The exec failed, or the spawn returned: ask the supervisor to stop tracing this thread,
    /// and wait (bounded) until it has.
    pub fn done(self, pid: u32, tid: u32) {
        let req = Request {
            magic: MAGIC.into(),
            op: op::DONE.into(),
            reserved: 0.into(),
            tid: tid.into(),
            pid: pid.into(),
            span: [0; 16],
        };
        let _ = self.ask(&req);
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        // SAFETY: closing our own descriptor.
        unsafe { libc::syscall(libc::SYS_close, self.fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn socket_name_is_the_ring_id() {
        let mut h = FileHeader::new_zeroed();
        h.created_unix_ns = 0x0123_4567_89ab_cdef.into();
        h.creator_pid = 0x42.into();
        let n = socket_name(&h);
        assert_eq!(n[0], 0);
        assert_eq!(&n[1..], b"substrate-supervise/0123456789abcdef00000042");
    }
}
