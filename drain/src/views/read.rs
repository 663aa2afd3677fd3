//! Reading a trace file's lines as events, in parallel blocks.
//!
//! Parsing is most of what a view costs, so a large file is cut into fixed byte ranges
//! ([`BLOCK`]) that worker threads (one per CPU this process may use, from 2 to
//! [`MAX_WORKERS`]) read (`pread`) and parse while the calling thread hands the events on, in
//! file order. Each worker takes the next range when it is free, so one slowed by sharing its
//! core (with the calling thread, or another program) does less. A range owns the lines that
//! *start* in it: its worker skips the partial line it begins inside (the previous range's
//! worker reads that line to its end, past its own range) and stops after the first line that
//! reaches beyond the range. A ring is decoded on one thread into blocks of lines, which two
//! threads parse in turn. A view's
//! [`Work`] runs on the parsing thread for each event: it counts what can be counted apart
//! (each parsing thread has its own, merged by the view at the end), formats what needs the
//! event alone, and says whether the calling thread needs the event itself; its bytes go on
//! in order, with the event or without it.
//!
//! Invariants:
//! - Every line of the file as it was when reading began is given to a [`Work`] or counted
//!   skipped exactly once; what is handed on (kept events, rendered bytes) is in file order;
//!   lines appended while reading are not read.
//! - A line longer than [`MAX_LINE`] is counted skipped and never held in memory whole.
//! - Events borrow their block: a [`Batch`] keeps the block alive for as long as its events
//!   and hands them out only for as long as it is borrowed.
//! - Memory is bounded: the workers of a file have at most [`IN_FLIGHT`] batches each
//!   between them, a ring's parsing threads [`IN_FLIGHT`] each, used again and again.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Condvar, Mutex};

use super::Input;
use crate::event::{Event, Layout};
use crate::follow::{Follower, Until};

/// The longest line handed on; a longer one is counted skipped. Decoded lines are far
/// shorter (argv and paths are cut to fit a record).
pub const MAX_LINE: usize = 16 << 20;

/// The byte range each worker parses at a time.
const BLOCK: u64 = 256 << 10;

/// Batches a worker has at most: one it fills, one waiting in its channel, one being handed on.
const IN_FLIGHT: usize = 3;

/// Files smaller than this are read on the calling thread alone.
const PARALLEL_FROM: u64 = 4 * BLOCK;

/// What a view does with each event on the thread that parses it.
///
/// Each parsing thread has its own (made by the view's `new`), and the view gets them all
/// back at the end to merge: counting that does not depend on order belongs here, where it
/// runs in parallel. Within a block, events come in file order.
pub trait Work: Send {
    /// Whether [`Work::event`] looks at its line's [`Layout`] (the reader notes it only then).
    const LAYOUT: bool = false;

    /// A new block of lines begins (the events before it went to another thread, or to none).
    fn block(&mut self) {}

    /// Look at `ev` (read from `line`), write into `out` what goes on with it (formatting
    /// that needs the event alone), and say whether the calling thread needs the event
    /// itself. Whatever is written goes on in order either way.
    fn event(&mut self, ev: &Event<'_>, line: Line<'_>, out: &mut Vec<u8>) -> bool;

    /// No more events will come: work that can be done apart before merging (sorting) is
    /// done here, on the parsing thread.
    fn finish(&mut self) {}
}

/// The line an event was read from, and where its members are in it.
#[derive(Debug, Clone, Copy)]
pub struct Line<'l> {
    /// The line (without its newline).
    pub bytes: &'l [u8],
    /// Its form, as the reader saw it.
    pub layout: Layout,
}

impl<'l> Line<'l> {
    /// The members after the header as the line has them, when it has the drain's own form
    /// ([`Layout::rest`]).
    pub fn rest(&self) -> Option<&'l [u8]> {
        let (from, to) = self.layout.rest?;
        self.bytes.get(from..to)
    }
}

/// What the calling thread is handed, in file order: a kept event with the bytes its
/// [`Work`] wrote for it, or (`None`) the bytes written for a run of events not kept.
pub type Handed<'e, 'x> = (Option<&'e Event<'x>>, &'e [u8]);

/// Give each telemetry event of `file` to a [`Work`] (made by `new`, one per parsing thread)
/// and hand on to `f` in order what it kept and wrote, counting in `input` the events and
/// the lines skipped (not JSON, not an event, another component, too long). The works are
/// returned.
pub fn for_each_telemetry_event<W: Work>(
    file: &File,
    input: &mut Input,
    new: &(dyn Fn() -> W + Sync),
    f: impl FnMut(Handed<'_, '_>),
) -> io::Result<Vec<W>> {
    read_blocks(file, input, new, f, (BLOCK, PARALLEL_FROM, workers()))
}

/// [`for_each_telemetry_event`] with its block size, threshold and workers as parameters
/// (tests use small blocks to put many block edges in a small file, and more workers than
/// the machine has CPUs).
fn read_blocks<W: Work>(
    file: &File,
    input: &mut Input,
    new: &(dyn Fn() -> W + Sync),
    mut f: impl FnMut(Handed<'_, '_>),
    (block, parallel_from, workers): (u64, u64, usize),
) -> io::Result<Vec<W>> {
    let len = file.metadata()?.len();
    if len < parallel_from {
        let mut work = new();
        let mut batch = Batch::default();
        batch.read(file, 0, len, len, &mut work)?;
        batch.hand_on(input, &mut f);
        work.finish();
        return Ok(vec![work]);
    }
    let blocks = len.div_ceil(block);
    let pool = Pool::new(workers);
    let next = AtomicU64::new(0);
    std::thread::scope(|scope| {
        // Whatever way this returns, the workers waiting for a batch are let go.
        let _closing = Closing {
            pool: &pool,
            on_panic_only: false,
        };
        // Each worker takes the next block as soon as it has a batch to read it into (a
        // worker slowed by sharing its core takes fewer), and sends it back numbered.
        let (done_tx, done) = mpsc::channel::<(u64, io::Result<Batch>)>();
        let threads: Vec<_> = (0..workers)
            .map(|_| {
                let (pool, next, done_tx) = (&pool, &next, done_tx.clone());
                scope.spawn(move || {
                    // A worker that panics (in its `Work`) takes its block with it; the
                    // others would wait for batches the calling thread, waiting for that
                    // block, never hands back. It closes the pool as it unwinds: they stop,
                    // the channel closes, and the panic reaches the caller.
                    let _closing = Closing {
                        pool,
                        on_panic_only: true,
                    };
                    let mut work = new();
                    // The batch is taken before the block's number: the block the calling
                    // thread waits for always has a batch (no deadlock), and the blocks in
                    // flight are at most `pool` consecutive ones.
                    while let Some(mut batch) = pool.take() {
                        // Relaxed: the counter only hands out distinct numbers; the batch
                        // itself goes over the channel, which orders what was written to it.
                        let b = next.fetch_add(1, Ordering::Relaxed);
                        if b >= blocks {
                            break;
                        }
                        let r = batch.read(file, b * block, (b + 1) * block, len, &mut work);
                        // A closed channel: the caller stopped (an error); so does this worker.
                        if done_tx.send((b, r.map(|()| batch))).is_err() {
                            break;
                        }
                    }
                    work.finish();
                    work
                })
            })
            .collect();
        drop(done_tx);
        // Blocks that came early wait in the slot of their number modulo the pool's size (those
        // in flight are that many consecutive numbers at most, so no two share a slot); so does
        // a block's read error, until the blocks before it are handed on.
        let mut early: Vec<Option<io::Result<Batch>>> = (0..pool.size).map(|_| None).collect();
        let size = pool.size as u64;
        for b in 0..blocks {
            let slot = (b % size) as usize;
            let batch = loop {
                if let Some(batch) = early[slot].take() {
                    break batch?;
                }
                match done.recv() {
                    Ok((k, batch)) => early[(k % size) as usize] = Some(batch),
                    Err(_) => return Err(io::Error::other("a reading thread stopped")),
                }
            };
            batch.hand_on(input, &mut f);
            pool.put(batch);
        }
        pool.close();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .map_err(|_| io::Error::other("a reading thread failed"))
            })
            .collect()
    })
}

/// The most worker threads reading a file: past that, the calling thread (handing on in
/// order) is what limits.
const MAX_WORKERS: usize = 8;

/// Worker threads for a file: one per CPU this process may use (its affinity and cgroup
/// quota), at least two.
fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, MAX_WORKERS))
}

/// The batches the workers of a file read blocks into: made up to `size` ([`IN_FLIGHT`] per
/// worker: one read, one waiting to be handed on, one to spare for a block that came early),
/// then used again (a block costs no allocation and no page faults), handed back by the
/// calling thread.
struct Pool {
    size: usize,
    state: Mutex<PoolState>,
    ready: Condvar,
}

#[derive(Default)]
struct PoolState {
    free: Vec<Batch>,
    made: usize,
    closed: bool,
}

impl Pool {
    fn new(workers: usize) -> Pool {
        Pool {
            size: workers * IN_FLIGHT,
            state: Mutex::default(),
            ready: Condvar::new(),
        }
    }

    /// A batch to read into: a free one, a new one while fewer than `size` were made, else
    /// the next one handed back. `None` once the pool is closed.
    fn take(&self) -> Option<Batch> {
        let mut s = self.state.lock().ok()?;
        loop {
            if s.closed {
                return None;
            }
            if let Some(batch) = s.free.pop() {
                return Some(batch);
            }
            if s.made < self.size {
                s.made += 1;
                return Some(Batch::default());
            }
            s = self.ready.wait(s).ok()?;
        }
    }

    fn put(&self, batch: Batch) {
        if let Ok(mut s) = self.state.lock() {
            s.free.push(batch);
        }
        self.ready.notify_one();
    }

    /// Let every worker waiting in [`Pool::take`] go, and none take again.
    fn close(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.closed = true;
        }
        self.ready.notify_all();
    }
}

/// Closes the pool when dropped: on every way out of reading (the calling thread's), or when
/// a worker panics (`on_panic_only`).
struct Closing<'p> {
    pool: &'p Pool,
    on_panic_only: bool,
}

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        if !self.on_panic_only || std::thread::panicking() {
            self.pool.close();
        }
    }
}

/// [`for_each_telemetry_event`] for the events of `ring`, as `decode` would write them
/// (redacted): one thread decodes into blocks of lines, dealt in turn to two threads that parse
/// them and give them to their [`Work`]s, and this one hands them on in order.
pub fn for_each_ring_event<W: Work>(
    ring: &format::Ring,
    input: &mut Input,
    new: &(dyn Fn() -> W + Sync),
    mut f: impl FnMut(Handed<'_, '_>),
) -> io::Result<Vec<W>> {
    std::thread::scope(|scope| {
        // Decoded blocks go to the parsing threads in turn (block k to thread k % 2), and
        // their memory comes back to the decoder on `spent`.
        let (spent, spent_rx) = mpsc::channel::<Vec<u8>>();
        let mut to_parsers = Vec::new();
        let mut parsers = Vec::new();
        let mut threads = Vec::new();
        for _ in 0..2 {
            let (block_tx, blocks) = mpsc::sync_channel::<Vec<u8>>(1);
            let (full_tx, full) = mpsc::sync_channel::<Batch>(1);
            let (batch_back, batches) = mpsc::channel::<Batch>();
            let spent = spent.clone();
            to_parsers.push(block_tx);
            parsers.push((full, batch_back));
            threads.push(scope.spawn(move || {
                let mut work = new();
                let mut made = 0;
                for mut block in blocks {
                    let Some(mut batch) = Batch::next(&batches, &mut made) else {
                        break;
                    };
                    batch.clear();
                    std::mem::swap(&mut batch.block, &mut block);
                    batch.valid = batch.block.len();
                    batch.parse(0, &mut work);
                    // The decoder may have finished: then the old block is simply freed.
                    block.clear();
                    let _ = spent.send(block);
                    // A closed channel: the caller stopped; so does this thread.
                    if full_tx.send(batch).is_err() {
                        break;
                    }
                }
                work.finish();
                work
            }));
        }
        drop(spent);
        let decoder = scope.spawn(move || {
            let mut out = Blocks {
                block: Vec::new(),
                to: to_parsers,
                next: 0,
                spent: spent_rx,
            };
            let mut follower = Follower::new(ring, crate::decode::Options { redact: true });
            follower.run(&mut out, Until::caught_up())?;
            out.send()
        });
        // Block k is parsed by thread k % 2; the first that does not come is past the last.
        for k in 0.. {
            let (full, back) = &parsers[k % 2];
            let Ok(batch) = full.recv() else {
                break;
            };
            batch.hand_on(input, &mut f);
            // The thread may have finished: then the batch is simply freed.
            let _ = back.send(batch);
        }
        drop(parsers);
        let decoded = decoder
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the decoding thread failed")));
        let works = threads
            .into_iter()
            .map(|t| {
                t.join()
                    .map_err(|_| io::Error::other("a parsing thread failed"))
            })
            .collect::<io::Result<Vec<W>>>()?;
        decoded.map(|()| works)
    })
}

/// The decoder's output, cut into blocks of whole lines (it writes one line per call).
struct Blocks {
    block: Vec<u8>,
    /// The parsing threads, each sent every other block.
    to: Vec<mpsc::SyncSender<Vec<u8>>>,
    /// Which of them the next block goes to.
    next: usize,
    spent: mpsc::Receiver<Vec<u8>>,
}

impl Blocks {
    fn send(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let next = self.spent.try_recv().unwrap_or_default();
        let full = std::mem::replace(&mut self.block, next);
        let to = &self.to[self.next % self.to.len()];
        self.next += 1;
        to.send(full)
            .map_err(|_| io::Error::other("a parsing thread stopped"))
    }
}

impl io::Write for Blocks {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.block.extend_from_slice(b);
        if self.block.len() >= BLOCK as usize {
            self.send()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The events of the lines that start in one byte range of the file (those its [`Work`]
/// kept), and what the work wrote for them all.
#[derive(Default)]
struct Batch {
    /// Borrow from `block` (declared first: dropped before it). Never handed out with their
    /// `'static` lifetime (see [`Batch::hand_on`]), and cleared before `block` is written.
    events: Vec<Event<'static>>,
    /// Where each kept event's bytes are in `rendered`: `rendered[start..end]`. The bytes
    /// between one kept event's and the next belong to events not kept.
    spans: Vec<(usize, usize)>,
    /// Lines that were not events.
    skipped: u64,
    /// Events (kept or not).
    seen: u64,
    /// The bytes read: `block[..valid]`. Never written while `events` holds anything; its
    /// heap bytes stay put when the batch moves.
    block: Vec<u8>,
    valid: usize,
    /// What the [`Work`] wrote, for every event in order.
    rendered: Vec<u8>,
}

impl Batch {
    /// A batch for a parsing thread that has `made` so far: one that came back on `spent`, a
    /// new one while it has fewer than [`IN_FLIGHT`], else one that comes back (its memory,
    /// already mapped and warm, is what the next block goes into). `None`: none will come.
    fn next(spent: &mpsc::Receiver<Batch>, made: &mut usize) -> Option<Batch> {
        match spent.try_recv() {
            Ok(batch) => Some(batch),
            Err(_) if *made < IN_FLIGHT => {
                *made += 1;
                Some(Batch::default())
            }
            Err(_) => spent.recv().ok(),
        }
    }

    /// Drop the events and what was rendered for them (the memory is kept).
    fn clear(&mut self) {
        self.events.clear();
        self.skipped = 0;
        self.seen = 0;
        self.rendered.clear();
        self.spans.clear();
    }

    /// Read and parse the lines starting in `[start, end)` of `file`, whose length is `len`
    /// (what the batch held before is dropped).
    fn read(
        &mut self,
        file: &File,
        start: u64,
        end: u64,
        len: u64,
        work: &mut impl Work,
    ) -> io::Result<()> {
        self.clear();
        let end = end.min(len);
        // From one byte early: if it is a newline, a line starts exactly at `start`.
        let from = start.saturating_sub(1);
        let pad = aligned_for(&mut self.block, from, end.saturating_sub(from));
        self.valid = read_at(file, &mut self.block, pad, from, end)?;
        let mut first = pad;
        if start > 0 {
            match memchr::memchr(b'\n', &self.block[pad..self.valid]) {
                Some(nl) => first = pad + nl + 1,
                None => self.valid = pad, // inside one line that started earlier
            }
        }
        // Finish the last line, past the range, unless it already ends in the range.
        if self.valid > pad && self.block[self.valid - 1] != b'\n' && end < len {
            self.skipped += finish_line(file, &mut self.block, &mut self.valid, end, len, first)?;
        }
        self.parse(first, work);
        Ok(())
    }

    /// Parse the lines of `block[first..valid]` and give each event to `work`, keeping in
    /// `events` (which must be empty) those it keeps.
    fn parse<W: Work>(&mut self, first: usize, work: &mut W) {
        let read = |ev: &mut Event<'static>, line: &'static [u8]| {
            if W::LAYOUT {
                ev.parse_form_into::<true>(line)
            } else {
                ev.parse_form_into::<false>(line)
            }
        };
        debug_assert!(self.events.is_empty() && self.valid <= self.block.len());
        // SAFETY: the bytes stay where they are, unchanged, for as long as `events` holds
        // anything: `block` is not written or replaced until `events` has been cleared (in
        // `read` and `for_each_ring_event`), the batch owns both (dropping `events` first),
        // and a Vec's heap bytes do not move when the batch does. `block[..valid]` is
        // initialized (`valid <= block.len()`). The `'static` events only leave the batch
        // lent for the batch's own borrow (`hand_on`).
        let bytes: &'static [u8] =
            unsafe { std::slice::from_raw_parts(self.block.as_ptr(), self.valid) };
        let mut rest = &bytes[first.min(bytes.len())..];
        work.block();
        while !rest.is_empty() {
            let (line, next) = match memchr::memchr(b'\n', rest) {
                Some(nl) => (&rest[..nl], &rest[nl + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = next;
            self.events.push(Event::default());
            let layout = match self.events.last_mut() {
                Some(ev) => match read(ev, line) {
                    Ok(layout) if ev.component == "telemetry" => Some(layout),
                    _ => None,
                },
                None => None,
            };
            let Some(layout) = layout else {
                self.events.pop();
                self.skipped += 1;
                continue;
            };
            self.seen += 1;
            let start = self.rendered.len();
            let line = Line {
                bytes: line,
                layout,
            };
            let keep = match self.events.last() {
                Some(ev) => work.event(ev, line, &mut self.rendered),
                None => false,
            };
            if keep {
                self.spans.push((start, self.rendered.len()));
            } else {
                // An event of a plain line without lists owns nothing: its drop (a check of
                // every member) is skipped, and it is not moved out to be forgotten.
                let owns_nothing = line.layout.plain
                    && self
                        .events
                        .last()
                        .is_some_and(Event::frees_nothing_if_plain);
                match self.events.len().checked_sub(1) {
                    // SAFETY: shortening a Vec only leaves its last element unreachable,
                    // never dropped; that element owns no memory (`frees_nothing_if_plain`
                    // of a plain line), so nothing leaks.
                    Some(len) if owns_nothing => unsafe { self.events.set_len(len) },
                    _ => drop(self.events.pop()),
                }
            }
        }
    }

    /// Count the lines and hand on, in order, the kept events (lent for no longer than
    /// `self` is borrowed) and what was written for all events.
    fn hand_on(&self, input: &mut Input, f: &mut impl FnMut(Handed<'_, '_>)) {
        input.skipped += self.skipped;
        input.events += self.seen;
        let bytes = |from: usize, to: usize| self.rendered.get(from..to).unwrap_or_default();
        let mut at = 0;
        for (ev, &(start, end)) in self.events.iter().zip(&self.spans) {
            if start > at {
                f((None, bytes(at, start)));
            }
            f((Some(ev), bytes(start, end)));
            at = end;
        }
        if self.rendered.len() > at {
            f((None, bytes(at, self.rendered.len())));
        }
    }
}

/// Where in `out` to read `want` bytes from file offset `from` so that they land at the same
/// offset within a cache line as they have in the file (`out` is grown to hold them and a
/// [`finish_line`] step after them, so that neither read moves it).
///
/// The kernel copies from the page cache several times slower into a destination that is
/// not aligned like its source: reading a 500 MB trace in 256 KiB blocks took 0.21 s of
/// system time into `malloc`'s 16-byte-aligned buffers, 0.06 s into aligned ones (this
/// machine's AMD EPYC).
fn aligned_for(out: &mut Vec<u8>, from: u64, want: u64) -> usize {
    const LINE: usize = 64;
    let want = usize::try_from(want).unwrap_or(usize::MAX);
    let need = want.saturating_add(LINE + FINISH_STEP as usize);
    if out.len() < need {
        out.resize(need, 0);
    }
    (from as usize).wrapping_sub(out.as_ptr() as usize) % LINE
}

/// Read `file[from..end]` into `out` from `out[at]` (growing it as needed, never shrinking
/// it: its bytes are used again); the index after the last byte read.
fn read_at(file: &File, out: &mut Vec<u8>, at: usize, from: u64, end: u64) -> io::Result<usize> {
    let want = usize::try_from(end.saturating_sub(from)).unwrap_or(usize::MAX);
    if out.len() < at + want {
        out.resize(at + want, 0);
    }
    let mut got = 0;
    while got < want {
        match file.read_at(&mut out[at + got..at + want], from + got as u64) {
            Ok(0) => break, // shorter than it was: read what is there
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(at + got)
}

/// How much [`finish_line`] reads at a time: first a little (lines are mostly under a KiB,
/// and every block finishes one), then more.
const FIRST_STEP: u64 = 4 << 10;
const FINISH_STEP: u64 = 64 << 10;

/// Read on from `at` until the line under way in `block[..*valid]` ends (or the file does).
/// A line that grows past [`MAX_LINE`] is dropped and read on without being kept; 1 is then
/// returned (it is counted skipped), else 0. `first` is where the block's own lines start.
fn finish_line(
    file: &File,
    block: &mut Vec<u8>,
    valid: &mut usize,
    mut at: u64,
    len: u64,
    first: usize,
) -> io::Result<u64> {
    let line_start =
        memchr::memrchr(b'\n', &block[first..*valid]).map_or(first, |nl| first + nl + 1);
    // Once the line is known to be too long, what was read of it is let go.
    let mut dropped = false;
    let mut end = None; // the line's length (without its newline), once it has ended
    let mut step = FIRST_STEP;
    while at < len {
        let before = *valid;
        *valid = read_at(file, block, before, at, (at + step).min(len))?;
        step = FINISH_STEP;
        if *valid == before {
            break;
        }
        at += (*valid - before) as u64;
        if let Some(nl) = memchr::memchr(b'\n', &block[before..*valid]) {
            *valid = before + nl + 1;
            end = Some(before + nl - line_start);
            break;
        }
        if dropped || *valid - line_start > MAX_LINE {
            *valid = line_start;
            dropped = true;
        }
    }
    let line_len = end.unwrap_or(*valid - line_start);
    if dropped || line_len > MAX_LINE {
        *valid = line_start;
        dropped = true;
    }
    Ok(u64::from(dropped))
}

// The serial path reads a file whole, and a block is read whole: neither may be large enough
// to hold an over-long line.
const _: () = assert!(BLOCK < PARALLEL_FROM && PARALLEL_FROM <= MAX_LINE as u64);

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A telemetry line whose `pos` is `i`, `pad` bytes of path long.
    fn line(i: usize, pad: usize) -> String {
        format!(
            r#"{{"ts":"t","ts_unix_ns":{i},"event_type":"file_open","session_id":null,"span_id":null,"parent_span":null,"component":"telemetry","pid":1,"tid":1,"pos":{i},"ring_id":"r","path":"{}"}}"#,
            "é".repeat(pad)
        )
    }

    /// Renders each event's `pos`; keeps every third event; counts what it saw.
    #[derive(Default)]
    struct Every3 {
        seen: Vec<u64>,
        blocks: u64,
    }

    impl Work for Every3 {
        fn block(&mut self) {
            self.blocks += 1;
        }
        fn event(&mut self, ev: &Event<'_>, _: Line<'_>, out: &mut Vec<u8>) -> bool {
            self.seen.push(ev.pos);
            out.extend_from_slice(&ev.pos.to_le_bytes());
            ev.pos.is_multiple_of(3)
        }
    }

    /// The `pos` of each event `read_blocks` hands on (kept, or rendered only), and what it
    /// counted; checks that the works saw each event once.
    fn read(content: &[u8], block: u64, parallel_from: u64, workers: usize) -> (Vec<u64>, Input) {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(content).unwrap();
        let mut input = Input::default();
        let mut seen = vec![];
        let works = read_blocks(
            &f,
            &mut input,
            &Every3::default,
            |(ev, rendered)| {
                let pos: Vec<u64> = rendered
                    .chunks(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                match ev {
                    Some(ev) => {
                        assert_eq!(pos, [ev.pos], "rendered with its own event");
                        assert_eq!(ev.pos % 3, 0, "only kept events are handed on");
                    }
                    None => assert!(pos.iter().all(|p| p % 3 != 0) && !pos.is_empty()),
                }
                seen.extend(pos);
            },
            (block, parallel_from, workers),
        )
        .unwrap();
        let mut by_works: Vec<u64> = works.iter().flat_map(|w| w.seen.clone()).collect();
        by_works.sort();
        let mut want = seen.clone();
        want.sort();
        assert_eq!(by_works, want, "every event given to a work once");
        if parallel_from > content.len() as u64 {
            assert_eq!(works.len(), 1);
        }
        (seen, input)
    }

    #[test]
    fn every_line_once_in_order_whatever_the_blocks() {
        let mut content = String::new();
        let mut want = vec![];
        let mut junk = 0;
        for i in 0..300 {
            match i % 11 {
                3 => {
                    content.push_str("not json\n");
                    junk += 1;
                }
                5 => {
                    content.push('\n');
                    junk += 1;
                }
                7 => {
                    content.push_str("{\"component\":\"substrate\",\"event\":\"x\"}\n");
                    junk += 1;
                }
                _ => {
                    content.push_str(&line(i, i * 7 % 90));
                    content.push('\n');
                    want.push(i as u64);
                }
            }
        }
        // A last line without its newline.
        content.push_str(&line(1000, 3));
        want.push(1000);
        for block in [1, 2, 3, 7, 64, 100, 333, 1000, 4096, 1 << 20] {
            for (parallel_from, workers) in [(0, 2), (0, 3), (0, 7), (u64::MAX, 2)] {
                let (seen, input) = read(content.as_bytes(), block, parallel_from, workers);
                let what =
                    format!("block {block}, parallel from {parallel_from}, {workers} workers");
                assert_eq!(seen, want, "{what}");
                assert_eq!(input.skipped, junk, "{what}");
                assert_eq!(input.events, want.len() as u64);
            }
        }
    }

    /// Events not kept are let go: those of plain lines without lists by shortening the batch
    /// (no drop), the others dropped. Under Miri (RELIABILITY.md) a leak fails it.
    #[test]
    fn events_not_kept_are_let_go_whole() {
        let mut content = String::new();
        for i in 0..12 {
            let l = line(i, 3).replace('é', "e");
            match i % 4 {
                // An escape, a list, a `family` and none: the first three own memory.
                0 => content.push_str(&l.replace(r#""path":""#, r#""path":"\\t"#)),
                1 => content.push_str(&l.replace(r#""path":"#, r#""argv":["a","b"],"path":"#)),
                2 => content.push_str(&l.replace(r#""path":"#, r#""family":{"x":[1]},"path":"#)),
                _ => content.push_str(&l),
            }
            content.push('\n');
        }
        let want: Vec<u64> = (0..12).collect();
        for (parallel_from, workers) in [(0, 2), (u64::MAX, 2)] {
            let (seen, input) = read(content.as_bytes(), 256, parallel_from, workers);
            assert_eq!(seen, want);
            assert_eq!(input.skipped, 0);
        }
    }

    /// A work that panics ends the reading (the panic reaches the caller) instead of leaving
    /// the other workers and the calling thread waiting for each other.
    #[test]
    fn a_work_that_panics_ends_the_reading() {
        #[derive(Default)]
        struct Panics;
        impl Work for Panics {
            fn event(&mut self, ev: &Event<'_>, _: Line<'_>, _: &mut Vec<u8>) -> bool {
                assert!(ev.pos != 5, "a work's own panic");
                false
            }
        }
        let content: String = (0..400).map(|i| line(i, 3) + "\n").collect();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut input = Input::default();
                read_blocks(&f, &mut input, &Panics::default, |_| {}, (64, 0, 2)).is_ok()
            }));
            let _ = tx.send(!matches!(r, Ok(true)));
        });
        let ended = rx.recv_timeout(std::time::Duration::from_secs(60));
        assert_eq!(
            ended,
            Ok(true),
            "the reading ended, with the panic or an error"
        );
    }

    #[test]
    fn an_over_long_line_is_skipped_not_held() {
        // A valid event, so only the length keeps it out.
        let long = line(3, MAX_LINE / 2);
        assert!(long.len() > MAX_LINE);
        let content = format!("{}\n{long}\n{}\n{long}", line(1, 10), line(2, 10));
        for block in [4096, 1 << 20] {
            let (seen, input) = read(content.as_bytes(), block, 0, 2);
            assert_eq!(seen, [1, 2], "block {block}");
            assert_eq!(input.skipped, 2, "block {block}");
        }
    }

    #[test]
    fn an_empty_file_has_nothing() {
        let (seen, input) = read(b"", 64, 0, 2);
        assert!(seen.is_empty());
        assert_eq!((input.events, input.skipped), (0, 0));
    }
}
