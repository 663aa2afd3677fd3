//! RING.md §3, *Writing*: the recording path of one writer slot ([`Producer`]), and the
//! reclaim of the oldest block in overwrite mode. Drops are counted through
//! [`super::count_drop`]; the liveness questions reclaim asks are §5's, in [`super`].
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

use core::sync::atomic::Ordering::*;
#[cfg(not(loom))]
use core::sync::atomic::{fence, AtomicU64};
// Under loom the cached limit is a loom atomic like every word of the ring, so the models see
// threads of one process sharing a `Producer` (one `Writer` serves every thread) trust each
// other's refresh of it.
#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicU64};

use super::{
    block_cum, count_drop, lap_tag, owner_gone, read::scan, reservations_in_flight, DropReason,
    Geometry, Liveness, CUM_MASK, DESC_INEXACT, DESC_LAP_SHIFT, KIND_PAD, MAX_POS,
};
use crate::layout::{self, ctl, rec, slot, Mode};
use crate::mem::Mem;

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
    /// A loom atomic under `cfg(loom)`, so the models check that (`format/tests/loom.rs`, the
    /// model of two threads sharing one writer).
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
            // its commits to the block we may be about to reclaim and rewrite, so that an old
            // lap's commit cannot land after our new header (RING.md §6). No loom model isolates
            // this acquire today: a writer only writes past the limit it acquired itself (the
            // tail or consumer position, or the cached limit another thread of its process
            // stored with release after acquiring it), which orders it after those commits
            // already. (Issue 2's first loom model did fail with this CAS relaxed, on the
            // protocol of then, whose reclaim walk changed in the same commit; making it
            // release-only fails none of today's models, RELIABILITY.md.) Kept as the
            // argument's second leg; free on x86, where any CAS is a full barrier.
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
        self.map_ahead(off, len);
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

    /// Before the first store into a record that begins a page or runs into the next one, load
    /// a word of that page. In a process that has not touched the page yet, a load is a read
    /// fault, which the kernel serves by mapping the neighbouring pages of the file too (its
    /// fault-around, 16 pages by default), writable for a shared tmpfs mapping (no dirty
    /// tracking); a store would be a write fault, which maps the one page. So a writer takes
    /// one fault per 64 KiB of records instead of one per 4 KiB (the ring's pages exist: a
    /// ring is created fully allocated, and the kernel maps only pages some process has touched
    /// before: in a fresh ring's first lap, each new page still costs its own fault). One
    /// comparison per record; the load only at page crossings, of memory the record is about
    /// to overwrite anyway.
    /// Not under loom: an access that orders nothing, which would only add interleavings.
    /// On a ring in a disk file the load maps pages read-only and the store then faults once
    /// more, for that page only; rings live in tmpfs (`/dev/shm`, `$XDG_RUNTIME_DIR`).
    #[inline(always)]
    fn map_ahead(&self, off: u64, len: u64) {
        #[cfg(loom)]
        let _ = (off, len);
        #[cfg(not(loom))]
        self.map_ahead_now(off, len);
    }

    #[cfg(not(loom))]
    #[inline(always)]
    fn map_ahead_now(&self, off: u64, len: u64) {
        const PAGE: u64 = 4096;
        let last = off + len - 1;
        if off.is_multiple_of(PAGE) || off / PAGE != last / PAGE {
            // Relaxed: the value is not used; only the access matters.
            core::hint::black_box(self.mem.load(last / PAGE * PAGE, Relaxed));
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
