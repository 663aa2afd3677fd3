//! Whether writers are alive, asked often and cheaply: the drain's [`format::Liveness`].
//!
//! The reader asks about a writer whenever it finds a record still being written (to tell a
//! slow writer from a dead one) and whenever a reservation's header is not written yet (is
//! any writer alive at all?); a follower finds both many times a second in a busy build, and
//! the second question walks the writer table, one question per slot used so far.
//! [`format::ProcLiveness`] answers each by reading `/proc/PID/stat` (an open, a read and a
//! close, and a failed path walk for every process that is gone). Here:
//!
//! - a process that is gone is first told by `kill(pid, 0)` (one system call, no path walk);
//!   only a process that exists has its `/proc/PID/stat` read (its start time, zombie or not);
//! - [`CachedLiveness`] also remembers answers: a process found gone with a known start time
//!   stays gone (a process that takes its pid later starts later: it is another), and a
//!   process found alive is taken to be alive for [`ALIVE_FOR`] (a stale `true` only delays, by
//!   that much at most, noticing that a writer died: the [`format::Liveness`] contract). A
//!   process found gone whose start time is not known (0: a slot being claimed or released)
//!   is asked again each time, since its pid may be reused.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use format::{Liveness, ProcLiveness};

/// How long an answer "alive" is trusted.
pub const ALIVE_FOR: Duration = Duration::from_millis(50);

/// At most this many answers are kept (then they are all forgotten).
const MAX_KEPT: usize = 1 << 16;

/// [`format::ProcLiveness`]'s answers, with a process that no longer exists told by
/// `kill(pid, 0)` first.
///
/// ```
/// use format::Liveness;
/// let me = std::process::id();
/// assert!(drain::liveness::FreshLiveness.alive(me, 0));
/// assert!(!drain::liveness::FreshLiveness.alive(0, 0));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct FreshLiveness;

impl Liveness for FreshLiveness {
    fn alive(&self, pid: u32, start_time: u64) -> bool {
        pid != 0 && format::sys::pid_exists(pid) && ProcLiveness.alive(pid, start_time)
    }
}

#[derive(Clone, Copy)]
enum Known {
    /// Alive when last asked, at this time.
    Alive(Instant),
    /// Gone for good (a known start time).
    Gone,
}

/// [`FreshLiveness`] with answers remembered (see the module's text): what the follower's
/// reader asks.
///
/// ```
/// use format::Liveness;
/// let live = drain::liveness::CachedLiveness::default();
/// let me = std::process::id();
/// let start = format::sys::process_start_time(me).unwrap();
/// assert!(live.alive(me, start));
/// assert!(live.alive(me, start), "remembered");
/// assert!(!live.alive(0, 0));
/// ```
#[derive(Default)]
pub struct CachedLiveness {
    known: RefCell<HashMap<(u32, u64), Known>>,
}

impl Liveness for CachedLiveness {
    fn alive(&self, pid: u32, start_time: u64) -> bool {
        if pid == 0 {
            return false;
        }
        let now = Instant::now();
        let Ok(mut known) = self.known.try_borrow_mut() else {
            return FreshLiveness.alive(pid, start_time);
        };
        match known.get(&(pid, start_time)) {
            Some(Known::Gone) => return false,
            Some(Known::Alive(t)) if now.saturating_duration_since(*t) < ALIVE_FOR => return true,
            _ => {}
        }
        let alive = FreshLiveness.alive(pid, start_time);
        if known.len() >= MAX_KEPT {
            known.clear();
        }
        if alive {
            known.insert((pid, start_time), Known::Alive(now));
        } else if start_time != 0 {
            known.insert((pid, start_time), Known::Gone);
        } else {
            known.remove(&(pid, start_time));
        }
        alive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_process_is_dead_and_stays_so() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = format::sys::process_start_time(pid).unwrap_or(1);
        child.wait().unwrap();
        let live = CachedLiveness::default();
        assert!(!live.alive(pid, start));
        assert!(!live.alive(pid, start));
        assert!(!live.alive(pid, 0));
        assert!(!FreshLiveness.alive(pid, 0));
        // Alive answers are remembered for ALIVE_FOR, then asked again.
        let me = std::process::id();
        assert!(live.alive(me, 0));
        assert!(matches!(
            live.known.borrow().get(&(me, 0)),
            Some(Known::Alive(_))
        ));
    }
}
