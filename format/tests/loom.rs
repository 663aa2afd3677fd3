//! Model checking of reserve / commit / consume with loom: the real protocol code
//! (`Producer`, `peek`, `copy_record`, `reclaim`) over loom atomics, two writers and a reader.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p format --test loom --release`
//!
//! Payload words are stored with relaxed atomics, so if a release/acquire pair the protocol
//! relies on were missing, loom would let the reader see a stale payload and the content
//! check would fail. What loom cannot cover (process death, other processes' memory models,
//! the kernel) is argued in RING.md, "Why it is correct".
#![cfg(loom)]

use std::sync::atomic::Ordering::*;

use format::layout::{self, ctl, Mode};
use format::mem::model::LoomMem;
use format::mem::Mem;
use format::protocol::{self, Geometry, Peek, Producer};
use loom::thread;

const KIND: u16 = 0x8000;
/// Header + one payload word.
const REC: u64 = 24;

mod common;

fn geometry(mode: Mode, capacity: u64, block: u64) -> Geometry {
    common::small_geometry(mode, capacity, block)
}

fn alive(_: u32, _: u64) -> bool {
    true
}

/// Slot 1's process (pid 101) is dead, slot 0's alive.
fn slot1_dead(pid: u32, _: u64) -> bool {
    pid != 101
}

/// Attach slot `i` as ACTIVE for a live pid, as `Writer::attach` leaves it.
fn attach(mem: &LoomMem, g: &Geometry, i: u16) {
    mem.store(
        g.slot_off(i),
        layout::slot_ctl(layout::slot_state::ACTIVE, 1, 100 + i as u32),
        Release,
    );
}

/// Model memory for `g` with two attached writers started: slot 0 writes `n0` records, slot 1
/// writes one. Returns the memory and the writers' handles (each yields how many it wrote).
fn start_writers(
    g: &Geometry,
    n0: usize,
) -> (
    LoomMem,
    thread::JoinHandle<usize>,
    thread::JoinHandle<usize>,
) {
    let g = *g;
    let mem = LoomMem::new(g.data + g.capacity);
    attach(&mem, &g, 0);
    attach(&mem, &g, 1);
    let (m0, m1) = (mem.clone(), mem.clone());
    let w0 = thread::spawn(move || write(m0, g, 0, n0, alive));
    let w1 = thread::spawn(move || write(m1, g, 1, 1, alive));
    (mem, w0, w1)
}

/// Write `n` records whose payload is their own stream position (so any stale or torn copy is
/// visible as a mismatch). Returns how many were written (the rest were dropped).
static LOG: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
fn log(s: String) {
    LOG.lock().unwrap().push(s);
}

fn write(mem: LoomMem, g: Geometry, slot: u16, n: usize, live: fn(u32, u64) -> bool) -> usize {
    let p = Producer::new(mem, g, slot);
    let mut ok = 0;
    for _ in 0..n {
        match p.reserve(KIND, REC, &live) {
            Ok(c) => {
                log(format!("w{slot} stamped {} off {}", c.pos, c.payload_off));
                p.mem.write_bytes(c.payload_off, &c.pos.to_le_bytes());
                log(format!("w{slot} payload {}", c.pos));
                p.commit(&c);
                log(format!("w{slot} committed {}", c.pos));
                ok += 1;
            }
            Err(e) => log(format!("w{slot} drop {e:?}")),
        }
    }
    ok
}

/// Read until `want` records and losses are accounted for or `polls` run out. Every record
/// read must carry its own position. Returns (records read, records reported lost).
fn read(mem: &LoomMem, g: &Geometry, want: u64, polls: usize, publish: bool) -> (u64, u64) {
    read_with(mem, g, want, polls, publish, alive)
}

/// [`read`] with a liveness oracle: an unwritten header that no live writer can still stamp
/// is skipped to the next header (or the block end) and counted lost, as the real reader does.
fn read_with(
    mem: &LoomMem,
    g: &Geometry,
    want: u64,
    polls: usize,
    publish: bool,
    live: fn(u32, u64) -> bool,
) -> (u64, u64) {
    let mut pos = 0;
    let mut buf = vec![0u8; g.block as usize];
    let (mut got, mut lost) = (0, 0);
    for _ in 0..polls {
        if got + lost >= want {
            break;
        }
        let pk = protocol::peek(mem, g, pos);
        log(format!("r peek {pos} {pk:?}"));
        match pk {
            Peek::Header(w0) if layout::rec_flags(w0) & layout::rec::BUSY != 0 => {
                thread::yield_now()
            }
            Peek::Header(w0) => {
                let span = layout::align_up(layout::rec_len(w0), 8);
                match protocol::copy_record(mem, g, pos, w0, &mut buf) {
                    Some(len) => {
                        assert_eq!(len as u64, REC);
                        let payload = u64::from_le_bytes(buf[16..24].try_into().unwrap());
                        if payload != pos {
                            eprintln!("{:#?}", LOG.lock().unwrap());
                        }
                        assert_eq!(
                            payload,
                            pos,
                            "a record read must be the one written at its position: w0={w0:#x} copy={:?} tail={} head={}",
                            &buf[..24],
                            mem.load(g.ctl(ctl::TAIL), Relaxed),
                            mem.load(g.ctl(ctl::RESERVE), Relaxed)
                        );
                        got += 1;
                    }
                    None => {
                        assert_eq!(
                            g.mode,
                            Mode::Overwrite,
                            "only overwrite mode may tear a copy"
                        );
                        lost += 1;
                    }
                }
                pos += span;
                if publish {
                    mem.store(g.ctl(ctl::CONSUMER), pos, Release);
                }
            }
            Peek::Skip(to) => pos = to,
            Peek::Behind { tail } => {
                // Each reclaimed block of this model held records; count them from the
                // descriptors like the real reader.
                let (cum, _) = protocol::block_cum(mem, g, tail - g.block)
                    .expect("descriptor of the block before the tail");
                lost = cum - got;
                pos = tail;
            }
            Peek::Unwritten
                if g.announce
                    && !protocol::reservations_in_flight(mem, g, &live, None)
                    && protocol::peek(mem, g, pos) == Peek::Unwritten =>
            {
                pos = protocol::scan(mem, g, pos, g.block_end(pos), g.block)
                    .unwrap_or(g.block_end(pos));
                lost += 1;
            }
            Peek::Empty | Peek::Unwritten => thread::yield_now(),
            Peek::Corrupt => panic!("corrupt header at {pos}"),
        }
    }
    (got, lost)
}

#[test]
fn discard_two_writers_one_reader_every_record_once_intact() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        LOG.lock().unwrap().clear();
        let g = geometry(Mode::Discard, 128, 64);
        let (mem, w0, w1) = start_writers(&g, 1);
        let (got, lost) = read(&mem, &g, 2, 20, true);
        let written = (w0.join().unwrap() + w1.join().unwrap()) as u64;
        assert_eq!(lost, 0);
        assert!(got <= written);
        // Whatever the reader did not get in time is still there, intact.
        let (rest, _) = read_from(&mem, &g, got);
        assert_eq!(got + rest, written);
    });
}

/// Finish reading after `skip` records (single-threaded, after the writers joined).
fn read_from(mem: &LoomMem, g: &Geometry, skip: u64) -> (u64, u64) {
    let (all, lost) = read(mem, g, u64::MAX, 64, false);
    (all - skip, lost)
}

#[test]
fn discard_full_ring_never_overwrites_unread_records() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        // Two blocks of 32 bytes: one 24-byte record each. Three writes: at most two fit
        // until the reader publishes.
        let g = geometry(Mode::Discard, 64, 32);
        let (mem, w0, w1) = start_writers(&g, 2);
        let (got, _) = read(&mem, &g, 3, 12, true);
        let written = (w0.join().unwrap() + w1.join().unwrap()) as u64;
        assert!(got <= written);
        let dropped = mem.load(g.ctl(format::DropReason::Full.counter()), Relaxed);
        assert_eq!(
            written + dropped,
            3,
            "every write either landed or was counted dropped"
        );
    });
}

#[test]
fn overwrite_reader_never_accepts_a_torn_or_stale_record() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        LOG.lock().unwrap().clear();
        let g = geometry(Mode::Overwrite, 64, 32);
        let (mem, w0, w1) = start_writers(&g, 2);
        let (got, lost) = read(&mem, &g, 3, 12, false);
        let written = (w0.join().unwrap() + w1.join().unwrap()) as u64;
        assert!(
            got + lost <= written,
            "got {got} lost {lost} written {written}"
        );
    });
}

#[test]
fn minimal_two_lap_publication() {
    loom::model(|| {
        let mem = LoomMem::new(64);
        let m = mem.clone();
        let w = thread::spawn(move || {
            for lap in [0u64, 64] {
                m.store(0, 1 | 1 << 31, Relaxed);
                m.store(8, lap, Release);
                m.store(16, lap, Relaxed);
                m.store(0, 1, Release);
            }
        });
        if mem.load(8, Acquire) == 64 {
            let w0 = mem.load(0, Acquire);
            if w0 == 1 {
                assert_eq!(mem.load(16, Relaxed), 64);
            }
        }
        w.join().unwrap();
    });
}

#[test]
fn overwrite_a_writer_dead_before_its_stamp_blocks_neither_reclaim_nor_reader() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        LOG.lock().unwrap().clear();
        // Two blocks of 32 bytes, one 24-byte record each.
        let g = geometry(Mode::Overwrite, 64, 32);
        let mem = LoomMem::new(g.data + g.capacity);
        attach(&mem, &g, 0);
        attach(&mem, &g, 1);
        // Slot 1 reserves block 0 and dies before stamping it: its in-flight count stays 1.
        let dead = Producer::new(mem.clone(), g, 1);
        dead.reserve_range(REC, &slot1_dead).unwrap();
        // Slot 0 writes two records: block 1, then block 0 again, reclaimed past the gap.
        let m0 = mem.clone();
        let w0 = thread::spawn(move || write(m0, g, 0, 2, slot1_dead));
        let (got, lost) = read_with(&mem, &g, 3, 16, false, slot1_dead);
        assert_eq!(
            w0.join().unwrap(),
            2,
            "the dead reservation must not block reclaim"
        );
        assert!(got + lost <= 3, "got {got} lost {lost}");
    });
}
