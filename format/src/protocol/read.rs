//! RING.md §4, *Reading*, whole: what a reader finds at its position ([`peek`]), the checked
//! copy ([`copy_record`]), resynchronisation ([`scan`]), and the reader's state machine
//! ([`ReaderCore`]): waiting for busy and unwritten headers (the grace period, through a
//! [`Clock`]), loss reports, the overwrite-mode accounting of §1.4's block descriptors, drop
//! reports and consumption ([`publish_consumer`]); with §7's handling of forged control words.
//! Liveness (§5) is [`super`]'s. [`crate::Reader`] is this over a ring's mapping and the
//! monotonic clock.
//!
//! The reader treats the ring as hostile input. It holds one buffer of the ring's block size
//! (at most 1 MiB, validated at open): each committed record is copied into it once and
//! checked, and the [`Record`] it yields borrows that copy, decoded in place. It never forms
//! a reference into the mapping, never allocates from a length it read, and every call returns
//! after a bounded amount of work.
//!
//! What it does at its position `pos`:
//! - a committed record: copy, check, yield it, advance;
//! - padding: skip silently;
//! - a BUSY record: if its writer is gone (slot freed, taken over, or its process dead), report
//!   it lost (`abandoned`) and skip it by its length; else wait ([`Item::Waiting`]);
//! - an unwritten header below the reservation position: a writer is between its CAS and its
//!   header store, or died there. Wait up to the grace period (at once if no writer is alive,
//!   or, in an announcing ring, if no live writer has a reservation in flight), then scan
//!   forward to the next plausible header and report the gap lost (`unwritten`);
//! - a header with an impossible length: report `corrupt` and resynchronise the same way;
//! - overwrite mode, `pos` below the tail: report what was reclaimed (`overwritten`), jump.
//!
//! Its position is a record start: a reader at `pos` has seen a committed header (acquire) for
//! every record below it, or reported it lost. In overwrite mode a copy is trusted only if the
//! tail, re-loaded after an acquire fence, has not passed `pos` (seqlock style): otherwise the
//! copy may be torn and is reported lost.
//!
//! Drop counters are reported as `dropped` losses whenever the reader is caught up (and every
//! 4096 records), as increases since the last report.

#[cfg(not(loom))]
use core::sync::atomic::fence;
use core::sync::atomic::Ordering::*;
use core::time::Duration;
#[cfg(loom)]
use loom::sync::atomic::fence;

use super::{
    any_writer_alive, block_cum, consumer_records, consumer_records_word, drop_counts, owner_gone,
    reservations_in_flight, DropReason, Geometry, Liveness, CUM_MASK, KIND_PAD, MAX_POS,
};
use crate::layout::{self, ctl, rec, Mode};
use crate::mem::Mem;

/// Why records were lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossReason {
    /// A writer died (or exited) with the record reserved but not committed.
    Abandoned,
    /// A reservation whose header was never written (its writer died right after reserving).
    Unwritten,
    /// A header or control word that cannot be true (memory scribbled).
    Corrupt,
    /// Overwrite mode: reclaimed before the reader got to it.
    Overwritten,
    /// Overwrite mode: reclaimed while the reader was copying it.
    Torn,
    /// A control word (reservation or tail position) held a value no writer can produce: the
    /// bytes between the reader and where the forged word points are skipped in one report.
    Forged,
    /// The read ended at a record a live writer had not finished (a decode of a live ring, or
    /// a record still busy when the wait for it ran out): it and what follows it were not read.
    /// Reported by the drain, never by [`ReaderCore::poll`].
    Unfinished,
    /// Never written: the writer dropped it.
    Dropped(DropReason),
}

impl LossReason {
    /// Stable name for `lost` lines.
    pub fn name(self) -> &'static str {
        match self {
            LossReason::Abandoned => "abandoned",
            LossReason::Unwritten => "unwritten",
            LossReason::Corrupt => "corrupt",
            LossReason::Overwritten => "overwritten",
            LossReason::Torn => "torn",
            LossReason::Forged => "forged",
            LossReason::Unfinished => "unfinished",
            LossReason::Dropped(r) => r.name(),
        }
    }
}

/// A loss report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loss {
    /// Why.
    pub reason: LossReason,
    /// Records lost. A lower bound when `exact` is false (an unwritten region may hide several).
    pub records: u64,
    /// Whether `records` is exact.
    pub exact: bool,
    /// Bytes of stream skipped (0 for drops, which never reached the stream).
    pub bytes: u64,
    /// Stream position where the loss starts (drops: the reader's position when reported).
    pub pos: u64,
    /// Kind and writer slot of the lost record, when its header was readable.
    pub kind: Option<u16>,
    /// See `kind`.
    pub writer: Option<u16>,
}

/// A committed record, copied out of the ring and checked. Borrowing the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Stream position.
    pub pos: u64,
    /// Record kind.
    pub kind: u16,
    /// Writer slot.
    pub writer: u16,
    /// The payload (after the 16-byte header), exact length.
    pub payload: &'a [u8],
}

/// Why the reader has nothing to yield right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Caught up with every reservation.
    CaughtUp,
    /// A live writer is writing the record at the position.
    Busy,
    /// A reservation's header is not written yet; the grace period has not run out.
    Unwritten,
}

/// One step of reading.
#[derive(Debug)]
pub enum Item<'a> {
    /// The next committed record.
    Record(Record<'a>),
    /// Records that will never come.
    Lost(Loss),
    /// Nothing now; poll again later (or stop, if everything is done).
    Waiting(Waiting),
}

/// Where a new reader starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At the drain's published position: resume without duplicates (the default).
    Consumer,
    /// At the oldest data the ring still holds. In overwrite mode, records reclaimed before any
    /// reader consumed them are reported first (one `overwritten` loss, exact when the block
    /// descriptors allow): the reader starts at the drain's published position when that is
    /// below the tail.
    Oldest,
    /// At a given position (clamped into what the ring holds, aligned down to a record start
    /// only if it is one: a bad position reads as a corrupt header and resynchronises).
    At(u64),
}

/// Reader settings.
pub struct ReaderOptions {
    /// Where to start.
    pub start: Start,
    /// How long an unwritten header below the reservation position is waited for while some
    /// writer is alive.
    pub unwritten_grace: Duration,
    /// Process liveness oracle.
    pub liveness: Box<dyn Liveness>,
}

/// Time for the grace period (§4, *Unwritten or corrupt*): the one thing the reader needs from
/// a clock. [`crate::reader::MonotonicClock`] reads `CLOCK_MONOTONIC`; the loom model counts
/// its own steps, so that a model stays deterministic.
pub trait Clock {
    /// Time since an origin of the clock's choosing; never decreases.
    fn now(&self) -> Duration;
}

/// The reader's state machine (RING.md §4) over any [`Mem`]: [`crate::Reader`] is this over a
/// ring's mapping, and the loom model runs it over loom atomics.
pub struct ReaderCore<M: Mem, C: Clock> {
    mem: M,
    geo: Geometry,
    /// The mapping is writable: the reader marks dead writers' slots DEAD and may publish.
    writable: bool,
    clock: C,
    pos: u64,
    buf: Vec<u8>,
    opts: ReaderOptions,
    stall: Option<(u64, Duration)>,
    drops_seen: [u64; DropReason::ALL.len()],
    since_drop_check: u32,
    /// Overwrite-mode accounting, so a reclaimed range is counted exactly: the block of the last
    /// record accounted for (read or reported lost), the cumulative count of records in the
    /// stream before that block (`None`: unknown), and the records accounted in it.
    acct_block: u64,
    acct_base: Option<u64>,
    acct_in_block: u64,
    /// An unwritten or corrupt gap was counted as one record since the base was last taken
    /// from a block descriptor: the count may differ from the reclaimers' by the gap's share.
    acct_guess: bool,
}

impl<M: Mem, C: Clock> ReaderCore<M, C> {
    /// A reader over `mem`, laid out as `geo` (validated). `writable`: the memory may be written
    /// (marking dead writers' slots, publishing the position); a read-only reader never writes.
    pub fn new(mem: M, geo: Geometry, writable: bool, opts: ReaderOptions, clock: C) -> Self {
        let g = geo;
        // Relaxed: a snapshot of where things stand; each value is re-checked (with the
        // ordering it needs) before any memory is read on its strength.
        let reserve_pos = mem.load(g.ctl(ctl::RESERVE), Relaxed);
        let tail = mem.load(g.ctl(ctl::TAIL), Relaxed);
        let consumer = mem.load(g.ctl(ctl::CONSUMER), Relaxed);
        let align = |p: u64| layout::align_up(p.min(MAX_POS), layout::RECORD_ALIGN);
        let head = align(reserve_pos);
        // Discard mode: bytes more than a lap below head were rewritten, start no lower.
        // Overwrite mode: start where asked; a position below the tail reads as a report of
        // what was reclaimed.
        let oldest = match g.mode {
            Mode::Discard => head.saturating_sub(g.capacity),
            Mode::Overwrite => 0,
        };
        let clamp = |p: u64| align(p).clamp(oldest, head);
        let pos = match opts.start {
            Start::Consumer => clamp(consumer),
            // Overwrite mode: from the consumer position if the tail passed it, so the first
            // item reports what was reclaimed unread; the tail otherwise.
            Start::Oldest => clamp(if g.mode == Mode::Overwrite {
                tail.min(consumer)
            } else {
                0
            }),
            Start::At(p) => clamp(p),
        };
        // Bounded: block size was validated at open (<= 1 MiB).
        let buf = vec![0u8; g.block as usize];
        // Drops that happened before this reader started were reported by an earlier one
        // only if it published past them; report every drop once per reader from zero when
        // starting at the beginning, else from now.
        let drops_seen = if pos == 0 {
            [0; DropReason::ALL.len()]
        } else {
            drop_counts(&mem, &g)
        };
        let block_start = pos & !(g.block - 1);
        // The records below the start: none at 0; counted by the drain that published the
        // position, when starting there; the descriptor's count at a block start.
        let acct_base = if pos == 0 {
            Some(0)
        } else if let Some(n) = published_records(&mem, &g, pos).filter(|_| pos == consumer) {
            Some(n)
        } else if pos == block_start && g.mode == Mode::Overwrite {
            block_cum(&mem, &g, pos - g.block).map(|c| c.0)
        } else {
            None
        };
        ReaderCore {
            mem,
            geo,
            writable,
            clock,
            pos,
            buf,
            opts,
            stall: None,
            drops_seen,
            since_drop_check: 0,
            acct_block: block_start,
            acct_base,
            acct_in_block: 0,
            acct_guess: false,
        }
    }

    /// The memory read.
    pub fn mem(&self) -> &M {
        &self.mem
    }

    /// Position of the next record to read.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Publish the position (§4, *Consumption*): frees space in discard mode; a restarted
    /// drain resumes here. Call it once what was read is safely stored. No-op when read-only.
    pub fn publish(&self) {
        if self.writable {
            publish_consumer(&self.mem, &self.geo, self.pos, self.accounted());
        }
    }

    /// Records in the stream below the position (read or reported lost), when known: what a
    /// reader resuming at the published position starts counting from.
    pub fn accounted(&self) -> Option<u64> {
        let b = self.acct_base.filter(|_| !self.acct_guess)?;
        Some((b + self.acct_in_block) & CUM_MASK)
    }

    fn lost(
        &mut self,
        reason: LossReason,
        records: u64,
        exact: bool,
        to: u64,
        kind: Option<(u16, u16)>,
    ) -> Item<'_> {
        let from = self.pos;
        // Positions taken from shared memory may be forged: keep ours aligned and below
        // `MAX_POS`, where every read ends.
        self.pos = layout::align_up(to.max(from).min(MAX_POS), layout::RECORD_ALIGN);
        self.stall = None;
        Item::Lost(Loss {
            reason,
            records,
            exact,
            bytes: self.pos - from,
            pos: from,
            kind: kind.map(|k| k.0),
            writer: kind.map(|k| k.1),
        })
    }

    /// Drop counters that grew since the last report, one reason at a time.
    fn drops(&mut self) -> Option<Loss> {
        let now = drop_counts(&self.mem, &self.geo);
        for r in DropReason::ALL {
            let i = r as usize;
            if now[i] > self.drops_seen[i] {
                let n = now[i] - self.drops_seen[i];
                self.drops_seen[i] = now[i];
                return Some(Loss {
                    reason: LossReason::Dropped(r),
                    records: n,
                    exact: true,
                    bytes: 0,
                    pos: self.pos,
                    kind: None,
                    writer: None,
                });
            }
        }
        None
    }

    /// Account for one record (read or reported lost) at `pos`.
    fn note_consumed(&mut self, pos: u64) {
        let b = pos & !(self.geo.block - 1);
        if b != self.acct_block {
            let next = self.acct_block.wrapping_add(self.geo.block);
            // Moving to the very next block keeps the count; any other jump loses track.
            self.acct_base = if b == next {
                self.acct_base.map(|x| x + self.acct_in_block)
            } else {
                None
            };
            self.acct_block = b;
            self.acct_in_block = 0;
        }
        self.acct_in_block += 1;
    }

    /// Records reclaimed between the position and the tail (overwrite mode), and whether exact:
    /// the cumulative count through the block before the tail, less what was accounted for
    /// (mod 2^40). Exact when both ends are known and no block descriptor in the range is
    /// flagged inexact. A descriptor that already describes a later lap means the tail moved
    /// on while we looked: try again from the newer tail, a few times. Returns the tail used
    /// (where reading resumes) and resets the accounting to it.
    fn overwritten_records(&mut self, mut tail: u64) -> (u64, u64, bool) {
        let g = self.geo;
        let mem = &self.mem;
        let block_of = |p: u64| p & !(g.block - 1);
        let mut cum = None;
        let mut flagged = true;
        for _ in 0..4 {
            cum = tail
                .checked_sub(g.block)
                .and_then(|b| block_cum(mem, &g, b));
            let first = block_of(self.pos).max(tail.saturating_sub(g.capacity));
            flagged = (first / g.block..tail / g.block)
                .any(|i| block_cum(mem, &g, i * g.block).is_none_or(|c| c.1));
            // Acquire pairs with the reclaiming CAS: the descriptors below it are written.
            let now = mem.load(g.ctl(layout::ctl::TAIL), Acquire);
            let now = layout::align_up(now.min(MAX_POS), layout::RECORD_ALIGN);
            if (cum.is_some() && !flagged) || now <= tail {
                break;
            }
            tail = now;
        }
        let (n, exact) = match (cum, self.acct_base) {
            (Some((c, _)), Some(base)) => (
                c.wrapping_sub(base + self.acct_in_block) & CUM_MASK,
                !flagged && !self.acct_guess,
            ),
            // Unknown: at least one record per reclaimed block.
            _ => ((tail - block_of(self.pos)).div_ceil(g.block), false),
        };
        self.acct_block = block_of(tail);
        self.acct_base = cum.map(|c| c.0);
        self.acct_in_block = 0;
        self.acct_guess = false;
        (tail, n, exact)
    }

    /// The next item. Bounded work per call.
    pub fn poll(&mut self) -> Item<'_> {
        let g = self.geo;
        if self.pos >= MAX_POS {
            // Only a forged position brings a reader here, and it was reported on the way:
            // nothing more is read, so nothing more is said.
            return Item::Waiting(Waiting::CaughtUp);
        }
        self.since_drop_check += 1;
        if self.since_drop_check >= 4096 {
            self.since_drop_check = 0;
            if let Some(l) = self.drops() {
                return Item::Lost(l);
            }
        }
        // Padding and unusable block ends are skipped inside; at most one per block of the
        // ring plus one, so this loop is bounded.
        for _ in 0..g.block_count() + 2 {
            match peek(&self.mem, &g, self.pos) {
                Peek::Empty => {
                    if let Some(l) = self.drops() {
                        return Item::Lost(l);
                    }
                    return Item::Waiting(Waiting::CaughtUp);
                }
                Peek::Skip(to) => {
                    self.pos = to;
                }
                Peek::Behind { tail } => {
                    let (tail, n, exact) = self.overwritten_records(tail);
                    return self.lost(LossReason::Overwritten, n, exact, tail, None);
                }
                Peek::Header(w0) => {
                    let span = layout::align_up(layout::rec_len(w0), layout::RECORD_ALIGN);
                    let (kind, writer) = (layout::rec_kind(w0), layout::rec_writer(w0));
                    let flags = layout::rec_flags(w0);
                    if flags & layout::rec::BUSY != 0 {
                        if owner_gone(
                            &self.mem,
                            &g,
                            writer,
                            self.pos,
                            &*self.opts.liveness,
                            self.writable,
                        ) {
                            let to = self.pos + span;
                            self.note_consumed(self.pos);
                            return self.lost(
                                LossReason::Abandoned,
                                1,
                                true,
                                to,
                                Some((kind, writer)),
                            );
                        }
                        return Item::Waiting(Waiting::Busy);
                    }
                    if flags & layout::rec::DISCARD != 0 {
                        // Abandoned and marked so by a reclaiming writer (padding was skipped by peek).
                        let to = self.pos + span;
                        self.note_consumed(self.pos);
                        return self.lost(LossReason::Abandoned, 1, true, to, Some((kind, writer)));
                    }
                    let pos = self.pos;
                    let Some(len) = copy_record(&self.mem, &g, pos, w0, &mut self.buf) else {
                        // Overwritten while copying (or changed under us). Counted as consumed,
                        // so the reclaimed-range report of the next call does not count it again.
                        self.note_consumed(pos);
                        if g.mode == Mode::Overwrite {
                            return self.lost(
                                LossReason::Torn,
                                1,
                                true,
                                pos + span,
                                Some((kind, writer)),
                            );
                        }
                        return self.lost(
                            LossReason::Corrupt,
                            1,
                            false,
                            pos + span,
                            Some((kind, writer)),
                        );
                    };
                    self.pos = pos + span;
                    self.stall = None;
                    self.note_consumed(pos);
                    return Item::Record(Record {
                        pos,
                        kind,
                        writer,
                        payload: &self.buf[layout::RECORD_HEADER as usize..len],
                    });
                }
                Peek::Unwritten => return self.resync(false),
                Peek::Corrupt => return self.resync(true),
            }
        }
        Item::Waiting(Waiting::CaughtUp)
    }

    /// Handle an unwritten or impossible header at the position: wait within the grace period
    /// while a writer is alive, then skip to the next plausible header.
    fn resync(&mut self, corrupt: bool) -> Item<'_> {
        let now = self.clock.now();
        let g = self.geo;
        // Relaxed: compared only; `out_of_reach` and `scan` check what they find at it.
        let head = self.mem.load(g.ctl(ctl::RESERVE), Relaxed);
        if let Some((reason, to)) = self.out_of_reach(head) {
            self.note_consumed(self.pos);
            self.acct_guess = true;
            return self.lost(reason, 1, false, to, None);
        }
        let give_up = match self.stall {
            // Waiting already: until the grace period runs out, or at once when the last
            // writer that could still write the header is gone.
            Some((p, since)) if p == self.pos => {
                now.saturating_sub(since) >= self.opts.unwritten_grace
                    || corrupt
                    || !any_writer_alive(&self.mem, &g, &*self.opts.liveness)
            }
            _ => {
                self.stall = Some((self.pos, now));
                corrupt || !any_writer_alive(&self.mem, &g, &*self.opts.liveness)
            }
        };
        let dead_writer = || g.announce && self.writer_died_unstamped();
        if !give_up && !dead_writer() {
            return Item::Waiting(Waiting::Unwritten);
        }
        let reason = if corrupt {
            LossReason::Corrupt
        } else {
            LossReason::Unwritten
        };
        let to = match scan(&self.mem, &g, self.pos, head, g.capacity) {
            Some(q) => q,
            // Nothing plausible after it yet. If nobody can write any more, the rest is lost;
            // otherwise wait for the next record to give us a resync point.
            None if !any_writer_alive(&self.mem, &g, &*self.opts.liveness) && head > self.pos => {
                head.min(self.pos + g.capacity)
            }
            None => return Item::Waiting(Waiting::Unwritten),
        };
        // Accounted like the reclaimers account such a gap: one record, count inexact.
        self.note_consumed(self.pos);
        self.acct_guess = true;
        self.lost(reason, 1, false, to, None)
    }

    /// The data area holds at most the last lap below the reservation position: a header more
    /// than a lap below it will never be written, whatever the grace period. Honest writers
    /// never get there in discard mode (they stop a lap past the consumer position, which is at
    /// most ours) and in overwrite mode the tail moves first; so this is a forged position.
    /// One report covers the whole distance, which keeps the output bounded: after it the
    /// reader is within a lap of the head, and each later report is followed by a record or
    /// the head itself.
    /// Returns the reason and where reading resumes.
    fn out_of_reach(&self, head: u64) -> Option<(LossReason, u64)> {
        let g = self.geo;
        if head > MAX_POS {
            // No writer reserves past `MAX_POS`: what lies beyond a plausible header within a
            // lap is forged, and the read ends there.
            let to = scan(&self.mem, &g, self.pos, MAX_POS, g.capacity).unwrap_or(MAX_POS);
            return Some((LossReason::Forged, to));
        }
        let reach = head.saturating_sub(g.capacity);
        if self.pos >= reach {
            return None;
        }
        // From the first plausible header within the last lap, or the head itself.
        let from = layout::align_up(reach, layout::RECORD_ALIGN);
        let to = if peek(&self.mem, &g, from) == Peek::Empty {
            head
        } else {
            scan(&self.mem, &g, from - layout::RECORD_ALIGN, head, g.capacity).unwrap_or(head)
        };
        let reason = match g.mode {
            Mode::Overwrite => LossReason::Overwritten,
            Mode::Discard => LossReason::Forged,
        };
        Some((reason, to))
    }

    /// With announcing writers: whether the unwritten header at the position is a dead
    /// writer's. It is when no live writer has a reservation in flight and the header is still
    /// unwritten after that was seen: `peek` loaded the head (acquire) before the counts, and
    /// the counts are loaded (acquire) before the second look.
    fn writer_died_unstamped(&self) -> bool {
        !reservations_in_flight(&self.mem, &self.geo, &*self.opts.liveness, None)
            && peek(&self.mem, &self.geo, self.pos) == Peek::Unwritten
    }
}

/// §4, *Consumption*: store `CONSUMER = pos` with release, after storing `records`, the count
/// of records in the stream below `pos`, in `CONSUMER_RECORDS` when it is known exactly.
pub fn publish_consumer<M: Mem>(mem: &M, g: &Geometry, pos: u64, records: Option<u64>) {
    if let Some(n) = records {
        // Relaxed: paired with the position by its tag, not by ordering.
        mem.store(
            g.ctl(ctl::CONSUMER_RECORDS),
            consumer_records_word(pos, n),
            Relaxed,
        );
    }
    // Release: our reads of the bytes below `pos` happen before any writer reuses them
    // (writers load this with acquire).
    mem.store(g.ctl(ctl::CONSUMER), pos, Release);
}

/// The record count published with the consumer position `pos` ([`publish_consumer`]), if it
/// was published for that position.
pub fn published_records<M: Mem>(mem: &M, g: &Geometry, pos: u64) -> Option<u64> {
    // Relaxed: the tag says whether it belongs to `pos`.
    consumer_records(mem.load(g.ctl(ctl::CONSUMER_RECORDS), Relaxed), pos)
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
