//! RING.md §1.3, the writer table's life cycle: [`attach`] (claim a FREE or DEAD slot, adopt the
//! slot this process already holds after an exec, reap the slot of a process that no longer
//! exists) and [`detach`]. Which slot's process is alive is §5's rule, in [`super`].
//!
//! Slot life cycle: `FREE/DEAD --CAS--> CLAIMING(pid) --fields, release--> ACTIVE --detach-->
//! FREE`. The generation grows at every claim. A process that execs adopts its own slot again
//! (same pid and start time) with a new generation and attach position, so records its old
//! image left unfinished read as abandoned.
//!
//! What the orderings guarantee, and what readers and reclaimers rely on:
//! - the claim acquires the slot's control word (the previous owner's release in [`detach`], or
//!   the release of whoever marked it DEAD after seeing its process gone), so every reservation
//!   an earlier owner made is below the `attach_pos` read next: its unfinished records then
//!   read as abandoned ([`super::owner_gone`]), never as the new owner's;
//! - ACTIVE is stored with release after the fields, so whoever acquires ACTIVE (a consistent
//!   [`super::read_slot`]) sees this owner's start time and attach position.

use core::sync::atomic::Ordering::*;

use super::{Geometry, Liveness};
use crate::layout::{self, ctl, slot, slot_state};
use crate::mem::Mem;

/// Who is attaching: pid and an upper bound of its start time (clock ticks after boot), which
/// together name a process even when pids are reused (RING.md §1.3), and the span of the
/// image this process ran before an exec, whose slot it adopts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriterIdentity {
    /// Process id.
    pub pid: u32,
    /// The process started at or before this many clock ticks after boot (`/proc/PID/stat`
    /// field 22 is at most this; equal when it was read from there); 0 if unknown.
    pub start_time: u64,
    /// The span id of this process's image before an exec (zeros: none, or not known): the
    /// slot holding it is this process's own and is adopted.
    pub previous_span: [u8; 16],
}

/// A slot [`attach`] claimed and made ACTIVE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attached {
    /// The slot index.
    pub slot: u16,
    /// Its claim generation (what [`detach`] names).
    pub generation: u32,
    /// The reservation position read right after the claim (the slot's `attach_pos`).
    pub attach_pos: u64,
}

/// A span id as the two words [`crate::writer::Writer::set_span`] stores (native order).
fn span_words(span: &[u8; 16]) -> [u64; 2] {
    let (a, b) = span.split_at(8);
    [
        u64::from_ne_bytes(a.try_into().expect("8 bytes")),
        u64::from_ne_bytes(b.try_into().expect("8 bytes")),
    ]
}

/// How many slots from its home slot a process looks for the slot it already holds.
pub const ADOPT_PROBES: u32 = 64;

/// Attach as `id`: adopt the slot this process already holds (after exec), else take a free
/// one, else take over the slot of a process that no longer exists (`live`, asked with start
/// time 0: whether the pid exists at all). `None` when every slot is held by a live process.
/// A few dozen atomic accesses; `live` is asked only about ACTIVE slots, in the last pass.
pub fn attach<M: Mem>(
    mem: &M,
    g: &Geometry,
    id: WriterIdentity,
    live: &dyn Liveness,
) -> Option<Attached> {
    let n = g.slots;
    // Searches start at the process's home slot, `pid % slots`: a process finds the slot it
    // holds (after exec) in the first probes, and a new one touches one page of the table.
    let home = id.pid % n;
    let ctl_of = |i: u32| g.slot_off(i as u16) + slot::CTL;
    let try_claim = |i: u32, cur: u64| -> Option<u32> {
        let gen = layout::slot_ctl_generation(cur).wrapping_add(1);
        let new = layout::slot_ctl(slot_state::CLAIMING, gen, id.pid);
        // AcqRel: acquire orders us after whoever stored `cur` with release (the previous
        // owner's detach, a reader or reclaimer that marked it DEAD), so every reservation made
        // before is below the reservation position we read next; release is not needed yet.
        mem.cas(ctl_of(i), cur, new, AcqRel, Relaxed)
            .ok()
            .map(|_| gen)
    };
    // Acquire on each control word: see the fields of ACTIVE slots. Probing stops after
    // ADOPT_PROBES slots: a slot further away is not adopted (it is reaped once this process
    // exits), which keeps attaching cheap however big the table is. A slot is this process's
    // own when it holds our pid and either our start time or the span our previous image
    // stored (`Writer::set_span`, before the exec: same process, program order).
    let previous = span_words(&id.previous_span);
    let own = (0..n.min(ADOPT_PROBES)).map(|k| (home + k) % n).find(|&i| {
        let c = mem.load(ctl_of(i), Acquire);
        if layout::slot_ctl_state(c) != slot_state::ACTIVE || layout::slot_ctl_pid(c) != id.pid {
            return false;
        }
        let base = g.slot_off(i as u16);
        // Relaxed: the acquire load above saw ACTIVE, stored with release after the start
        // time; the span was stored by this same process before its exec.
        let span = [
            mem.load(base + slot::SPAN, Relaxed),
            mem.load(base + slot::SPAN + 8, Relaxed),
        ];
        mem.load(base + slot::START_TIME, Relaxed) == id.start_time
            || (previous != [0, 0] && span == previous)
    });
    let mut claimed = own.and_then(|i| try_claim(i, mem.load(ctl_of(i), Acquire)).map(|g| (i, g)));
    for k in 0..n {
        if claimed.is_some() {
            break;
        }
        let i = (home + k) % n;
        let c = mem.load(ctl_of(i), Acquire);
        if matches!(
            layout::slot_ctl_state(c),
            slot_state::FREE | slot_state::DEAD
        ) {
            claimed = try_claim(i, c).map(|g| (i, g));
        }
    }
    for k in 0..n {
        if claimed.is_some() {
            break;
        }
        let i = (home + k) % n;
        let c = mem.load(ctl_of(i), Acquire);
        if layout::slot_ctl_state(c) == slot_state::ACTIVE
            && !live.alive(layout::slot_ctl_pid(c), 0)
        {
            claimed = try_claim(i, c).map(|g| (i, g));
            if claimed.is_some() {
                // Relaxed: a statistic.
                mem.add(g.ctl(ctl::REAPED), 1, Relaxed);
            }
        }
    }
    let (i, generation) = claimed?;
    let base = g.slot_off(i as u16);
    // Relaxed: published by the release store of ACTIVE below.
    mem.store(base + slot::START_TIME, id.start_time, Relaxed);
    // A count an earlier owner left is of threads that are gone (it died, or this process
    // exec'd), and it must not hold up reclaim for as long as we live. Relaxed: published
    // by the release store of ACTIVE below; our own reservations come after it.
    mem.store(base + slot::INFLIGHT, 0, Relaxed);
    // Acquire: every reservation made before our claim (by earlier owners of this slot
    // above all) is below the value we read.
    let attach_pos = mem.load(g.ctl(ctl::RESERVE), Acquire);
    // Relaxed: published by the release store of ACTIVE below.
    mem.store(base + slot::ATTACH_POS, attach_pos, Relaxed);
    // Release: readers that acquire ACTIVE see start time and attach position.
    mem.store(
        base + slot::CTL,
        layout::slot_ctl(slot_state::ACTIVE, generation, id.pid),
        Release,
    );
    // Relaxed: a statistic.
    mem.add(g.ctl(ctl::ATTACHES), 1, Relaxed);
    Some(Attached {
        slot: i as u16,
        generation,
        attach_pos,
    })
}

/// Release slot `i`, claimed by `pid` as generation `generation` (process exit). Returns
/// whether it was still ours to free: a CAS from our own ACTIVE value, so a slot reaped and
/// re-claimed meanwhile (we were thought dead) is left to its new owner.
pub fn detach<M: Mem>(mem: &M, g: &Geometry, i: u16, generation: u32, pid: u32) -> bool {
    let off = g.slot_off(i) + slot::CTL;
    let cur = layout::slot_ctl(slot_state::ACTIVE, generation, pid);
    let free = layout::slot_ctl(slot_state::FREE, generation, pid);
    // Release: our records' reservations happen before the next owner's claim (which
    // acquires).
    if mem.cas(off, cur, free, Release, Relaxed).is_ok() {
        // Relaxed: a statistic.
        mem.add(g.ctl(ctl::DETACHES), 1, Relaxed);
        true
    } else {
        false
    }
}
