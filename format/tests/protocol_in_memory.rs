//! The protocol over heap memory ([`HeapMem`]) instead of a file mapping, so that it also runs
//! under Miri, which checks the `unsafe` underneath (`MapMem`'s raw-pointer atomics and copies)
//! for undefined behaviour: out-of-bounds or misaligned accesses, references into shared
//! memory, and (with threads) data races that the protocol's orderings are meant to exclude.
//!
//! Single thread: both modes over several laps with records of every size class and the reader
//! primitives (`peek`, `copy_record`, `scan`) after every few writes; in overwrite mode a
//! writer that dies between its reservation and its stamp; the real reader ([`ReaderCore`])
//! reporting an abandoned record, an unwritten gap and a reclaimed range; the writer table's
//! attach, adopt, reap and detach. Threads: two writers and the real reader at once, in discard
//! mode (the reader publishes its position, which is what frees space) and in overwrite mode in
//! a ring of two blocks (writers reclaim blocks under the reader's copies).
//!
//! Run under Miri: `scripts/miri` (see TESTING.md).

use std::cell::Cell;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::Duration;

use format::layout::{self, ctl, slot_state, Mode};
use format::mem::{HeapMem, Mem};
use format::protocol::read::{Clock, Item, LossReason, ReaderOptions, Start};
use format::protocol::slots::{self, WriterIdentity};
use format::protocol::{self, Geometry, Peek, Producer, ReaderCore};

const KIND: u16 = 0x8000;

mod common;

/// Two writer slots, four blocks of 1 KiB.
fn geometry(mode: Mode) -> Geometry {
    common::small_geometry(mode, 4096, 1024)
}

/// Slot 0 is this (live) process, slot 1 a dead one.
fn alive(pid: u32, _: u64) -> bool {
    pid == 100
}

/// Every process is alive.
fn all_alive(_: u32, _: u64) -> bool {
    true
}

/// Zeroed memory for `g`, with slot 0 attached as pid 100 and slot 1 as pid 101.
fn memory(g: &Geometry) -> HeapMem {
    let mem = HeapMem::new(g.data + g.capacity);
    for (i, pid) in [(0u16, 100u32), (1, 101)] {
        mem.store(
            g.slot_off(i),
            layout::slot_ctl(slot_state::ACTIVE, 1, pid),
            Release,
        );
    }
    mem
}

/// Read everything from `pos` on with the reader primitives; every record must carry its own
/// position (first 8 payload bytes). Returns the new position and how many records were read.
fn read(mem: &HeapMem, g: &Geometry, mut pos: u64) -> (u64, u64) {
    let mut buf = vec![0u8; g.block as usize];
    let mut got = 0;
    for _ in 0..10_000 {
        match protocol::peek(mem, g, pos) {
            Peek::Empty => return (pos, got),
            Peek::Skip(to) => pos = to,
            Peek::Behind { tail } => pos = tail,
            Peek::Header(w0) => {
                let span = layout::align_up(layout::rec_len(w0), 8);
                if layout::rec_flags(w0) & layout::rec::BUSY == 0 {
                    if let Some(len) = protocol::copy_record(mem, g, pos, w0, &mut buf) {
                        assert!(len >= 24);
                        assert_eq!(buf[16..24], pos.to_le_bytes(), "record at {pos}");
                        got += 1;
                    }
                }
                pos += span;
            }
            Peek::Unwritten | Peek::Corrupt => {
                let head = mem.load(g.ctl(ctl::RESERVE), Relaxed);
                pos = protocol::scan(mem, g, pos, head, g.capacity).unwrap_or(head);
            }
        }
    }
    panic!("reader did not settle");
}

/// Write one record of `size` payload bytes whose first word is its position.
fn write<M: Mem>(p: &Producer<M>, size: u64, live: &dyn protocol::Liveness) -> Option<u64> {
    let c = p.reserve(KIND, 16 + size, live).ok()?;
    let mut payload = vec![0xA5u8; size as usize];
    payload[..8].copy_from_slice(&c.pos.to_le_bytes());
    // Odd offsets and lengths: the copy is not word-sized.
    p.mem.write_bytes(c.payload_off, &payload[..1]);
    p.mem.write_bytes(c.payload_off + 1, &payload[1..]);
    p.commit(&c);
    Some(c.pos)
}

/// The reader's clock: each look is a millisecond later (no real time under Miri).
struct Steps(Cell<u64>);

impl Clock for Steps {
    fn now(&self) -> Duration {
        self.0.set(self.0.get() + 1);
        Duration::from_millis(self.0.get())
    }
}

/// The real reader over `mem`, from the oldest data, deciding liveness by `live`.
fn reader<'m>(
    mem: &'m HeapMem,
    g: &Geometry,
    live: impl protocol::Liveness + 'static,
    grace: Duration,
) -> ReaderCore<&'m HeapMem, Steps> {
    let opts = ReaderOptions {
        start: Start::Oldest,
        unwritten_grace: grace,
        liveness: Box::new(live),
    };
    ReaderCore::new(mem, *g, true, opts, Steps(Cell::new(0)))
}

/// One reader item, in a form that outlives the reader's buffer.
#[derive(Debug, PartialEq)]
enum Got {
    /// A record at this position (its payload checked).
    Record(u64),
    /// A loss: reason, records, exact.
    Lost(LossReason, u64, bool),
    /// Nothing now.
    Waiting,
}

fn poll(r: &mut ReaderCore<&HeapMem, Steps>) -> Got {
    match r.poll() {
        Item::Record(rec) => {
            assert_eq!(
                rec.payload[..8],
                rec.pos.to_le_bytes(),
                "record at {}",
                rec.pos
            );
            Got::Record(rec.pos)
        }
        Item::Lost(l) => Got::Lost(l.reason, l.records, l.exact),
        Item::Waiting(_) => Got::Waiting,
    }
}

#[test]
fn both_modes_over_several_laps_read_back_intact() {
    for mode in [Mode::Discard, Mode::Overwrite] {
        let g = geometry(mode);
        let mem = memory(&g);
        let p = Producer::new(&mem, g, 0);
        let (mut pos, mut read_total, mut written) = (0, 0, 0);
        for i in 0..120u64 {
            // 8 to 400 bytes of payload: several records a block, some padding at block ends.
            if write(&p, 8 + (i * 37) % 393, &alive).is_some() {
                written += 1;
            }
            if i % 5 == 4 {
                let (to, got) = read(&mem, &g, pos);
                pos = to;
                read_total += got;
                if mode == Mode::Discard {
                    mem.store(g.ctl(ctl::CONSUMER), pos, Release);
                }
            }
        }
        read_total += read(&mem, &g, pos).1;
        assert!(
            mem.load(g.ctl(ctl::RESERVE), Relaxed) > 2 * g.capacity,
            "{mode:?}: laps"
        );
        if mode == Mode::Discard {
            assert_eq!(read_total, written, "discard: every record read");
        } else {
            assert!(read_total > 0 && read_total <= written);
        }
    }
}

#[test]
fn overwrite_reclaims_past_a_writer_dead_before_its_stamp() {
    let g = geometry(Mode::Overwrite);
    let mem = memory(&g);
    // Slot 1 (pid 101, dead) reserves and never stamps; its in-flight count stays 1.
    let dead = Producer::new(&mem, g, 1);
    dead.reserve_range(16 + 64, &alive).unwrap();
    let p = Producer::new(&mem, g, 0);
    for i in 0..100u64 {
        assert!(
            write(&p, 8 + (i * 13) % 200, &alive).is_some(),
            "record {i} dropped"
        );
    }
    assert!(
        mem.load(g.ctl(ctl::TAIL), Relaxed) > g.block,
        "the gap was reclaimed past"
    );
    let (_, got) = read(&mem, &g, 0);
    assert!(got > 0);
}

#[test]
fn the_reader_reports_an_abandoned_record_and_an_unwritten_gap() {
    let g = geometry(Mode::Discard);
    let mem = memory(&g);
    let (live, dead) = (Producer::new(&mem, g, 0), Producer::new(&mem, g, 1));
    let a = write(&live, 8, &alive).unwrap();
    // The dead writer (pid 101) stamped a record and never committed it...
    let busy = dead.reserve(KIND, 16 + 8, &alive).unwrap();
    // ...and reserved another without stamping it.
    dead.reserve_range(16 + 40, &alive).unwrap();
    let b = write(&live, 16, &alive).unwrap();
    let mut r = reader(&mem, &g, alive, Duration::from_secs(3600));
    assert_eq!(poll(&mut r), Got::Record(a));
    assert_eq!(poll(&mut r), Got::Lost(LossReason::Abandoned, 1, true));
    assert_eq!(r.position(), busy.pos + 24);
    // Discard mode has no in-flight counts: the gap waits for the grace period while a writer
    // (slot 0) lives. An hour of grace is not over after a few looks.
    assert_eq!(poll(&mut r), Got::Waiting);
    // With no grace period the gap is given up at the next look.
    let mut r2 = reader(&mem, &g, alive, Duration::ZERO);
    let items: Vec<Got> = (0..8)
        .map(|_| poll(&mut r2))
        .filter(|i| *i != Got::Waiting)
        .collect();
    assert_eq!(
        items,
        [
            Got::Record(a),
            Got::Lost(LossReason::Abandoned, 1, true),
            Got::Lost(LossReason::Unwritten, 1, false),
            Got::Record(b),
        ]
    );
    assert_eq!(poll(&mut r2), Got::Waiting);
    r2.publish();
    assert_eq!(mem.load(g.ctl(ctl::CONSUMER), Relaxed), r2.position());
}

#[test]
fn the_reader_counts_what_overwrite_mode_reclaimed_before_it_read() {
    let g = geometry(Mode::Overwrite);
    let mem = memory(&g);
    let p = Producer::new(&mem, g, 0);
    // 24-byte records (8 bytes of payload + header): over two laps of four 1 KiB blocks.
    let written: Vec<u64> = (0..400).map(|_| write(&p, 8, &alive).unwrap()).collect();
    let tail = mem.load(g.ctl(ctl::TAIL), Relaxed);
    assert!(tail >= 4 * g.block, "reclaimed");
    let mut r = reader(&mem, &g, alive, Duration::ZERO);
    let gone = written.iter().filter(|&&w| w < tail).count() as u64;
    assert_eq!(poll(&mut r), Got::Lost(LossReason::Overwritten, gone, true));
    let mut got = 0;
    while let Got::Record(pos) = poll(&mut r) {
        assert!(pos >= tail);
        got += 1;
    }
    assert_eq!(
        gone + got,
        written.len() as u64,
        "every record read or counted"
    );
    assert_eq!(r.accounted(), Some(written.len() as u64));
}

#[test]
fn attach_adopts_reaps_and_detaches() {
    let g = geometry(Mode::Discard);
    let mem = HeapMem::new(g.data + g.capacity);
    let me = WriterIdentity {
        pid: 100,
        start_time: 5,
        ..Default::default()
    };
    let a = slots::attach(&mem, &g, me, &all_alive).unwrap();
    // The same process again (after an exec): its own slot, a new generation.
    let b = slots::attach(&mem, &g, me, &all_alive).unwrap();
    assert_eq!((b.slot, b.generation), (a.slot, a.generation + 1));
    let other = WriterIdentity {
        pid: 101,
        start_time: 6,
        ..Default::default()
    };
    let c = slots::attach(&mem, &g, other, &all_alive).unwrap();
    assert_ne!(c.slot, a.slot);
    let third = WriterIdentity {
        pid: 102,
        start_time: 7,
        ..Default::default()
    };
    assert_eq!(slots::attach(&mem, &g, third, &all_alive), None, "full");
    // Pid 101 died: its slot is reaped.
    let d = slots::attach(&mem, &g, third, &|pid: u32, _: u64| pid != 101).unwrap();
    assert_eq!(d.slot, c.slot);
    assert_eq!(mem.load(g.ctl(ctl::REAPED), Relaxed), 1);
    assert!(
        !slots::detach(&mem, &g, c.slot, c.generation, 101),
        "not 101's any more"
    );
    assert!(slots::detach(&mem, &g, b.slot, b.generation, 100));
    assert!(!slots::detach(&mem, &g, b.slot, b.generation, 100), "once");
    assert_eq!(mem.load(g.ctl(ctl::DETACHES), Relaxed), 1);
}

#[test]
fn an_exec_adopts_the_slot_holding_its_previous_span_and_nothing_else() {
    let g = geometry(Mode::Discard);
    let mem = HeapMem::new(g.data + g.capacity);
    let span = [7u8; 16];
    let first = WriterIdentity {
        pid: 100,
        start_time: 5,
        ..Default::default()
    };
    let a = slots::attach(&mem, &g, first, &all_alive).unwrap();
    // The image stores its span in its slot (`Writer::set_span`), as two native words.
    let base = g.slot_off(a.slot) + layout::slot::SPAN;
    mem.store(base, u64::from_ne_bytes([7; 8]), Relaxed);
    mem.store(base + 8, u64::from_ne_bytes([7; 8]), Relaxed);
    // Another process with another span: not adopted, even with the same start-time bound.
    let stranger = WriterIdentity {
        pid: 101,
        start_time: 9,
        previous_span: span,
    };
    let s = slots::attach(&mem, &g, stranger, &all_alive).unwrap();
    assert_ne!(s.slot, a.slot, "another pid never adopts");
    slots::detach(&mem, &g, s.slot, s.generation, 101);
    // Same pid, a later start-time bound (taken after the exec), and a span that is not the
    // slot's: a new slot, not this one.
    let wrong = WriterIdentity {
        pid: 100,
        start_time: 9,
        previous_span: [8; 16],
    };
    let w = slots::attach(&mem, &g, wrong, &all_alive).unwrap();
    assert_ne!(w.slot, a.slot);
    slots::detach(&mem, &g, w.slot, w.generation, 100);
    // The exec'd image: same pid, the previous image's span. Its own slot, a new generation.
    let exec = WriterIdentity {
        pid: 100,
        start_time: 9,
        previous_span: span,
    };
    let b = slots::attach(&mem, &g, exec, &all_alive).unwrap();
    assert_eq!((b.slot, b.generation), (a.slot, a.generation + 1));
}

/// Two writer threads and the real reader on a third, at once. Under Miri this checks that the
/// protocol's orderings leave no data race between a writer's payload copy and the reader's.
fn threads(mode: Mode, capacity: u64, per_writer: u64) {
    let g = common::small_geometry(mode, capacity, 1024);
    let mem = memory(&g);
    let total = 2 * per_writer;
    // Set when the reader stops, even by a failed assertion: writers waiting for room give up.
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Writers done: then a reader with nothing to read is at the end (overwrite-mode loss
    // counts may be lower bounds, so the records accounted may not add up to those written).
    let finished = std::sync::atomic::AtomicU8::new(0);
    struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Relaxed);
        }
    }
    let got = std::thread::scope(|s| {
        for slot in 0..2u16 {
            let (mem, stop, finished) = (&mem, &stop, &finished);
            s.spawn(move || {
                let p = Producer::new(mem, g, slot);
                let mut n = 0;
                while n < per_writer && !stop.load(Relaxed) {
                    // 8 to 120 bytes of payload.
                    if write(&p, 8 + (n * 29 + slot as u64 * 7) % 113, &all_alive).is_some() {
                        n += 1;
                    } else {
                        std::thread::yield_now(); // discard mode: full until the reader publishes
                    }
                }
                finished.fetch_add(1, Release);
            });
        }
        let _stop = Stop(&stop);
        let mut r = reader(&mem, &g, all_alive, Duration::from_secs(3600));
        let (mut got, mut last) = (0, 0);
        while got < total {
            // Loaded before the poll: once both writers were done, every commit is visible to it.
            let done = finished.load(Acquire) == 2;
            match poll(&mut r) {
                Got::Record(pos) => {
                    assert!(pos >= last, "positions only grow");
                    last = pos;
                    got += 1;
                    r.publish();
                }
                // Discard: ring_full, while the reader lags.
                Got::Lost(LossReason::Dropped(_), ..) => {}
                // Overwrite: reclaimed before or while the reader got to them.
                // (An `overwritten` report may count no record: the jump to the tail passes
                // only padding, or records already reported torn.)
                Got::Lost(LossReason::Overwritten | LossReason::Torn, n, _)
                    if mode == Mode::Overwrite =>
                {
                    got += n
                }
                Got::Lost(reason, ..) => panic!("nothing else is lost here: {reason:?}"),
                Got::Waiting if done => break,
                Got::Waiting => std::thread::yield_now(),
            }
        }
        got
    });
    if mode == Mode::Discard {
        assert_eq!(got, total, "discard: every record read");
    }
    let drops = protocol::drop_counts(&mem, &g);
    assert_eq!(drops[1], 0, "nothing too large");
    assert_eq!(drops[3..], [0; 2], "no slot or detach drops");
}

#[test]
fn two_writers_and_the_reader_at_once_discard() {
    // Two blocks: the writers wait for the reader's published position many times.
    threads(Mode::Discard, 2048, if cfg!(miri) { 40 } else { 2000 });
}

#[test]
fn two_writers_and_the_reader_at_once_overwrite() {
    // Two blocks: writers reclaim blocks the reader may be copying from at that moment. Such a
    // copy is torn, detected and reported lost; under Miri, the copy racing the rewrite must be
    // a race of atomics (it was a plain copy racing a store, undefined behaviour, before
    // `MapMem` copied word by word).
    threads(Mode::Overwrite, 2048, if cfg!(miri) { 40 } else { 2000 });
}
