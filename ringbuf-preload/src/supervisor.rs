//! Asking the session's supervisor to follow a program this library cannot enter (a static
//! executable): the client of `format::supervise`, with `errno` kept.
//!
//! Asked only for a target whose sole reason to be untraced is [`untraced::STATIC`]: a setuid
//! or setcap program must not be traced (under `ptrace` the kernel would run it without its
//! privileges). Three system calls when no supervisor listens (socket, connect refused, close);
//! none at all for programs the library enters.

use format::records::untraced;
use format::supervise::{self, Following};

use crate::session::{Fixed, Image};
use crate::{errno, guard};

/// Ask the supervisor to follow this thread's exec (`op::EXEC`) or spawn (`op::SPAWN`) of a
/// target untraced for `reason`. `None`: not followed (no supervisor, refused, or a reason
/// other than static).
pub fn follow(fx: &Fixed, img: &Image, reason: u16, op: u16) -> Option<Following> {
    if reason != untraced::STATIC {
        return None;
    }
    errno::preserve(|| supervise::request(fx.ring.header(), op, img.pid, guard::tid(), img.span))
}

/// The exec failed or the spawn returned: the supervisor stops tracing this thread.
pub fn done(f: Option<Following>, img: &Image) {
    if let Some(f) = f {
        errno::preserve(|| f.done(img.pid, guard::tid()));
    }
}
