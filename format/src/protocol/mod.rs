//! The ring protocol, all of it, written once against [`Mem`]: the real mapping
//! ([`crate::mem::MapMem`]) and the loom model ([`crate::mem`]'s `model::LoomMem`) run the
//! same code, writers, readers and the writer table alike. `format/RING.md` states the
//! protocol; these modules are it, section by section. Nothing here maps a file, makes a system
//! call or reads a clock: process liveness comes in as a [`Liveness`], time as a
//! [`read::Clock`], and [`crate::Ring`], [`crate::Writer`] and [`crate::Reader`] are thin edges
//! that supply them with the ring's mapping.
//!
//! | RING.md | module |
//! |---|---|
//! | §1.2 control area, §1.3 writer table, §1.4 block table (where each word is) | [`Geometry`] here, offsets and bits in [`crate::layout`] |
//! | §1.3 attach (claim, adopt, reap) and detach | [`slots`] |
//! | §1.4 block descriptors (read side) | [`block_cum`] here; written by [`write`](mod@write)'s reclaim |
//! | §3 writing: reserve, announce, stamp, copy, commit, reclaim, drop counters | [`write`](mod@write) ([`Producer`]), [`count_drop`] here |
//! | §4 reading: peek, copy, resynchronise, grace period, accounting, drops, consumption | [`read`] ([`ReaderCore`]) |
//! | §5 liveness: whose record is dead | here: [`read_slot`], [`slot_alive`], [`owner_gone`], [`any_writer_alive`], [`reservations_in_flight`] |
//! | §7 forged control words (what the reader does with them) | [`read`] |
//!
//! Invariants:
//! - A record never straddles a block; a block start is always a record start (resync point).
//! - `head - limit <= capacity` for every successful reservation, so a writer never writes
//!   bytes the reader (discard) or a live record (overwrite) still owns, unless a control word
//!   was forged; then records may be garbled but every access stays in bounds.
//! - Positions are absolute and only grow; `pos & (capacity - 1)` is the offset in the data area.
//! - Every offset comes from a [`Geometry`] derived from a validated header (or built by a
//!   test), which is what keeps every access in bounds.

#[cfg(not(loom))]
use core::sync::atomic::fence;
use core::sync::atomic::Ordering::*;
#[cfg(loom)]
use loom::sync::atomic::fence;

use crate::layout::{self, ctl, slot, slot_state, Mode};
use crate::mem::Mem;

pub mod read;
pub mod slots;
pub mod write;

pub use read::{copy_record, peek, scan, Clock, Peek, ReaderCore};
pub use slots::{attach, detach, Attached, WriterIdentity};
pub use write::{Claim, Producer};

/// Positions never come near this in 2^62 bytes of writing; a larger one was forged.
pub const MAX_POS: u64 = 1 << 62;

pub use layout::desc::CUM_MASK;
pub(crate) use layout::desc::{INEXACT as DESC_INEXACT, LAP_SHIFT as DESC_LAP_SHIFT};
pub use layout::{consumer_records, consumer_records_word};

/// The lap tag of the block at `pos` (see [`layout::desc`]).
pub(crate) fn lap_tag(g: &Geometry, pos: u64) -> u64 {
    (pos / g.capacity + 1) & layout::desc::LAP_MASK
}

/// Record kind of padding records (carry no event, always with [`layout::rec::DISCARD`]).
pub const KIND_PAD: u16 = 0;

/// Why a record was dropped instead of written. Counted per reason in the control area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Discard mode: the ring was full (the reader is behind or absent).
    Full = 0,
    /// The record is larger than a block (the largest possible record).
    TooLarge = 1,
    /// Overwrite mode: the oldest block holds a record a live writer is still writing.
    OverwriteBlocked = 2,
    /// The process has no writer slot (the table was full when it attached).
    NoSlot = 3,
    /// The writer had detached (the process was exiting).
    Detached = 4,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 5] = [
        DropReason::Full,
        DropReason::TooLarge,
        DropReason::OverwriteBlocked,
        DropReason::NoSlot,
        DropReason::Detached,
    ];

    /// Stable name, used in `lost` lines and `stat`.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Full => "ring_full",
            DropReason::TooLarge => "too_large",
            DropReason::OverwriteBlocked => "overwrite_blocked",
            DropReason::NoSlot => "no_writer_slot",
            DropReason::Detached => "detached",
        }
    }

    /// Offset of this reason's counter in the control area.
    pub fn counter(self) -> u64 {
        ctl::DROPS + 8 * self as u64
    }
}

/// Tells whether a process is still alive. The drain reads `/proc`; a writer that must decide
/// on its own (overwrite mode, a dead writer's record in the block to reclaim) asks the kernel
/// with `kill(pid, 0)`; tests inject their own answer.
pub trait Liveness {
    /// Whether the process `pid` that started at or before `start_time` (clock ticks after
    /// boot, 0 when unknown) is alive. When unsure, answer `true`: a wrong `true` only delays, a wrong
    /// `false` loses a record.
    fn alive(&self, pid: u32, start_time: u64) -> bool;
}

impl<F: Fn(u32, u64) -> bool> Liveness for F {
    fn alive(&self, pid: u32, start_time: u64) -> bool {
        self(pid, start_time)
    }
}

/// Where each part of a ring lives, derived from a validated header. Every offset the protocol
/// computes comes from here, which is what keeps all accesses in bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Full-ring behaviour.
    pub mode: Mode,
    /// Offset of the control area.
    pub control: u64,
    /// Offset of the writer table.
    pub writers: u64,
    /// Number of writer slots.
    pub slots: u32,
    /// Offset of the block table.
    pub blocks: u64,
    /// Offset of the data area.
    pub data: u64,
    /// Size of the data area (power of two).
    pub capacity: u64,
    /// Block size (power of two); also the largest record.
    pub block: u64,
    /// Writers announce their reservations in flight ([`slot::INFLIGHT`]): overwrite mode,
    /// format version 2. Reclaimers and readers then tell a dead writer's unwritten header from
    /// a live one's at once.
    pub announce: bool,
}

impl Geometry {
    /// Offset of a control word.
    #[inline(always)]
    pub fn ctl(&self, word: u64) -> u64 {
        self.control + word
    }
    /// Offset in the file of stream position `pos`.
    #[inline(always)]
    pub fn data_off(&self, pos: u64) -> u64 {
        self.data + (pos & (self.capacity - 1))
    }
    /// Offset of writer slot `i` (caller checks `i < slots`).
    #[inline(always)]
    pub fn slot_off(&self, i: u16) -> u64 {
        self.writers + i as u64 * layout::SLOT_SIZE
    }
    /// Offset of the descriptor of the block holding `pos`.
    #[inline(always)]
    pub fn block_desc(&self, pos: u64) -> u64 {
        self.blocks + ((pos & (self.capacity - 1)) / self.block) * layout::BLOCK_DESC_SIZE
    }
    /// First position of the block after the one holding `pos`.
    #[inline(always)]
    pub fn block_end(&self, pos: u64) -> u64 {
        (pos | (self.block - 1)) + 1
    }
    /// Number of blocks.
    pub fn block_count(&self) -> u64 {
        self.capacity / self.block
    }
}

/// Whether some live writer may be between its reservation CAS and its header stamp, going by
/// the in-flight counts writers announce when [`Geometry::announce`] is set. `own` names the
/// caller's slot when the caller is itself inside a reservation (its own count is discounted).
/// Reads every slot and asks `live` about those with a count: for rare paths only.
pub fn reservations_in_flight<M: Mem>(
    mem: &M,
    g: &Geometry,
    live: &dyn Liveness,
    own: Option<u16>,
) -> bool {
    (0..g.slots).any(|i| {
        let i = i as u16;
        // Acquire pairs with the release decrement after a stamp: reading the count that
        // decrement left, or any later one (all are read-modify-writes, so they continue its
        // release sequence), we see that writer's stamp.
        let n = mem.load(g.slot_off(i) + slot::INFLIGHT, Acquire);
        let n = if own == Some(i) { n.wrapping_sub(1) } else { n };
        if n == 0 {
            return false;
        }
        // Some thread of the slot's process is in the window, unless the process is gone
        // (killed there: the count stays behind).
        slot_alive(read_slot(mem, g, i), live)
    })
}

/// The cumulative record count (mod 2^40) through the block at `b` (records in every block
/// below `b + block`) and whether the block's own count was a lower bound; `None` if the
/// descriptor does not describe that lap of the block (not reclaimed yet, or lapped since).
pub fn block_cum<M: Mem>(mem: &M, g: &Geometry, b: u64) -> Option<(u64, bool)> {
    // Acquire pairs with the reclaimer's CAS.
    let w = mem.load(g.block_desc(b), Acquire);
    (w >> DESC_LAP_SHIFT == lap_tag(g, b)).then_some((w & CUM_MASK, w & DESC_INEXACT != 0))
}

/// A consistent read of one writer slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotSnapshot {
    /// The control word.
    pub ctl: u64,
    /// Process start time (clock ticks after boot).
    pub start_time: u64,
    /// Reservation position at attach.
    pub attach_pos: u64,
}

/// Read slot `i` consistently (control word re-checked after the fields). `None` when it kept
/// changing (an attach in progress), which callers treat as "owner may be alive".
pub fn read_slot<M: Mem>(mem: &M, g: &Geometry, i: u16) -> Option<SlotSnapshot> {
    let base = g.slot_off(i);
    for _ in 0..4 {
        // Acquire pairs with the release store of ACTIVE in attach: the fields are complete.
        let c = mem.load(base + slot::CTL, Acquire);
        let start_time = mem.load(base + slot::START_TIME, Relaxed);
        let attach_pos = mem.load(base + slot::ATTACH_POS, Relaxed);
        fence(Acquire);
        if mem.load(base + slot::CTL, Relaxed) == c {
            return Some(SlotSnapshot {
                ctl: c,
                start_time,
                attach_pos,
            });
        }
    }
    None
}

/// The one rule for whether the process behind a writer slot may still write (RING.md §5):
/// - a slot being claimed or released right now (`None` from [`read_slot`]): yes;
/// - a slot never used (control word 0): no;
/// - an ACTIVE slot: its pid is alive with the start time it recorded (a reused pid is not
///   mistaken for it);
/// - a CLAIMING slot (start time not written yet), a FREE or a DEAD one (its last owner): its
///   pid is alive. Conservative: a pid reused since only delays what waits for it.
pub fn slot_alive(s: Option<SlotSnapshot>, live: &dyn Liveness) -> bool {
    let Some(s) = s else {
        return true;
    };
    if s.ctl == 0 {
        return false;
    }
    let pid = layout::slot_ctl_pid(s.ctl);
    match layout::slot_ctl_state(s.ctl) {
        slot_state::ACTIVE => live.alive(pid, s.start_time),
        _ => live.alive(pid, 0),
    }
}

/// Whether any attached writer is alive ([`slot_alive`] of some slot).
pub fn any_writer_alive<M: Mem>(mem: &M, g: &Geometry, live: &dyn Liveness) -> bool {
    (0..g.slots).any(|i| slot_alive(read_slot(mem, g, i as u16), live))
}

/// Bump the drop counter of `reason` (the one place drops are counted).
pub fn count_drop<M: Mem>(mem: &M, g: &Geometry, reason: DropReason) {
    // Relaxed: a statistic; readers only need the eventual value.
    mem.add(g.ctl(reason.counter()), 1, Relaxed);
}

/// The drop counters, indexed by `reason as usize`.
pub fn drop_counts<M: Mem>(mem: &M, g: &Geometry) -> [u64; DropReason::ALL.len()] {
    // Relaxed: statistics, each value individually meaningful.
    DropReason::ALL.map(|r| mem.load(g.ctl(r.counter()), Relaxed))
}

/// Whether the writer of a BUSY record at position `pos`, naming slot `i`, can no longer
/// finish it. `mark` lets a read-write caller record a dead slot as [`slot_state::DEAD`].
pub fn owner_gone<M: Mem>(
    mem: &M,
    g: &Geometry,
    i: u16,
    pos: u64,
    live: &dyn Liveness,
    mark: bool,
) -> bool {
    if i as u32 >= g.slots {
        return true; // no such slot: the header was scribbled; nobody will commit it
    }
    let Some(s) = read_slot(mem, g, i) else {
        return false;
    };
    match layout::slot_ctl_state(s.ctl) {
        // A released slot's process writes no more: its unfinished records are abandoned.
        slot_state::FREE | slot_state::DEAD => true,
        slot_state::ACTIVE if s.attach_pos > pos => true, // an earlier owner's record
        _ => {
            if slot_alive(Some(s), live) {
                return false;
            }
            if mark {
                let dead = (s.ctl & !0xff) | slot_state::DEAD as u64;
                // AcqRel; failure means the slot changed hands, which is fine.
                let _ = mem.cas(g.slot_off(i) + slot::CTL, s.ctl, dead, AcqRel, Relaxed);
            }
            true
        }
    }
}
