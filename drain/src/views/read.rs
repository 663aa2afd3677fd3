//! Reading a trace file's lines as events, in parallel blocks.
//!
//! Parsing is most of what a view costs, so a large file is cut into fixed byte ranges
//! ([`BLOCK`]) that two worker threads read (`pread`) and parse while the calling thread hands
//! the events on, in file order. A range owns the lines that *start* in it: its worker skips
//! the partial line it begins inside (the previous range's worker reads that line to its end,
//! past its own range) and stops after the first line that reaches beyond the range. A ring
//! is decoded on one thread into blocks of lines that the calling thread parses. A view's
//! [`Render`] runs on the parsing thread for each event (formatting that needs the event
//! alone), and its bytes go with the event.
//!
//! Invariants:
//! - Every line of the file as it was when reading began is handed on or counted skipped
//!   exactly once, in order; lines appended while reading are not read.
//! - A line longer than [`MAX_LINE`] is counted skipped and never held in memory whole.
//! - Events borrow their block: a [`Batch`] keeps the block alive for as long as its events
//!   and hands them out only for as long as it is borrowed.
//! - Memory is bounded: each worker has at most [`IN_FLIGHT`] batches, used again and again.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::mpsc;

use super::Input;
use crate::event::Event;
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

/// Hand each telemetry event of `file` to `f` in order, counting in `input` the events
/// handed on and the lines skipped (not JSON, not an event, another component, too long).
pub fn for_each_telemetry_event(
    file: &File,
    input: &mut Input,
    render: Option<Render<'_>>,
    f: impl FnMut(&Event<'_>, &[u8]),
) -> io::Result<()> {
    read_blocks(file, input, render, f, BLOCK, PARALLEL_FROM)
}

/// Work a view does for each event on the parsing threads: what it writes into the buffer is
/// handed on with the event (an exporter's serialization, done in parallel).
pub type Render<'r> = &'r (dyn Fn(&Event<'_>, &mut Vec<u8>) + Sync);

/// [`for_each_telemetry_event`] with its block size and threshold as parameters (tests use
/// small ones to put many block edges in a small file).
fn read_blocks(
    file: &File,
    input: &mut Input,
    render: Option<Render<'_>>,
    mut f: impl FnMut(&Event<'_>, &[u8]),
    block: u64,
    parallel_from: u64,
) -> io::Result<()> {
    let len = file.metadata()?.len();
    if len < parallel_from {
        let mut batch = Batch::default();
        batch.read(file, 0, len, len, render)?;
        batch.hand_on(input, &mut f);
        return Ok(());
    }
    let blocks = len.div_ceil(block);
    std::thread::scope(|scope| {
        // Per worker: its batches come in on `full`; spent ones go back on `spent` (their
        // memory is used again, so a block costs no allocation and no page faults).
        let mut workers = Vec::new();
        for w in 0..2u64 {
            let (full_tx, full) = mpsc::sync_channel::<io::Result<Batch>>(1);
            let (spent, spent_rx) = mpsc::channel::<Batch>();
            workers.push((full, spent));
            scope.spawn(move || {
                let mut made = 0;
                for b in (w..blocks).step_by(2) {
                    // At most IN_FLIGHT batches each: then wait for one to come back (so its
                    // memory, already mapped and warm, is what the next block is read into).
                    let mut batch = match spent_rx.try_recv() {
                        Ok(batch) => batch,
                        Err(_) if made < IN_FLIGHT => {
                            made += 1;
                            Batch::default()
                        }
                        Err(_) => match spent_rx.recv() {
                            Ok(batch) => batch,
                            Err(_) => return,
                        },
                    };
                    let r = batch.read(file, b * block, (b + 1) * block, len, render);
                    // A closed channel: the caller stopped (an error); so does this worker.
                    if full_tx.send(r.map(|()| batch)).is_err() {
                        return;
                    }
                }
            });
        }
        for b in 0..blocks {
            let (full, spent) = &workers[(b % 2) as usize];
            match full.recv() {
                Ok(batch) => {
                    let batch = batch?;
                    batch.hand_on(input, &mut f);
                    // The worker may have finished: then the batch is simply freed.
                    let _ = spent.send(batch);
                }
                Err(_) => return Err(io::Error::other("a reading thread stopped")),
            }
        }
        Ok(())
    })
}

/// Hand each event of `ring` to `f` in order, as `decode` would write it (redacted): one
/// thread decodes into blocks of lines while this one parses them and hands them on.
pub fn for_each_ring_event(
    ring: &format::Ring,
    input: &mut Input,
    render: Option<Render<'_>>,
    mut f: impl FnMut(&Event<'_>, &[u8]),
) -> io::Result<()> {
    std::thread::scope(|scope| {
        let (full_tx, full) = mpsc::sync_channel::<Vec<u8>>(1);
        let (spent, spent_rx) = mpsc::channel::<Vec<u8>>();
        let decoder = scope.spawn(move || {
            let mut out = Blocks {
                block: Vec::new(),
                full: full_tx,
                spent: spent_rx,
            };
            let mut follower = Follower::new(ring, crate::decode::Options { redact: true });
            follower.run(&mut out, Until::caught_up())?;
            out.send()
        });
        let mut batch = Batch::default();
        for mut block in full {
            batch.clear();
            std::mem::swap(&mut batch.block, &mut block);
            batch.valid = batch.block.len();
            batch.parse(0, render);
            batch.hand_on(input, &mut f);
            // The decoder may have finished: then the block is simply freed.
            block.clear();
            let _ = spent.send(block);
        }
        decoder
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the decoding thread failed")))
    })
}

/// The decoder's output, cut into blocks of whole lines (it writes one line per call).
struct Blocks {
    block: Vec<u8>,
    full: mpsc::SyncSender<Vec<u8>>,
    spent: mpsc::Receiver<Vec<u8>>,
}

impl Blocks {
    fn send(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let next = self.spent.try_recv().unwrap_or_default();
        let full = std::mem::replace(&mut self.block, next);
        self.full
            .send(full)
            .map_err(|_| io::Error::other("the reading thread stopped"))
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

/// The events of the lines that start in one byte range of the file.
#[derive(Default)]
struct Batch {
    /// Borrow from `block` (declared first: dropped before it). Never handed out with their
    /// `'static` lifetime (see [`Batch::hand_on`]), and cleared before `block` is written.
    events: Vec<Event<'static>>,
    /// Lines that were not events.
    skipped: u64,
    /// The bytes read: `block[..valid]`. Never written while `events` holds anything; its
    /// heap bytes stay put when the batch moves.
    block: Vec<u8>,
    valid: usize,
    /// What the view's [`Render`] wrote for each event: event `k`'s bytes end at `ends[k]`.
    rendered: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    /// Drop the events and what was rendered for them (the memory is kept).
    fn clear(&mut self) {
        self.events.clear();
        self.skipped = 0;
        self.rendered.clear();
        self.ends.clear();
    }

    /// Read and parse the lines starting in `[start, end)` of `file`, whose length is `len`
    /// (what the batch held before is dropped).
    fn read(
        &mut self,
        file: &File,
        start: u64,
        end: u64,
        len: u64,
        render: Option<Render<'_>>,
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
        self.parse(first, render);
        Ok(())
    }

    /// Parse the lines of `block[first..valid]` into `events` (which must be empty), and
    /// render each event.
    fn parse(&mut self, first: usize, render: Option<Render<'_>>) {
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
        while !rest.is_empty() {
            let (line, next) = match memchr::memchr(b'\n', rest) {
                Some(nl) => (&rest[..nl], &rest[nl + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = next;
            self.events.push(Event::default());
            let ok = match self.events.last_mut() {
                Some(ev) => ev.parse_bytes_into(line).is_ok() && ev.component == "telemetry",
                None => false,
            };
            if !ok {
                self.events.pop();
                self.skipped += 1;
            } else if let (Some(render), Some(ev)) = (render, self.events.last()) {
                render(ev, &mut self.rendered);
                self.ends.push(self.rendered.len());
            }
        }
    }

    /// Count and hand on the events (lent for no longer than `self` is borrowed).
    fn hand_on(&self, input: &mut Input, f: &mut impl FnMut(&Event<'_>, &[u8])) {
        input.skipped += self.skipped;
        input.events += self.events.len() as u64;
        let mut start = 0;
        for (k, ev) in self.events.iter().enumerate() {
            let end = self.ends.get(k).copied().unwrap_or(start);
            f(ev, self.rendered.get(start..end).unwrap_or_default());
            start = end;
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

/// How much [`finish_line`] reads at a time.
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
    while at < len {
        let before = *valid;
        *valid = read_at(file, block, before, at, (at + FINISH_STEP).min(len))?;
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

    /// The `pos` of each event `read_blocks` hands on, and what it counted.
    fn read(content: &[u8], block: u64, parallel_from: u64) -> (Vec<u64>, Input) {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(content).unwrap();
        let mut input = Input::default();
        let mut seen = vec![];
        let render =
            |ev: &Event<'_>, out: &mut Vec<u8>| out.extend_from_slice(&ev.pos.to_le_bytes());
        read_blocks(
            &f,
            &mut input,
            Some(&render),
            |ev, rendered| {
                assert_eq!(
                    rendered,
                    ev.pos.to_le_bytes(),
                    "rendered with its own event"
                );
                seen.push(ev.pos)
            },
            block,
            parallel_from,
        )
        .unwrap();
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
            for parallel_from in [0, u64::MAX] {
                let (seen, input) = read(content.as_bytes(), block, parallel_from);
                assert_eq!(seen, want, "block {block}, parallel from {parallel_from}");
                assert_eq!(input.skipped, junk, "block {block}");
                assert_eq!(input.events, want.len() as u64);
            }
        }
    }

    #[test]
    fn an_over_long_line_is_skipped_not_held() {
        // A valid event, so only the length keeps it out.
        let long = line(3, MAX_LINE / 2);
        assert!(long.len() > MAX_LINE);
        let content = format!("{}\n{long}\n{}\n{long}", line(1, 10), line(2, 10));
        for block in [4096, 1 << 20] {
            let (seen, input) = read(content.as_bytes(), block, 0);
            assert_eq!(seen, [1, 2], "block {block}");
            assert_eq!(input.skipped, 2, "block {block}");
        }
    }

    #[test]
    fn an_empty_file_has_nothing() {
        let (seen, input) = read(b"", 64, 0);
        assert!(seen.is_empty());
        assert_eq!((input.events, input.skipped), (0, 0));
    }
}
