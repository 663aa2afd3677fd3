//! The recording path: fill an event's common header and write it into the ring.
//!
//! No system call (the clock is read through the vDSO, the thread id is cached), no lock, no
//! allocation: [`event`] claims space in the ring and copies the fixed part and the variable
//! fields in place.
//!
//! # Invariants
//! - Called with an image of the published session ([`crate::session`]); starts nothing and
//!   uses nothing above it, so any hook or checkpoint may record.
//! - Callers save `errno` before a recording and restore it after ([`crate::errno`]).

use format::records::EventHeader;
use format::{sys, Event};

use crate::guard;
use crate::session::{self, Image};

/// The common header of an event written now by `img`'s process on this thread. Its time is
/// read from the clock the ring's header names ([`Image::clock`], cached when the image was
/// made: wall-clock time in the rings the drain creates), through the vDSO.
#[inline(always)]
pub fn header(img: &Image) -> EventHeader {
    EventHeader {
        ts_ns: sys::clock_ns(img.clock).into(),
        span: img.span,
        pid: img.pid.into(),
        tid: guard::tid().into(),
        ..Default::default()
    }
}

/// Write `fixed` and its var fields. A full ring or a missing writer drops the record (the
/// ring counts it); the program never waits. Returns the record's position if written.
#[inline(always)]
pub fn event<'a, E, I>(img: &Image, fixed: &E, vars: I) -> Option<u64>
where
    E: Event,
    I: Iterator<Item = &'a [u8]> + Clone,
{
    match &img.writer {
        Some(w) => w.write_event(fixed, vars).ok(),
        None => {
            // An image exists, so the session is published: the state as it is, no start.
            if let Some((fx, _)) = session::current() {
                session::count_no_slot(fx);
            }
            None
        }
    }
}
