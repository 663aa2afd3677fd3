//! The many-writer protocol, written once against [`Mem`] so the real mapping and the loom
//! model run the same code. `RING.md` states the protocol; this is it, step by step.
//!
//! Writer (any thread of any process), on the recording path — atomics and plain stores only:
//! 1. `reserve`: load the reservation position `head`; if the record does not fit in the rest of
//!    head's block, start it at the next block (the skipped rest becomes padding); check the end
//!    against the limit (discard: the consumer position; overwrite: the tail, reclaiming the
//!    oldest block if needed); CAS `head` to the end. The CAS alone makes the range ours.
//! 2. `stamp`: store header word 0 `len|BUSY, kind, slot`, then word 1 = the record's absolute
//!    position with release. From here the record names its owner.
//! 3. The caller copies the payload in place.
//! 4. `commit`: store word 0 without BUSY, with release. One CAS and two release stores in all.
//!
//! In overwrite mode (format version 2) a writer also announces its reservation: it adds 1 to
//! its slot's in-flight count before step 1 and takes it back (release) after step 2. Whoever
//! finds an unwritten header can then tell a writer still in that window (a live process with
//! a count) from one that died there, whose gap is skipped instead of blocking reclaim forever.
//!
//! Reader: at its position `pos`, a record is present when word 1 (acquire) equals `pos` and the
//! length is sane; it is complete when word 0 (acquire) has no BUSY. It copies the record out
//! (the copy is what it decodes), then, in overwrite mode, re-checks the tail (seqlock style):
//! if the tail passed `pos` while copying, the copy may be torn and is discarded as lost.
//!
//! Invariants:
//! - A record never straddles a block; a block start is always a record start (resync point).
//! - `head - limit <= capacity` for every successful reservation, so a writer never writes
//!   bytes the reader (discard) or a live record (overwrite) still owns, unless a control word
//!   was forged; then records may be garbled but every access stays in bounds.
//! - Positions are absolute and only grow; `pos & (capacity - 1)` is the offset in the data area.

#[cfg(not(loom))]
use core::sync::atomic::fence;
use core::sync::atomic::{AtomicU64, Ordering::*};
#[cfg(loom)]
use loom::sync::atomic::fence;

use crate::layout::{self, ctl, rec, slot, slot_state, Mode};
use crate::mem::Mem;

/// Positions never come near this in 2^62 bytes of writing; a larger one was forged.
pub const MAX_POS: u64 = 1 << 62;

pub use layout::desc::CUM_MASK;
use layout::desc::{INEXACT as DESC_INEXACT, LAP_SHIFT as DESC_LAP_SHIFT};
pub use layout::{consumer_records, consumer_records_word};

/// The lap tag of the block at `pos` (see [`layout::desc`]).
fn lap_tag(g: &Geometry, pos: u64) -> u64 {
    (pos / g.capacity + 1) & layout::desc::LAP_MASK
}

/// Record kind of padding records (carry no event, always with [`rec::DISCARD`]).
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
    /// Whether the process `pid` that started at `start_time` (clock ticks after boot, 0 when
    /// unknown) is alive. When unsure, answer `true`: a wrong `true` only delays, a wrong
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

/// A reserved record: `len` bytes at stream position `pos`, header stamped BUSY.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    /// Stream position of the record.
    pub pos: u64,
    /// Exact record length (header included); the record occupies `len` rounded up to 8.
    pub len: u64,
    /// Header word 0 as stamped (with BUSY).
    pub word0: u64,
    /// File offset of the record's first payload byte.
    pub payload_off: u64,
}

/// The writer side of the protocol for one writer slot.
pub struct Producer<M: Mem> {
    /// The ring memory.
    pub mem: M,
    /// Its geometry.
    pub geo: Geometry,
    /// This writer's slot index, written into every record header.
    pub slot: u16,
    /// Process-private copy of the limit (consumer position in discard mode, tail in overwrite
    /// mode). Only ever smaller than the true value (both only grow), so a stale copy errs
    /// towards refreshing. Stored with release after the acquire load of the true value, loaded
    /// with acquire, so a thread trusting another thread's refresh inherits its happens-before.
    limit: AtomicU64,
}

impl<M: Mem> Producer<M> {
    /// A producer writing as slot `slot`.
    pub fn new(mem: M, geo: Geometry, slot: u16) -> Self {
        Producer {
            mem,
            geo,
            slot,
            limit: AtomicU64::new(0),
        }
    }

    /// Reserve and stamp a record of `len` bytes (header included) of kind `kind`.
    /// On failure the drop is counted in the ring and the reason returned.
    #[inline]
    pub fn reserve(&self, kind: u16, len: u64, live: &dyn Liveness) -> Result<Claim, DropReason> {
        match self.try_reserve(kind, len, live) {
            Ok(c) => Ok(c),
            Err(r) => {
                self.count_drop(r);
                Err(r)
            }
        }
    }

    /// Count one dropped record for `reason` (rare path; one RMW on the drop line).
    pub fn count_drop(&self, reason: DropReason) {
        count_drop(&self.mem, &self.geo, reason);
    }

    #[inline]
    fn try_reserve(&self, kind: u16, len: u64, live: &dyn Liveness) -> Result<Claim, DropReason> {
        let (head, start) = self.reserve_range(len, live)?;
        Ok(self.stamp(head, start, len, kind))
    }

    /// Step 1 alone: make `[start, start + len)` ours by CAS on the reservation position.
    /// Returns `(head, start)`; `start > head` when the record begins at the next block and
    /// `[head, start)` is padding. Public so tests can stop a writer between the steps.
    #[inline]
    pub fn reserve_range(&self, len: u64, live: &dyn Liveness) -> Result<(u64, u64), DropReason> {
        let g = self.geo;
        let need = layout::align_up(len, layout::RECORD_ALIGN);
        if len < layout::RECORD_HEADER || need > g.block {
            return Err(DropReason::TooLarge);
        }
        if g.announce {
            // Relaxed: the reservation CAS (release) comes after it in program order, so whoever
            // acquires a head at or past our reservation also sees this count.
            self.mem.add(self.inflight_off(), 1, Relaxed);
        }
        let r = self.reserve_loop(need, live);
        if r.is_err() && g.announce {
            // Relaxed: nothing of ours to publish.
            self.mem.add(self.inflight_off(), u64::MAX, Relaxed);
        }
        r
    }

    /// Offset of this writer's in-flight count.
    #[inline(always)]
    fn inflight_off(&self) -> u64 {
        self.geo.slot_off(self.slot) + slot::INFLIGHT
    }

    /// The CAS loop of [`Self::reserve_range`] for `need` bytes (aligned).
    #[inline(always)]
    fn reserve_loop(&self, need: u64, live: &dyn Liveness) -> Result<(u64, u64), DropReason> {
        let g = self.geo;
        // Relaxed: the CAS below validates the value and carries the ordering.
        let mut head = self.mem.load(g.ctl(ctl::RESERVE), Relaxed);
        loop {
            if head > MAX_POS {
                return Err(DropReason::Full); // a forged position: refuse rather than wrap
            }
            // A forged, unaligned head must not make us store to unaligned words.
            let aligned = layout::align_up(head, layout::RECORD_ALIGN);
            let room = g.block_end(aligned) - aligned;
            let start = if need <= room {
                aligned
            } else {
                aligned + room
            };
            let end = start + need;
            // Not `end - limit`: a head loaded before the ring moved on gives an end below the
            // limit, which only means the CAS below will fail and we retry with a fresh head.
            if end > self.limit.load(Acquire).saturating_add(g.capacity) {
                self.make_room(end, live)?;
                head = self.mem.load(g.ctl(ctl::RESERVE), Relaxed);
                continue;
            }
            // AcqRel: the reservation words form a release sequence, so a writer that reserves
            // after another has seen everything that one did before its reservation: above all
            // its commits to the block we may be about to reclaim and rewrite. Without it an
            // old lap's commit could land after our new header (found by the loom model). Free
            // on x86, where any CAS is a full barrier.
            match self
                .mem
                .cas(g.ctl(ctl::RESERVE), head, end, AcqRel, Relaxed)
            {
                Ok(_) => return Ok((head, start)),
                Err(actual) => head = actual,
            }
        }
    }

    /// Refresh the limit; in overwrite mode reclaim the oldest block until `end` fits.
    #[cold]
    fn make_room(&self, end: u64, live: &dyn Liveness) -> Result<(), DropReason> {
        let g = self.geo;
        match g.mode {
            Mode::Discard => {
                // Acquire pairs with the drain's release store of the consumer position: its
                // reads of the bytes below it happen before our writes to them.
                let c = self.mem.load(g.ctl(ctl::CONSUMER), Acquire);
                self.limit.fetch_max(c, Release);
                if end > c.saturating_add(g.capacity) {
                    return Err(DropReason::Full);
                }
                Ok(())
            }
            Mode::Overwrite => {
                // Bounded: each pass either advances the tail by a block or fails.
                for _ in 0..=g.block_count() {
                    // Acquire pairs with the reclaiming CAS (AcqRel) on the tail.
                    let t = self.mem.load(g.ctl(ctl::TAIL), Acquire);
                    self.limit.fetch_max(t, Release);
                    // Room, or `end` below the tail: our head is older than the tail (we were
                    // descheduled while the ring moved on) and the caller retries with a fresh
                    // one. Reclaiming for a stale end would run the tail ahead, past data
                    // nobody needed gone and, at worst, past the reservation position itself.
                    if end <= t.saturating_add(g.capacity) {
                        return Ok(());
                    }
                    if !self.reclaim(t, live) {
                        return Err(DropReason::OverwriteBlocked);
                    }
                }
                Err(DropReason::OverwriteBlocked)
            }
        }
    }

    /// Step 2: stamp the headers of a reservation made from `head`: padding up to `start` if
    /// any, then the record itself, BUSY; then take back the in-flight announcement.
    #[inline(always)]
    pub fn stamp(&self, head: u64, start: u64, len: u64, kind: u16) -> Claim {
        let g = self.geo;
        // Release fence before our first store into the range: a reader that sees any byte we
        // write (and then fences acquire) also sees the limit we observed, so in overwrite mode
        // its tail re-check catches a copy of a block we are rewriting. A compiler barrier on x86.
        fence(Release);
        let pad = start - head;
        if pad >= layout::RECORD_HEADER && head.is_multiple_of(layout::RECORD_ALIGN) {
            let off = g.data_off(head);
            let w0 = layout::rec_word0(pad as u32 | rec::DISCARD, KIND_PAD, self.slot);
            self.mem.store(off, w0, Relaxed);
            // Release: word 0 is visible to whoever sees this position.
            self.mem.store(off + rec::POS, head, Release);
        }
        let off = g.data_off(start);
        let word0 = layout::rec_word0(len as u32 | rec::BUSY, kind, self.slot);
        self.mem.store(off, word0, Relaxed);
        // Release: a reader that acquires this position sees word 0 (BUSY, length, owner), never
        // a word 0 left from an earlier lap.
        self.mem.store(off + rec::POS, start, Release);
        if g.announce {
            // Release: whoever reads the count this leaves (or a later one) with acquire sees
            // our stamps.
            self.mem.add(self.inflight_off(), u64::MAX, Release);
        }
        Claim {
            pos: start,
            len,
            word0,
            payload_off: off + layout::RECORD_HEADER,
        }
    }

    /// Commit a claimed record: clear BUSY with release, publishing the payload.
    #[inline(always)]
    pub fn commit(&self, claim: &Claim) {
        // Release pairs with the reader's acquire load of word 0: the payload stores happen
        // before the reader's copy.
        self.mem.store(
            self.geo.data_off(claim.pos),
            claim.word0 & !(rec::BUSY as u64),
            Release,
        );
    }

    /// Give a claimed record up: it stays in the stream as a discarded record.
    pub fn abort(&self, claim: &Claim) {
        let w0 = (claim.word0 & !(rec::BUSY as u64)) | rec::DISCARD as u64;
        // Release: as for commit (the reader must not see BUSY again after this).
        self.mem.store(self.geo.data_off(claim.pos), w0, Release);
    }

    /// A reclaim of the block at `t` that cannot proceed: whether the tail moved past it anyway
    /// (we were descheduled while another writer reclaimed it, and the ring may have lapped,
    /// which is what we then saw), so the caller looks at the new tail instead of dropping.
    #[cold]
    fn tail_moved(&self, t: u64) -> bool {
        // Acquire: as for every load of the tail before reusing memory below it.
        self.mem.load(self.geo.ctl(ctl::TAIL), Acquire) != t
    }

    /// Overwrite mode: try to reclaim the block starting at `t` (the tail). Returns whether the
    /// tail moved past it (by us or by a competing writer). Called from within our own
    /// reservation, whose in-flight announcement is ours to discount.
    #[cold]
    fn reclaim(&self, t: u64, live: &dyn Liveness) -> bool {
        let g = self.geo;
        if t > MAX_POS {
            return false;
        }
        let end = g.block_end(t);
        // Acquire: see the headers of every reservation below head.
        let head = self.mem.load(g.ctl(ctl::RESERVE), Acquire);
        if end > head {
            // Not entirely reserved yet: never the case when a writer needs room (the tail is
            // then a lap behind the head); a forged tail. Moving it would pass the head.
            return false;
        }
        let mut q = layout::align_up(t, layout::RECORD_ALIGN);
        let mut records = 0u64;
        let mut exact = t.is_multiple_of(g.block);
        // Whether every live writer's reservations below `head` are known to be stamped.
        let mut settled = false;
        // Acquire pairs with other reclaimers' descriptor CAS. Read before the walk, then make
        // sure the tail has not moved on meanwhile.
        let desc_before = self.mem.load(g.block_desc(t), Acquire);
        if self.mem.load(g.ctl(ctl::TAIL), Acquire) != t {
            return true;
        }
        while end - q >= layout::RECORD_HEADER {
            let off = g.data_off(q);
            // Acquire pairs with the release store of the position in `stamp`; the acquire on
            // word 0 with the release of commit, so the old lap's writes happen before ours.
            let w0 = if self.mem.load(off + rec::POS, Acquire) == q {
                self.mem.load(off, Acquire)
            } else {
                0
            };
            if w0 == 0 {
                // Not stamped, or its stamp is not visible to us yet: a writer may be between
                // its reservation and its stamp right now. Reclaiming would let it write into a
                // block we hand out again (the loom model finds this), so the block stays and
                // the new record is dropped (`overwrite_blocked`)...
                if !settled {
                    // ...unless no live writer has a reservation in flight: then every
                    // reservation below `head` is stamped and its stamp visible to us (the
                    // counts are read with acquire after `head`), or its writer died before
                    // stamping. Look at this header again in that light.
                    if !g.announce || reservations_in_flight(&self.mem, &g, live, Some(self.slot)) {
                        return self.tail_moved(t);
                    }
                    settled = true;
                    continue;
                }
                // Still unwritten: its writer died between its reservation and its stamp. Skip
                // the gap to the next header (or the block's end): one record, count inexact.
                q = scan(&self.mem, &g, q, end, g.block).unwrap_or(end);
                records += 1;
                exact = false;
                continue;
            }
            let span = layout::align_up(layout::rec_len(w0), layout::RECORD_ALIGN);
            if layout::rec_len(w0) < layout::RECORD_HEADER || span > end - q {
                // Impossible length: scribbled. Nobody can be writing a sane record here.
                exact = false;
                break;
            }
            if layout::rec_flags(w0) & rec::BUSY != 0 {
                if !owner_gone(&self.mem, &g, layout::rec_writer(w0), q, live, true) {
                    return self.tail_moved(t);
                }
                let w0d = (w0 & !(rec::BUSY as u64)) | rec::DISCARD as u64;
                // AcqRel: if it fails the owner committed meanwhile, which is just as final.
                let _ = self.mem.cas(off, w0, w0d, AcqRel, Relaxed);
            }
            if layout::rec_kind(w0) != KIND_PAD {
                records += 1;
            }
            q += span;
        }
        // Cumulative count: the previous block's (its descriptor was published before the tail
        // CAS we acquired) plus ours. Written by CAS from the value read before the walk, so a
        // reclaimer that stalled while the ring lapped cannot overwrite a newer descriptor.
        let before = if t < g.block {
            Some((0, false))
        } else {
            block_cum(&self.mem, &g, t - g.block)
        };
        let (cum, inexact) = match before {
            Some((c, i)) => ((c + records) & CUM_MASK, i || !exact),
            None => (records & CUM_MASK, true),
        };
        let new = lap_tag(&g, t) << DESC_LAP_SHIFT | if inexact { DESC_INEXACT } else { 0 } | cum;
        // AcqRel; failure means a competing reclaimer wrote this lap's descriptor (or a later one).
        let _ = self
            .mem
            .cas(g.block_desc(t), desc_before, new, AcqRel, Relaxed);
        // AcqRel: release publishes our walk (and the DISCARD marks) to writers that acquire the
        // new tail; acquire orders us after the previous reclaim.
        if self
            .mem
            .cas(g.ctl(ctl::TAIL), t, end, AcqRel, Relaxed)
            .is_ok()
        {
            self.mem
                .add(g.ctl(ctl::OVERWRITTEN_BYTES), end - t, Relaxed);
            self.mem
                .add(g.ctl(ctl::OVERWRITTEN_RECORDS), records, Relaxed);
        }
        true
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

/// Bump the drop counter of `reason` (the one place drops are counted).
pub fn count_drop<M: Mem>(mem: &M, g: &Geometry, reason: DropReason) {
    // Relaxed: a statistic; readers only need the eventual value.
    mem.add(g.ctl(reason.counter()), 1, Relaxed);
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

/// What the reader finds at its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// Nothing reserved at or after `pos` yet.
    Empty,
    /// Overwrite mode: `pos` is below the tail; everything up to the tail is gone.
    Behind {
        /// The tail.
        tail: u64,
    },
    /// Advance silently to this position (padding, or a block's unusable end).
    Skip(u64),
    /// A record header is there: word 0 as loaded.
    Header(u64),
    /// The header at `pos` is not (yet) written: a reservation in progress, or abandoned.
    Unwritten,
    /// The header names `pos` but its length is impossible: scribbled.
    Corrupt,
}

/// Look at position `pos` (8-aligned). Reads only words; never trusts a length beyond bounds.
pub fn peek<M: Mem>(mem: &M, g: &Geometry, pos: u64) -> Peek {
    debug_assert_eq!(pos % layout::RECORD_ALIGN, 0);
    if let Some(behind) = behind(mem, g, pos) {
        return behind;
    }
    match peek_header(mem, g, pos) {
        // Overwrite mode: the block may have been reclaimed and rewritten since the tail was
        // loaded; then the header names a newer lap. The acquire load that saw the newer
        // header orders this tail load after that writer's (release fence in `stamp`), so the
        // tail it reads has passed `pos`.
        p @ (Peek::Unwritten | Peek::Corrupt) => behind(mem, g, pos).unwrap_or(p),
        p => p,
    }
}

/// Overwrite mode: `Behind` if the tail has passed `pos`.
fn behind<M: Mem>(mem: &M, g: &Geometry, pos: u64) -> Option<Peek> {
    if g.mode != Mode::Overwrite {
        return None;
    }
    // Acquire pairs with the reclaiming CAS: a block below the tail may already be reused.
    let tail = mem.load(g.ctl(ctl::TAIL), Acquire);
    (pos < tail && believable_tail(mem, g, tail)).then(|| Peek::Behind {
        tail: layout::align_up(tail, layout::RECORD_ALIGN),
    })
}

/// Whether a tail just loaded can be true. Reclaimers free at most the block their reservation
/// will end in, so an honest tail is never more than a block past the reservation position
/// (loaded after it, so at least as new). A tail further on, or past [`MAX_POS`], was forged
/// by a traced program: readers go on as if it were not there, and lose nothing to it (bytes
/// that writers reused meanwhile read as unwritten, out of reach or torn).
fn believable_tail<M: Mem>(mem: &M, g: &Geometry, tail: u64) -> bool {
    // Relaxed: compared only, never used to read memory.
    let head = mem.load(g.ctl(ctl::RESERVE), Relaxed);
    tail < MAX_POS && tail <= head.saturating_add(g.block)
}

/// [`peek`] below the tail.
fn peek_header<M: Mem>(mem: &M, g: &Geometry, pos: u64) -> Peek {
    // Acquire: see the headers of reservations below head (their stamps may still be coming).
    let head = mem.load(g.ctl(ctl::RESERVE), Acquire);
    if pos >= head {
        return Peek::Empty;
    }
    let room = g.block_end(pos) - pos;
    if room < layout::RECORD_HEADER {
        return Peek::Skip(pos + room);
    }
    let off = g.data_off(pos);
    // Acquire pairs with the release store of the position in `stamp`: word 0 is at least the
    // stamped value.
    if mem.load(off + rec::POS, Acquire) != pos {
        return Peek::Unwritten;
    }
    // Acquire pairs with the release store of commit: the payload is visible.
    let w0 = mem.load(off, Acquire);
    if w0 == 0 {
        // Fresh memory at position 0 has a matching position word and nothing else.
        return Peek::Unwritten;
    }
    let len = layout::rec_len(w0);
    if len < layout::RECORD_HEADER || layout::align_up(len, layout::RECORD_ALIGN) > room {
        return Peek::Corrupt;
    }
    if layout::rec_flags(w0) & rec::DISCARD != 0 && layout::rec_kind(w0) == KIND_PAD {
        return Peek::Skip(pos + layout::align_up(len, layout::RECORD_ALIGN));
    }
    Peek::Header(w0)
}

/// Copy the committed record at `pos` (header word 0 `w0`) into `buf` and check the copy: its
/// header must be the one peeked, and in overwrite mode the tail must not have passed `pos`
/// meanwhile. Returns the copied length, or `None` if the copy cannot be trusted.
pub fn copy_record<M: Mem>(
    mem: &M,
    g: &Geometry,
    pos: u64,
    w0: u64,
    buf: &mut [u8],
) -> Option<usize> {
    let span = layout::align_up(layout::rec_len(w0), layout::RECORD_ALIGN) as usize;
    let dst = buf.get_mut(..span)?;
    mem.read_bytes(g.data_off(pos), dst);
    // Acquire fence: if the copy saw any store of a writer reusing this block, we see a tail at
    // least as new as the one that writer saw (its release fence in `stamp`).
    fence(Acquire);
    if g.mode == Mode::Overwrite {
        let tail = mem.load(g.ctl(ctl::TAIL), Relaxed);
        if tail > pos && believable_tail(mem, g, tail) {
            return None;
        }
    }
    let c0 = u64::from_le_bytes(dst[0..8].try_into().ok()?);
    let c1 = u64::from_le_bytes(dst[8..16].try_into().ok()?);
    (c0 == w0 && c1 == pos).then_some(layout::rec_len(w0) as usize)
}

/// Find the next position after `from` and below `head` where a plausible header stands (its
/// position word names itself and its length fits its block): where to resynchronise after an
/// unwritten or scribbled header. Reads at most `limit` bytes' worth of words.
pub fn scan<M: Mem>(mem: &M, g: &Geometry, from: u64, head: u64, limit: u64) -> Option<u64> {
    let stop = head.min(from.saturating_add(limit));
    let mut q = from + layout::RECORD_ALIGN;
    while q < stop {
        let room = g.block_end(q) - q;
        if room >= layout::RECORD_HEADER {
            let off = g.data_off(q);
            if mem.load(off + rec::POS, Acquire) == q {
                let len = layout::rec_len(mem.load(off, Acquire));
                if len >= layout::RECORD_HEADER
                    && layout::align_up(len, layout::RECORD_ALIGN) <= room
                {
                    return Some(q);
                }
            }
            q += layout::RECORD_ALIGN;
        } else {
            q += room;
        }
    }
    None
}
