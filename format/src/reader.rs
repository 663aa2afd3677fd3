//! The reading side: walk a ring's stream in order, yield records and loss reports.
//!
//! The protocol is not here: the reader's state machine (RING.md §4) is
//! [`crate::protocol::ReaderCore`], written against [`crate::mem::Mem`] so that the loom model
//! runs it too. [`Reader`] is that machine over a [`Ring`]'s mapping, with the monotonic clock
//! for its grace period and `/proc` for liveness by default. See [`crate::protocol::read`] for
//! what it does at each position.

use std::time::{Duration, Instant};

use crate::mem::MapMem;
use crate::protocol::read::{Clock, ReaderCore};
use crate::ring::{ProcLiveness, Ring};

pub use crate::protocol::read::{Item, Loss, LossReason, ReaderOptions, Record, Start, Waiting};

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            start: Start::Consumer,
            unwritten_grace: Duration::from_millis(500),
            liveness: Box::new(ProcLiveness),
        }
    }
}

/// [`Clock`] of `std::time::Instant` (`CLOCK_MONOTONIC`), from when it was made.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> MonotonicClock {
        MonotonicClock {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// Reads a ring in stream order.
pub struct Reader<'r> {
    ring: &'r Ring,
    core: ReaderCore<MapMem, MonotonicClock>,
}

impl<'r> Reader<'r> {
    /// A reader over `ring`.
    pub fn new(ring: &'r Ring, opts: ReaderOptions) -> Reader<'r> {
        Reader {
            ring,
            core: ReaderCore::new(
                ring.mem(),
                ring.geometry(),
                ring.writable(),
                opts,
                MonotonicClock::new(),
            ),
        }
    }

    /// The ring read.
    pub fn ring(&self) -> &'r Ring {
        self.ring
    }

    /// Position of the next record to read.
    pub fn position(&self) -> u64 {
        self.core.position()
    }

    /// Publish the position to the ring (frees space in discard mode; a restarted drain resumes
    /// here). Call it once what was read is safely stored. No-op on a read-only mapping.
    pub fn publish(&self) {
        self.core.publish()
    }

    /// Records in the stream below the position (read or reported lost), when known: what a
    /// reader resuming at the published position starts counting from.
    pub fn accounted(&self) -> Option<u64> {
        self.core.accounted()
    }

    /// The next item. Bounded work per call.
    #[inline]
    pub fn poll(&mut self) -> Item<'_> {
        self.core.poll()
    }
}
