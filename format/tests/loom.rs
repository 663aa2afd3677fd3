//! Model checking of the whole ring protocol with loom: the real writer ([`Producer`]: reserve,
//! stamp, commit, reclaim), the real reader ([`ReaderCore`]: the state machine `Reader` wraps,
//! waiting, resynchronisation, loss accounting) and the real writer table ([`slots::attach`]:
//! claim, reap), all over loom atomics ([`LoomMem`]). Nothing protocol-side is re-written
//! here; the models only drive it and check what comes out.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p format --test loom --release`
//!
//! Payload words are stored with relaxed atomics, and every record's payload is its own stream
//! position, so if a release/acquire pair the protocol relies on were missing, loom would let
//! the reader accept a stale or torn payload and the content check would fail. What loom cannot
//! cover (process death as the kernel does it, other processes' memory models, the kernel) is
//! argued in RING.md, "Why it is correct"; here a process dies by a release store that the
//! liveness oracle acquires, which is what finding a process gone gives a real reader.
//!
//! Each model fails when the ordering it protects is weakened; the comment above each model
//! names the weakenings tried (each was tried, then reverted), the failure loom reported, and
//! the orderings it does not catch.
//!
//! Two properties of loom shape the models. A thread is resumed after any single step of
//! another thread once it yields, and loom never returns a value a thread saw itself before its
//! last yield once a newer one exists; so a reader that created the memory, or that polls and
//! yields, rarely holds a stale view. Where a model needs one, its initial state is made on a
//! thread of its own ([`before`]) and its reader waits for the writer to be done instead of
//! yielding at every poll ([`sleep`]). The `Producer`'s process-private cached limit is a loom
//! atomic too under `cfg(loom)`: one model shares a `Producer` between two threads, as the
//! threads of a process share its writer, so that one writes on the strength of the other's
//! refresh.
#![cfg(loom)]

use std::cell::Cell;
use std::sync::atomic::Ordering::*;
use std::time::Duration;

use format::layout::{ctl, Mode};
use format::mem::model::LoomMem;
use format::mem::Mem;
use format::protocol::read::{Clock, Item, LossReason, ReaderOptions, Start};
use format::protocol::slots::{self, WriterIdentity};
use format::protocol::{Geometry, Liveness, Producer, ReaderCore};
use loom::sync::atomic::AtomicBool;
use loom::sync::Arc;
use loom::thread;

const KIND: u16 = 0x8000;
/// Header + one payload word.
const REC: u64 = 24;

mod common;

fn geometry(mode: Mode, capacity: u64, block: u64) -> Geometry {
    common::small_geometry(mode, capacity, block)
}

/// Every process is alive.
fn alive(_: u32, _: u64) -> bool {
    true
}

/// Slot 1's process (pid 101) is dead, slot 0's alive.
fn slot1_dead(pid: u32, _: u64) -> bool {
    pid != 101
}

/// The model's clock for the reader's grace period: each look is a millisecond later, so a
/// model is deterministic, as loom requires. The grace period of the models is far longer than
/// any model runs: what they check is what the reader decides without it.
struct Steps(Cell<u64>);

impl Clock for Steps {
    fn now(&self) -> Duration {
        self.0.set(self.0.get() + 1);
        Duration::from_millis(self.0.get())
    }
}

type Reader = ReaderCore<LoomMem, Steps>;

/// The real reader over `mem`, from `start`, deciding liveness by `live`. Writable: it marks a
/// dead writer's slot DEAD (as the drain does) and may publish.
fn reader(mem: &LoomMem, g: &Geometry, start: Start, live: impl Liveness + 'static) -> Reader {
    let opts = ReaderOptions {
        start,
        unwritten_grace: Duration::from_secs(3600),
        liveness: Box::new(live),
    };
    ReaderCore::new(mem.clone(), *g, true, opts, Steps(Cell::new(0)))
}

/// Attach as pid `pid` (start time 1) with the real attach, as `Writer::attach_as` does.
fn attach(mem: &LoomMem, g: &Geometry, pid: u32, live: &dyn Liveness) -> Option<slots::Attached> {
    let id = WriterIdentity {
        pid,
        start_time: 1,
        ..Default::default()
    };
    slots::attach(mem, g, id, live)
}

/// Write `n` records as slot `slot` whose payload is their own stream position (so any stale
/// or torn copy is visible as a mismatch). Returns the positions written (the rest dropped).
fn write(mem: LoomMem, g: Geometry, slot: u16, n: usize, live: &dyn Liveness) -> Vec<u64> {
    let p = Producer::new(mem, g, slot);
    let mut written = Vec::new();
    for _ in 0..n {
        if let Ok(c) = p.reserve(KIND, REC, live) {
            p.mem.write_bytes(c.payload_off, &c.pos.to_le_bytes());
            p.commit(&c);
            written.push(c.pos);
        }
    }
    written
}

/// What a reader yielded.
#[derive(Default, Debug)]
struct Tally {
    /// Records read (each checked intact).
    got: u64,
    /// Records reported lost from the stream (not drops).
    lost: u64,
    /// Whether every loss report was exact.
    exact: bool,
    /// Stream ranges reported `unwritten` or `corrupt`: gaps whose header never came.
    gaps: Vec<(u64, u64)>,
    /// Records reported dropped by writers.
    dropped: u64,
    /// Position after the last record read or lost.
    last: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            exact: true,
            ..Default::default()
        }
    }

    /// No record in `written` (committed by a live writer) was given up as a gap: gaps are
    /// where a dead writer's header never came.
    fn no_gap_over(&self, written: &[u64]) {
        for &p in written {
            assert!(
                !self.gaps.iter().any(|&(a, b)| a <= p && p < b),
                "a live writer's record at {p} was skipped as unwritten: {self:?}"
            );
        }
    }
}

/// Poll `r` until `want` records are accounted for (read or lost), or `polls` run out, or
/// (`until_caught_up`) it has nothing more. Every record must carry its own position, and
/// positions only grow. With `publish`, the position is published after every record, as the
/// drain does once a record is safely out. Returns whether the reader ended caught up.
fn read(r: &mut Reader, t: &mut Tally, want: u64, polls: usize, publish: bool) -> bool {
    read_waiting(r, t, want, polls, publish, &thread::yield_now)
}

/// [`read`], calling `wait` whenever the reader has nothing to yield.
fn read_waiting(
    r: &mut Reader,
    t: &mut Tally,
    want: u64,
    polls: usize,
    publish: bool,
    wait: &dyn Fn(),
) -> bool {
    for _ in 0..polls {
        if t.got + t.lost >= want {
            return false;
        }
        match r.poll() {
            Item::Record(rec) => {
                let payload = u64::from_le_bytes(rec.payload.try_into().expect("one word"));
                assert_eq!(
                    payload, rec.pos,
                    "a record read must be the one written at its position"
                );
                assert!(rec.pos >= t.last, "positions only grow");
                t.last = rec.pos + REC;
                t.got += 1;
                if publish {
                    r.publish();
                }
            }
            Item::Lost(l) => match l.reason {
                LossReason::Dropped(_) => t.dropped += l.records,
                _ => {
                    assert!(l.pos >= t.last, "positions only grow");
                    t.last = l.pos + l.bytes;
                    t.lost += l.records;
                    t.exact &= l.exact;
                    if matches!(l.reason, LossReason::Unwritten | LossReason::Corrupt) {
                        t.gaps.push((l.pos, l.pos + l.bytes));
                    }
                }
            },
            Item::Waiting(format::Waiting::CaughtUp) if want == u64::MAX => return true,
            // After the writers joined, nothing can change: waiting is final.
            Item::Waiting(w) if want == u64::MAX => {
                eprintln!(
                    "the reader waits ({w:?}) at {} for a writer that is done",
                    r.position()
                );
                return false;
            }
            Item::Waiting(_) => wait(),
        }
    }
    false
}

/// After the writers joined: read on to the end, which must come (nothing is left busy or
/// unwritten by a live writer).
fn finish(r: &mut Reader, t: &mut Tally) {
    assert!(
        read(r, t, u64::MAX, 64, false),
        "the reader must get to the end once the writers are done: {t:?}"
    );
}

/// What a waiting reader does in the models where it waits for a writer to be done: it looks
/// again once `done` is set, as a drain that sleeps between polls would. `done` is relaxed, so
/// it orders nothing by itself (an acquire fence of the reader after it still synchronises
/// with the writer's last release fence, as it would between processes), and what the reader
/// then loads may be stale. Yielding instead, the reader is resumed after any single step of
/// another thread, so it has mostly seen each value before the writer moves on, and loom never
/// returns a value a thread saw itself before its last yield once a newer one exists: the
/// stale views that tear a copy are then out of reach.
fn sleep(done: &AtomicBool) {
    while !done.load(Relaxed) {
        thread::yield_now();
    }
}

/// Run `f` (a model's initial state) on a thread of its own, joined. The model's reader, on
/// the main thread, then has never itself seen the initial values, and loom lets it read them
/// stale: loom never returns a value a thread saw itself before its last yield once a newer
/// one exists (so that spin loops progress), which would hide every stale read of a reader
/// that created the memory and then waited.
fn before<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    thread::spawn(f).join().unwrap()
}

/// Model memory for `g` with two writers attached (slot 0 as pid 100, slot 1 as pid 101).
fn memory_with_two_writers(g: &Geometry) -> LoomMem {
    let mem = LoomMem::new(g.data + g.capacity);
    for (pid, i) in [(100, 0), (101, 1)] {
        let a = attach(&mem, g, pid, &alive).expect("a free slot");
        assert_eq!(a.slot, i);
    }
    mem
}

/// Start two writers: slot 0 writes `n0` records, slot 1 writes one. Returns their handles
/// (each yields how many it wrote).
fn start_writers(
    mem: &LoomMem,
    g: &Geometry,
    n0: usize,
) -> (thread::JoinHandle<Vec<u64>>, thread::JoinHandle<Vec<u64>>) {
    let g = *g;
    let (m0, m1) = (mem.clone(), mem.clone());
    let w0 = thread::spawn(move || write(m0, g, 0, n0, &alive));
    let w1 = thread::spawn(move || write(m1, g, 1, 1, &alive));
    (w0, w1)
}

/// Weakened: the commit's release store of word 0 made relaxed (`Producer::commit`). Loom: the
/// reader acquires the committed header and copies a payload word still zero, "a record read
/// must be the one written at its position" (left 0, right 24).
#[test]
fn discard_two_writers_one_reader_every_record_once_intact() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let g = geometry(Mode::Discard, 128, 64);
        let mem = before(move || memory_with_two_writers(&g));
        let (w0, w1) = start_writers(&mem, &g, 1);
        let mut r = reader(&mem, &g, Start::Oldest, alive);
        let mut t = Tally::new();
        read(&mut r, &mut t, 2, 20, true);
        let written = [w0.join().unwrap(), w1.join().unwrap()].concat();
        finish(&mut r, &mut t);
        t.no_gap_over(&written);
        let written = written.len() as u64;
        assert_eq!((t.lost, t.dropped), (0, 0));
        assert_eq!(t.got, written, "every record read once");
    });
}

/// Weakened: the writers' acquire load of the consumer position made relaxed
/// (`Producer::make_room`). Loom: the writer reusing block 0 is not ordered after the first
/// lap's stores there, so the first lap's header store lands after the new one and the record
/// at 64 never shows: "the reader waits (Unwritten) at 64 for a writer that is done", "the
/// reader must get to the end once the writers are done".
#[test]
fn discard_full_ring_never_overwrites_unread_records() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        // Two blocks of 32 bytes: one 24-byte record each. Three writes: at most two fit
        // until the reader publishes.
        let g = geometry(Mode::Discard, 64, 32);
        let mem = memory_with_two_writers(&g);
        let (w0, w1) = start_writers(&mem, &g, 2);
        let mut r = reader(&mem, &g, Start::Oldest, alive);
        let mut t = Tally::new();
        read(&mut r, &mut t, 3, 12, true);
        let written = [w0.join().unwrap(), w1.join().unwrap()].concat();
        finish(&mut r, &mut t);
        t.no_gap_over(&written);
        let written = written.len() as u64;
        let dropped = mem.load(g.ctl(format::DropReason::Full.counter()), Relaxed);
        assert_eq!(
            written + dropped,
            3,
            "every write either landed or was counted dropped"
        );
        assert_eq!(t.got, written, "every record read once, none overwritten");
        assert_eq!(t.dropped, dropped, "every drop reported");
    });
}

/// Two threads of one process share one writer (as every thread of a traced process shares
/// its `Writer`), and with it the `Producer`'s cached limit. A full two-block ring whose two
/// records the reader reads and releases while both threads write one more each: the thread
/// that finds the ring full refreshes the limit (acquiring the consumer position) and stores
/// it with release; the other may write on the strength of that copy alone, into the block
/// whose record the reader copied last. Every record read is intact, none is overwritten
/// unread, every write landed or was counted dropped.
///
/// Weakened: the cached limit's acquire load and release refresh made relaxed
/// (`Producer::reserve_loop`, `make_room`): not caught (the second thread's reservation CAS
/// reads the first one's, and its acquire orders it after the first one's acquire of the
/// consumer position). Weakened together with the reservation CAS made release-only: not
/// caught either. What these orderings exclude in discard mode is a write into released bytes
/// becoming visible to the reader's loads that came before its release (a load-buffering
/// shape), and loom only lets a load read stores that already ran in the interleaving it
/// explores, so it cannot show that; they rest on the argument of RING.md §6.
#[test]
fn discard_threads_sharing_a_writer_trust_each_others_refresh() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        // Two blocks of 32 bytes: one 24-byte record each.
        let g = geometry(Mode::Discard, 64, 32);
        let (mem, prod) = before(move || {
            let mem = LoomMem::new(g.data + g.capacity);
            let a = attach(&mem, &g, 100, &alive).unwrap();
            let prod = Arc::new(Producer::new(mem.clone(), g, a.slot));
            // The ring is full: records at 0 and 32, and the cached limit still 0.
            for _ in 0..2 {
                let c = prod.reserve(KIND, REC, &alive).unwrap();
                prod.mem.write_bytes(c.payload_off, &c.pos.to_le_bytes());
                prod.commit(&c);
            }
            (mem, prod)
        });
        let thread_writes = |p: Arc<Producer<LoomMem>>| {
            thread::spawn(move || {
                let c = p.reserve(KIND, REC, &alive).ok()?;
                p.mem.write_bytes(c.payload_off, &c.pos.to_le_bytes());
                p.commit(&c);
                Some(c.pos)
            })
        };
        let (ta, tb) = (thread_writes(prod.clone()), thread_writes(prod.clone()));
        let mut r = reader(&mem, &g, Start::Oldest, alive);
        let mut t = Tally::new();
        read(&mut r, &mut t, 4, 12, true);
        let written: Vec<u64> = [ta.join().unwrap(), tb.join().unwrap()]
            .into_iter()
            .flatten()
            .chain([0, 32])
            .collect();
        finish(&mut r, &mut t);
        t.no_gap_over(&written);
        let dropped = mem.load(g.ctl(format::DropReason::Full.counter()), Relaxed);
        assert_eq!(
            written.len() as u64 + dropped,
            4,
            "landed or counted dropped"
        );
        assert_eq!(t.lost, 0, "{t:?}");
        assert_eq!(
            t.got,
            written.len() as u64,
            "every record read once, none overwritten"
        );
    });
}

/// Weakened: the reclaim's acquire loads of the headers it walks made relaxed
/// (`Producer::reclaim`), or the commit's release store made relaxed. Loom: the old lap's
/// payload store lands after the new lap's, and the reader copies the record at 64 with the
/// old payload: "a record read must be the one written at its position" (left 0, right 64).
/// (Making the reservation CAS release-only, the ordering issue 2 added, is not caught: each
/// writer here acquires the tail itself before writing into a reclaimed block.)
#[test]
fn overwrite_reader_never_accepts_a_torn_or_stale_record() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let g = geometry(Mode::Overwrite, 64, 32);
        let mem = memory_with_two_writers(&g);
        let (w0, w1) = start_writers(&mem, &g, 2);
        let mut r = reader(&mem, &g, Start::Oldest, alive);
        let mut t = Tally::new();
        read(&mut r, &mut t, 3, 12, false);
        let written = [w0.join().unwrap(), w1.join().unwrap()].concat();
        finish(&mut r, &mut t);
        t.no_gap_over(&written);
        let written = written.len() as u64;
        assert!(
            t.got + t.lost <= written,
            "got {} lost {} written {written}",
            t.got,
            t.lost
        );
        if t.exact {
            assert_eq!(t.got + t.lost, written, "{t:?}");
        }
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

/// Weakened (the logic, not an ordering): reclaim ignoring the in-flight counts, i.e. taking
/// every unwritten header for a live writer's as version 1 does (`Producer::reclaim`). Loom:
/// "the dead reservation must not block reclaim" (left 1, right 2). Making the in-flight
/// decrement after the stamp relaxed is not caught: its only live writer is also the
/// reclaimer, whose own count is discounted, and what orders the reader after its stamp is
/// the reservation or tail it acquired as well.
#[test]
fn overwrite_a_writer_dead_before_its_stamp_blocks_neither_reclaim_nor_reader() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        // Two blocks of 32 bytes, one 24-byte record each.
        let g = geometry(Mode::Overwrite, 64, 32);
        let mem = memory_with_two_writers(&g);
        // Slot 1 reserves block 0 and dies before stamping it: its in-flight count stays 1.
        let dead = Producer::new(mem.clone(), g, 1);
        dead.reserve_range(REC, &slot1_dead).unwrap();
        // Slot 0 writes two records: block 1, then block 0 again, reclaimed past the gap.
        let m0 = mem.clone();
        let w0 = thread::spawn(move || write(m0, g, 0, 2, &slot1_dead));
        let mut r = reader(&mem, &g, Start::Oldest, slot1_dead);
        let mut t = Tally::new();
        read(&mut r, &mut t, 3, 16, false);
        let written = w0.join().unwrap();
        assert_eq!(
            written.len(),
            2,
            "the dead reservation must not block reclaim"
        );
        finish(&mut r, &mut t);
        assert!(t.got + t.lost <= 3, "{t:?}");
        t.no_gap_over(&written);
    });
}

/// (a) A reader racing a reclaiming writer, tiny overwrite ring: two blocks of one record each,
/// one writer writing three records, so the third reclaims block 0, possibly while the reader
/// copies the first. Everything the reader yields is intact, and once the writer is done every
/// record is read or reported lost, exactly.
///
/// Weakened: either half of the seqlock pair removed, the reader's acquire fence after its
/// copy (`read::copy_record`) or the writer's release fence before its first store into the
/// range (`Producer::stamp`). Loom: the reader copies record 0's header with the next lap's
/// payload, re-loads a stale tail, and accepts the torn copy: "a record read must be the one
/// written at its position" (left 64, right 0).
#[test]
fn overwrite_reader_racing_a_reclaiming_writer() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let g = geometry(Mode::Overwrite, 64, 32);
        let (mem, a) = before(move || {
            let mem = LoomMem::new(g.data + g.capacity);
            let a = attach(&mem, &g, 100, &alive).unwrap();
            (mem, a)
        });
        let (m, done) = (mem.clone(), Arc::new(AtomicBool::new(false)));
        let d = done.clone();
        let w = thread::spawn(move || {
            let n = write(m, g, a.slot, 3, &alive);
            // Relaxed: tells the model's reader when to look again, and orders nothing.
            d.store(true, Relaxed);
            n
        });
        let mut r = reader(&mem, &g, Start::Oldest, alive);
        let mut t = Tally::new();
        read_waiting(&mut r, &mut t, 3, 6, false, &|| sleep(&done));
        let written = w.join().unwrap();
        finish(&mut r, &mut t);
        t.no_gap_over(&written);
        let written = written.len() as u64;
        assert_eq!(t.dropped, 3 - written, "every drop reported");
        assert!(t.got + t.lost <= written, "{t:?} written {written}");
        if t.exact {
            assert_eq!(t.got + t.lost, written, "{t:?}");
        }
    });
}

/// Processes of the attach model: pid 100 dies when its thread says so, the rest live. The
/// release store of its death and the acquire load here stand for the kernel: whoever finds a
/// process gone sees everything it did.
#[derive(Clone)]
struct Procs {
    dead: Arc<AtomicBool>,
}

const DEAD_PID: u32 = 100;

impl Liveness for Procs {
    fn alive(&self, pid: u32, _: u64) -> bool {
        pid != DEAD_PID || !self.dead.load(Acquire)
    }
}

/// (b) Two attachers racing for the table while one slot's owner dies with a record
/// unfinished. Slot 0 belongs to pid 100. Pids 102 (home slot 0) and 103 (home slot 1) start
/// attaching with the real attach; meanwhile pid 100 reserves a record (left BUSY) and dies,
/// and then the drain (the real reader, one poll) finds it dead and marks its slot DEAD. (Pid
/// 100 and the drain share the model's main thread, after the attachers were spawned: nothing
/// but the protocol orders pid 100's reservation before an attach.) Slot 0 is taken over by
/// reaping or from DEAD, slot 1 from FREE, or an attacher finds no slot while pid 100 lives.
/// Each attacher that got a slot writes one record. No slot is given twice, whoever took slot 0
/// over has an attach position past the dead record, and a reader starting afterwards reads
/// every record and reports the dead one abandoned: it never waits for it.
///
/// Weakened: the claim's acquire (the probe's acquire load of the control word and the
/// claim CAS, in `slots::attach`) made relaxed. Loom: the reader marks slot 0 DEAD after
/// seeing pid 100 gone, pid 102 claims it from DEAD without acquiring that, reads a
/// reservation position from before pid 100's reservation: "the dead record at 0 is not below
/// its attach position" (attach_pos 0); without that check, the fresh reader finds the dead
/// record owned by a live process and waits on it forever ("the reader waits (Busy) at 0").
#[test]
fn attach_racing_a_dead_owners_slot_takeover() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let g = geometry(Mode::Discard, 128, 64);
        let mem = LoomMem::new(g.data + g.capacity);
        let procs = Procs {
            dead: Arc::new(AtomicBool::new(false)),
        };
        let d = attach(&mem, &g, DEAD_PID, &procs).unwrap();
        assert_eq!(d.slot, 0);
        let attacher = |pid: u32| {
            let (m, p) = (mem.clone(), procs.clone());
            thread::spawn(move || {
                let a = attach(&m, &g, pid, &p)?;
                Some((a, write(m, g, a.slot, 1, &p).len() as u64))
            })
        };
        let (a, b) = (attacher(102), attacher(103));
        let dead_pos = {
            let prod = Producer::new(mem.clone(), g, 0);
            let c = prod.reserve(KIND, REC, &procs).unwrap();
            procs.dead.store(true, Release); // exits with the record BUSY
            c.pos
        };
        let mut r = reader(&mem, &g, Start::Oldest, procs.clone());
        let mut t = Tally::new();
        read(&mut r, &mut t, 1, 1, false);
        let done = [a.join().unwrap(), b.join().unwrap()];
        let attached: Vec<_> = done.iter().flatten().map(|d| d.0).collect();
        assert!(!attached.is_empty(), "slot 1 was free");
        if let [a, b] = attached[..] {
            assert_ne!(a.slot, b.slot, "a slot given twice");
        }
        // Whoever took slot 0 over did so after pid 100's reservation.
        for s in attached.iter().filter(|s| s.slot == 0) {
            assert_eq!(s.generation, 2, "{s:?}");
            assert!(
                s.attach_pos > dead_pos,
                "{s:?}: the dead record at {dead_pos} is not below its attach position"
            );
        }
        // A reader starting now (a restarted drain): the dead record is abandoned.
        let mut fresh = reader(&mem, &g, Start::At(0), procs.clone());
        let mut f = Tally::new();
        finish(&mut fresh, &mut f);
        let written: u64 = done.iter().flatten().map(|d| d.1).sum();
        assert_eq!((f.got, f.lost), (written, 1), "{f:?}");
        assert!(mem.load(g.ctl(ctl::REAPED), Relaxed) <= 1);
    });
}
