//! Single-process behaviour of the ring: round trips, full rings in both modes, records left
//! behind by dead writers at each step of the protocol, slot reuse, and hostile files.

use std::path::PathBuf;
use std::time::Duration;

use format::layout::{self, ctl};
use format::mem::Mem;
use format::{
    CreateOptions, DropReason, Item, Loss, LossReason, Mode, Reader, ReaderOptions, Record, Ring,
    RingError, Start, Waiting, Writer, WriterIdentity, KIND_USER,
};

/// A pid that cannot exist (above the kernel's PID_MAX_LIMIT), for writers that are "dead".
const DEAD_PID: u32 = 4_194_305;

fn ring(dir: &tempfile::TempDir, capacity: u64, block: u64, mode: Mode) -> (Ring, PathBuf) {
    let path = dir.path().join("ring");
    let opts = CreateOptions {
        capacity,
        block_size: block,
        mode,
        writer_slots: 8,
        ..Default::default()
    };
    (Ring::create(&path, &opts).unwrap(), path)
}

/// Liveness where only the current process is alive.
fn only_me() -> Box<dyn format::Liveness> {
    let me = std::process::id();
    Box::new(move |pid: u32, _| pid == me)
}

fn reader(r: &Ring, start: Start) -> Reader<'_> {
    Reader::new(
        r,
        ReaderOptions {
            start,
            unwritten_grace: Duration::from_millis(0),
            liveness: only_me(),
        },
    )
}

#[derive(Debug, PartialEq)]
enum Got {
    Rec(u64, Vec<u8>),
    Lost(LossReason, u64),
}

/// Read until caught up (or waiting on a busy record), collecting records and losses. An
/// unwritten header is polled again, as a follower would (the grace period is zero here).
fn drain(r: &mut Reader<'_>) -> Vec<Got> {
    let mut out = vec![];
    let mut unwritten_polls = 0;
    for _ in 0..1_000_000 {
        match r.poll() {
            Item::Record(Record { pos, payload, .. }) => out.push(Got::Rec(pos, payload.to_vec())),
            Item::Lost(Loss {
                reason, records, ..
            }) => out.push(Got::Lost(reason, records)),
            Item::Waiting(Waiting::Unwritten) if unwritten_polls < 3 => unwritten_polls += 1,
            Item::Waiting(_) => return out,
        }
    }
    panic!("reader did not settle");
}

fn payloads(got: &[Got]) -> Vec<Vec<u8>> {
    got.iter()
        .filter_map(|g| match g {
            Got::Rec(_, p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

/// Records reported overwritten; any other loss fails the test.
fn overwritten_only(got: &[Got]) -> u64 {
    got.iter()
        .map(|g| match g {
            Got::Lost(LossReason::Overwritten, k) => *k,
            Got::Lost(other, _) => panic!("unexpected loss {other:?}"),
            _ => 0,
        })
        .sum()
}

#[test]
fn records_of_every_size_come_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = ring(&dir, 1 << 14, 4096, Mode::Discard);
    let w = Writer::attach(&r).unwrap();
    let mut rd = reader(&r, Start::Oldest);
    for n in 0..=(4096 - 16) {
        let p: Vec<u8> = (0..n).map(|i| (i * 7 + n) as u8).collect();
        let pos = w.write_bytes(KIND_USER, &p).unwrap();
        assert_eq!(drain(&mut rd), vec![Got::Rec(pos, p)], "size {n}");
        rd.publish();
    }
}

#[test]
fn a_reader_that_keeps_up_sees_every_record_across_many_laps() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = ring(&dir, 1 << 13, 4096, Mode::Discard);
    let w = Writer::attach(&r).unwrap();
    let mut rd = reader(&r, Start::Oldest);
    for i in 0u32..20_000 {
        let p = vec![i as u8; (i % 200) as usize];
        w.write_bytes(KIND_USER, &p).unwrap();
        let got = drain(&mut rd);
        assert_eq!(payloads(&got), vec![p], "record {i}");
        rd.publish();
    }
    assert_eq!(r.stats().dropped(), 0);
}

#[test]
fn a_record_larger_than_a_block_is_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = ring(&dir, 1 << 13, 4096, Mode::Discard);
    let w = Writer::attach(&r).unwrap();
    assert_eq!(
        w.write_bytes(KIND_USER, &[0; 4096]),
        Err(DropReason::TooLarge)
    );
    assert!(w.write_bytes(KIND_USER, &[0; 4080]).is_ok());
    let mut rd = reader(&r, Start::Oldest);
    let got = drain(&mut rd);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.contains(&Got::Lost(LossReason::Dropped(DropReason::TooLarge), 1)));
}

#[test]
fn discard_mode_drops_when_full_never_blocks_and_reports_the_drops() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = ring(&dir, 1 << 13, 4096, Mode::Discard);
    let w = Writer::attach(&r).unwrap();
    let (mut ok, mut dropped) = (0u64, 0u64);
    for i in 0..1000u32 {
        match w.write_bytes(KIND_USER, &i.to_le_bytes()) {
            Ok(_) => ok += 1,
            Err(DropReason::Full) => dropped += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(dropped > 0 && ok > 0);
    let mut rd = reader(&r, Start::Oldest);
    let got = drain(&mut rd);
    let recs = payloads(&got);
    assert_eq!(recs.len() as u64, ok);
    for (i, p) in recs.iter().enumerate() {
        assert_eq!(
            p,
            &(i as u32).to_le_bytes(),
            "the first records are the ones kept"
        );
    }
    assert!(
        got.contains(&Got::Lost(LossReason::Dropped(DropReason::Full), dropped)),
        "{:?}",
        &got[got.len() - 2..]
    );
    // Once the reader publishes, there is room again.
    rd.publish();
    assert!(w.write_bytes(KIND_USER, b"again").is_ok());
}

#[test]
fn overwrite_mode_keeps_the_newest_and_counts_exactly_what_was_missed() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = ring(&dir, 1 << 14, 4096, Mode::Overwrite);
    let w = Writer::attach(&r).unwrap();
    let n = 5000u32;
    for i in 0..n {
        w.write_bytes(
            KIND_USER,
            &[i.to_le_bytes().as_slice(), &[0u8; 20]].concat(),
        )
        .unwrap();
    }
    assert_eq!(r.stats().dropped(), 0, "overwrite mode never drops here");
    // From position 0, and from the oldest data: both report what was reclaimed first.
    for start in [Start::At(0), Start::Oldest] {
        let got = drain(&mut reader(&r, start));
        assert!(
            matches!(got[0], Got::Lost(LossReason::Overwritten, _)),
            "{start:?}"
        );
        let missed = overwritten_only(&got);
        let recs = payloads(&got);
        assert_eq!(
            missed + recs.len() as u64,
            n as u64,
            "{start:?}: every record is either read or counted missed"
        );
        let first = u32::from_le_bytes(recs[0][..4].try_into().unwrap());
        for (k, p) in recs.iter().enumerate() {
            assert_eq!(
                u32::from_le_bytes(p[..4].try_into().unwrap()),
                first + k as u32
            );
        }
        assert_eq!(
            *recs.last().unwrap(),
            [(n - 1).to_le_bytes().as_slice(), &[0u8; 20]].concat()
        );
    }
}

#[test]
fn overwrite_mode_reader_partway_through_a_block_counts_only_what_it_missed() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = ring(&dir, 1 << 13, 4096, Mode::Overwrite);
    let w = Writer::attach(&r).unwrap();
    let mut rd = reader(&r, Start::At(0));
    let rec = [7u8; 48]; // 64 bytes a record: 64 records a block
    for _ in 0..10 {
        w.write_bytes(KIND_USER, &rec).unwrap();
    }
    assert_eq!(payloads(&drain(&mut rd)).len(), 10);
    for _ in 0..1000 {
        w.write_bytes(KIND_USER, &rec).unwrap();
    }
    let got = drain(&mut rd);
    let missed: u64 = got
        .iter()
        .map(|g| if let Got::Lost(_, k) = g { *k } else { 0 })
        .sum();
    assert_eq!(
        10 + missed + payloads(&got).len() as u64,
        1010,
        "{:?}",
        &got[..2]
    );
}

/// Ring memory whose first load of the reservation position returns an old value: a writer
/// that loaded the head, was descheduled while the ring moved on, and then resumed.
struct StaleHead {
    inner: format::mem::MapMem,
    reserve: u64,
    stale: std::cell::Cell<Option<u64>>,
}

impl Mem for StaleHead {
    fn load(&self, off: u64, order: std::sync::atomic::Ordering) -> u64 {
        match self.stale.take() {
            Some(old) if off == self.reserve => old,
            other => {
                self.stale.set(other);
                self.inner.load(off, order)
            }
        }
    }
    fn store(&self, off: u64, val: u64, order: std::sync::atomic::Ordering) {
        self.inner.store(off, val, order)
    }
    fn cas(
        &self,
        off: u64,
        cur: u64,
        new: u64,
        s: std::sync::atomic::Ordering,
        f: std::sync::atomic::Ordering,
    ) -> Result<u64, u64> {
        self.inner.cas(off, cur, new, s, f)
    }
    fn add(&self, off: u64, val: u64, order: std::sync::atomic::Ordering) -> u64 {
        self.inner.add(off, val, order)
    }
    fn write_bytes(&self, off: u64, src: &[u8]) {
        self.inner.write_bytes(off, src)
    }
    fn read_bytes(&self, off: u64, dst: &mut [u8]) {
        self.inner.read_bytes(off, dst)
    }
}

#[test]
fn a_writer_with_a_stale_head_retries_rather_than_reclaiming_more() {
    for mode in [Mode::Overwrite, Mode::Discard] {
        let dir = tempfile::tempdir().unwrap();
        let (r, _) = ring(&dir, 1 << 14, 4096, mode);
        let w = Writer::attach(&r).unwrap();
        let mut rd = reader(&r, Start::At(0));
        let rec = [3u8; 48];
        w.write_bytes(KIND_USER, &rec).unwrap();
        let old_head = r.stats().reserve_pos;
        // Three laps on (read as we go in discard mode, so the ring never fills).
        let mut written = 1u64;
        while r.stats().reserve_pos < old_head + 3 * (1 << 14) {
            w.write_bytes(KIND_USER, &rec).unwrap();
            written += 1;
            if mode == Mode::Discard {
                drain(&mut rd);
                rd.publish();
            }
        }
        let g = r.geometry();
        let p = format::protocol::Producer::new(
            StaleHead {
                inner: r.mem(),
                reserve: g.ctl(ctl::RESERVE),
                stale: std::cell::Cell::new(None),
            },
            g,
            w.slot(),
        );
        // A first record brings this producer's cached limit up to date...
        let c = p.reserve(KIND_USER, 64, &format::KillLiveness).unwrap();
        p.commit(&c);
        written += 1;
        // ...then its next load of the head returns the old value.
        p.mem.stale.set(Some(old_head));
        let (tail, head) = (r.stats().tail, r.stats().reserve_pos);
        let c = p
            .reserve(KIND_USER, 64, &format::KillLiveness)
            .unwrap_or_else(|e| panic!("{mode:?}: a stale head must not drop the record: {e:?}"));
        assert!(p.mem.stale.get().is_none(), "the stale head was used");
        p.commit(&c);
        written += 1;
        let s = r.stats();
        assert!(
            s.tail <= tail + 4096 && s.tail <= s.reserve_pos,
            "{mode:?}: tail {tail} -> {}, head {head} -> {}",
            s.tail,
            s.reserve_pos
        );
        assert_eq!(s.reserve_pos, head + 64, "{mode:?}");
        if mode == Mode::Overwrite {
            let got = drain(&mut reader(&r, Start::At(0)));
            let missed = overwritten_only(&got);
            assert_eq!(missed + payloads(&got).len() as u64, written);
        }
    }
}

#[test]
fn overwrite_mode_discards_a_dead_writers_busy_record_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = ring(&dir, 1 << 13, 4096, Mode::Overwrite);
    let dead = Writer::attach_as(
        &r,
        WriterIdentity {
            pid: DEAD_PID,
            start_time: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let claim = dead.claim(KIND_USER, 32).unwrap();
    std::mem::forget(claim); // the writer "dies" with its record BUSY
    let w = Writer::attach(&r).unwrap();
    for i in 0..2000u32 {
        w.write_bytes(KIND_USER, &i.to_le_bytes())
            .expect("the dead writer's record must not block reclaim");
    }
    std::mem::forget(dead);
}

#[test]
fn overwrite_mode_drops_rather_than_reclaim_a_live_writers_busy_record() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = ring(&dir, 1 << 13, 4096, Mode::Overwrite);
    let w = Writer::attach(&r).unwrap();
    let claim = w.claim(KIND_USER, 32).unwrap();
    let mut blocked = 0;
    for i in 0..2000u32 {
        if w.write_bytes(KIND_USER, &i.to_le_bytes()) == Err(DropReason::OverwriteBlocked) {
            blocked += 1;
        }
    }
    assert!(blocked > 0);
    claim.commit();
    assert!(
        w.write_bytes(KIND_USER, b"x").is_ok(),
        "reclaim resumes once it is committed"
    );
}

/// A writer of a process that does not exist, stopped after `steps` protocol steps.
fn dead_writer_stops_after(r: &Ring, steps: u32) {
    let dead = Writer::attach_as(
        r,
        WriterIdentity {
            pid: DEAD_PID,
            start_time: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let p = dead.producer();
    let len = 16 + 24;
    let (head, start) = p.reserve_range(len, &format::KillLiveness).unwrap();
    if steps >= 2 {
        // Word 0 only: the position word still names an older lap (or nothing).
        let w0 = layout::rec_word0(len as u32 | layout::rec::BUSY, KIND_USER, p.slot);
        p.mem.store(
            p.geo.data_off(start),
            w0,
            std::sync::atomic::Ordering::Release,
        );
    }
    if steps >= 3 {
        let c = p.stamp(head, start, len, KIND_USER);
        p.mem.write_bytes(c.payload_off, &[0xEE; 12]); // half the payload
    }
    std::mem::forget(dead); // no detach: it died
}

#[test]
fn overwrite_mode_reclaims_past_a_writer_that_died_before_stamping() {
    // Killed after its reservation CAS (steps 1), or after word 0 only (2): the header never
    // names its position. Its count of reservations in flight stays behind, in a dead process.
    for steps in 1..=2 {
        let dir = tempfile::tempdir().unwrap();
        let (r, _) = ring(&dir, 1 << 13, 4096, Mode::Overwrite);
        let w = Writer::attach(&r).unwrap();
        w.write_bytes(KIND_USER, b"before").unwrap();
        dead_writer_stops_after(&r, steps);
        let dead = r.writers(&format::KillLiveness);
        let dead = dead.iter().find(|x| x.pid == DEAD_PID).unwrap();
        assert_eq!(
            (dead.alive, dead.inflight),
            (false, 1),
            "its count stays behind"
        );
        let n = 2000u32;
        for i in 0..n {
            w.write_bytes(KIND_USER, &i.to_le_bytes())
                .unwrap_or_else(|e| panic!("steps={steps}: record {i}: {e:?}"));
        }
        assert_eq!(r.stats().dropped(), 0);
        // Everything is read or accounted for: the gap is one record (an inexact count).
        let got = drain(&mut reader(&r, Start::Oldest));
        let lost: u64 = got
            .iter()
            .map(|g| if let Got::Lost(_, k) = g { *k } else { 0 })
            .sum();
        assert_eq!(
            lost + payloads(&got).len() as u64,
            n as u64 + 2,
            "steps={steps}"
        );
        assert_eq!(
            payloads(&got).last().unwrap(),
            &(n - 1).to_le_bytes().to_vec()
        );
    }
}

#[test]
fn overwrite_mode_waits_for_a_live_writer_between_reservation_and_stamp() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = ring(&dir, 1 << 13, 4096, Mode::Overwrite);
    let w = Writer::attach(&r).unwrap();
    let p = w.producer();
    let len = 16 + 8;
    // This (live) process reserves and is "descheduled" before its stamp.
    let (head, start) = p.reserve_range(len, &format::KillLiveness).unwrap();
    let other = Writer::attach_as(
        &r,
        WriterIdentity {
            pid: 1, // alive, and not us
            start_time: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let mut blocked = 0;
    for i in 0..2000u32 {
        match other.write_bytes(KIND_USER, &i.to_le_bytes()) {
            Err(DropReason::OverwriteBlocked) => blocked += 1,
            r => _ = r.unwrap(),
        }
    }
    assert!(blocked > 0, "its block must not be reclaimed under it");
    let c = p.stamp(head, start, len, KIND_USER);
    p.mem.write_bytes(c.payload_off, b"inflight");
    p.commit(&c);
    other
        .write_bytes(KIND_USER, b"after")
        .expect("reclaim resumes once it is stamped");
    std::mem::forget(other);
}

#[test]
fn a_writer_dead_at_any_step_loses_only_its_own_record() {
    for steps in 1..=3 {
        for mode in [Mode::Discard, Mode::Overwrite] {
            let dir = tempfile::tempdir().unwrap();
            let (r, _) = ring(&dir, 1 << 14, 4096, mode);
            let w = Writer::attach(&r).unwrap();
            w.write_bytes(KIND_USER, b"before").unwrap();
            dead_writer_stops_after(&r, steps);
            w.write_bytes(KIND_USER, b"after1").unwrap();
            w.write_bytes(KIND_USER, b"after2").unwrap();
            let mut rd = reader(&r, Start::Oldest);
            let got = drain(&mut rd);
            let want_reason = if steps == 3 {
                LossReason::Abandoned
            } else {
                LossReason::Unwritten
            };
            let recs = payloads(&got);
            assert_eq!(
                recs,
                vec![b"before".to_vec(), b"after1".to_vec(), b"after2".to_vec()],
                "steps={steps} {mode:?}: {got:?}"
            );
            let losses: Vec<_> = got.iter().filter(|g| matches!(g, Got::Lost(..))).collect();
            assert_eq!(
                losses,
                vec![&Got::Lost(want_reason, 1)],
                "steps={steps} {mode:?}"
            );
        }
    }
}

#[test]
fn a_live_writers_busy_record_is_waited_for_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = ring(&dir, 1 << 14, 4096, Mode::Discard);
    let w = Writer::attach(&r).unwrap();
    let claim = w.claim(KIND_USER, 5).unwrap();
    claim.write(0, b"later");
    w.write_bytes(KIND_USER, b"behind").unwrap();
    let mut rd = reader(&r, Start::Oldest);
    assert!(matches!(rd.poll(), Item::Waiting(Waiting::Busy)));
    assert!(matches!(rd.poll(), Item::Waiting(Waiting::Busy)));
    claim.commit();
    assert_eq!(
        payloads(&drain(&mut rd)),
        vec![b"later".to_vec(), b"behind".to_vec()]
    );
}

#[test]
fn a_reused_slot_does_not_make_its_previous_owners_record_look_alive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let opts = CreateOptions {
        capacity: 1 << 13,
        block_size: 4096,
        writer_slots: 1,
        ..Default::default()
    };
    let r = Ring::create(&path, &opts).unwrap();
    let old = Writer::attach(&r).unwrap();
    std::mem::forget(old.claim(KIND_USER, 8).unwrap()); // left BUSY
    old.detach();
    // The same (live) process attaches again into the only slot.
    let new = Writer::attach(&r).unwrap();
    assert_eq!(new.slot(), old.slot());
    new.write_bytes(KIND_USER, b"new").unwrap();
    let mut rd = reader(&r, Start::Oldest);
    let got = drain(&mut rd);
    assert_eq!(got[0], Got::Lost(LossReason::Abandoned, 1));
    assert_eq!(payloads(&got), vec![b"new".to_vec()]);
}

#[test]
fn a_full_writer_table_reaps_dead_owners_and_refuses_only_when_all_live() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let opts = CreateOptions {
        capacity: 1 << 13,
        block_size: 4096,
        writer_slots: 2,
        ..Default::default()
    };
    let r = Ring::create(&path, &opts).unwrap();
    let a = Writer::attach_as(
        &r,
        WriterIdentity {
            pid: DEAD_PID,
            start_time: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let b = Writer::attach(&r).unwrap();
    std::mem::forget(a);
    let c = Writer::attach_as(
        &r,
        WriterIdentity {
            pid: 1,
            start_time: 5,
            ..Default::default()
        },
    )
    .expect("reaps the dead slot");
    assert_eq!(r.stats().reaped, 1);
    assert_eq!(
        Writer::attach_as(
            &r,
            WriterIdentity {
                pid: 1,
                start_time: 6,
                ..Default::default()
            }
        )
        .err(),
        Some(format::AttachError::NoSlot)
    );
    drop((b, c));
}

#[test]
fn resuming_at_the_published_position_neither_repeats_nor_skips() {
    let dir = tempfile::tempdir().unwrap();
    let (r, path) = ring(&dir, 1 << 14, 4096, Mode::Discard);
    let w = Writer::attach(&r).unwrap();
    for i in 0..50u8 {
        w.write_bytes(KIND_USER, &[i]).unwrap();
    }
    let mut first = reader(&r, Start::Consumer);
    let mut seen = vec![];
    for _ in 0..20 {
        if let Item::Record(rec) = first.poll() {
            seen.push(rec.payload[0]);
        }
    }
    first.publish();
    drop(first);
    let again = Ring::open(&path).unwrap();
    let mut second = reader(&again, Start::Consumer);
    seen.extend(payloads(&drain(&mut second)).iter().map(|p| p[0]));
    assert_eq!(seen, (0..50).collect::<Vec<_>>());
}

#[test]
fn a_version_1_ring_is_still_read_and_written_without_in_flight_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (r, path) = ring(&dir, 1 << 14, 4096, Mode::Overwrite);
    assert!(r.geometry().announce);
    drop(r);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    // Version 1 records carry CLOCK_MONOTONIC (a realtime clock id needs version 3).
    let clock = std::mem::offset_of!(layout::FileHeader, clock_id);
    bytes[clock..clock + 4].copy_from_slice(&layout::CLOCK_MONOTONIC_ID.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let r = Ring::open(&path).unwrap();
    assert!(!r.geometry().announce, "version 1 writers never announce");
    assert_eq!(r.clock(), libc::CLOCK_MONOTONIC);
    let w = Writer::attach(&r).unwrap();
    for i in 0..1000u32 {
        w.write_bytes(KIND_USER, &i.to_le_bytes()).unwrap();
    }
    let got = drain(&mut reader(&r, Start::Oldest));
    let missed = overwritten_only(&got);
    assert_eq!(missed + payloads(&got).len() as u64, 1000);
}

#[test]
fn bad_files_get_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (r, path) = ring(&dir, 1 << 13, 4096, Mode::Discard);
    let good = std::fs::read(&path).unwrap();
    drop(r);
    let p = dir.path().join("bad");
    let open = |bytes: &[u8]| {
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, bytes).unwrap();
        Ring::open_read_only(&p).err()
    };
    assert_eq!(
        open(b"hello"),
        Some(RingError::Truncated {
            actual: 5,
            expected: 4096
        })
    );
    assert_eq!(open(&vec![0u8; 8192]), Some(RingError::NotARing));
    // A length that is not a multiple of 8 (found by the reader fuzz target: the mapping was
    // viewed whole before its header was checked).
    let mut v = good.clone();
    v.extend_from_slice(&[0; 3]);
    assert_eq!(open(&v), Some(RingError::BadHeader("file size")));
    let mut v = good.clone();
    v[8] = 9;
    assert_eq!(open(&v), Some(RingError::Version(9)));
    let mut v = good.clone();
    v[12..16].copy_from_slice(&0x0102_0304u32.to_be_bytes());
    assert_eq!(open(&v), Some(RingError::Endianness));
    assert!(matches!(
        open(&good[..good.len() - 4096]),
        Some(RingError::Truncated { .. })
    ));
    let mut v = good.clone();
    v[28..32].copy_from_slice(&3000u32.to_le_bytes()); // block size not a power of two
    assert_eq!(open(&v), Some(RingError::BadHeader("block size")));
    assert!(matches!(
        Ring::open_read_only(&dir.path().join("missing")),
        Err(RingError::Io { .. })
    ));
    let msg = open(&vec![0u8; 8192]).unwrap().to_string();
    assert!(msg.contains("not a substrate ring"), "{msg}");
}

#[test]
fn scribbled_control_words_and_data_never_hang_or_panic_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = ring(&dir, 1 << 13, 4096, Mode::Discard);
    let w = Writer::attach(&r).unwrap();
    for i in 0..100u32 {
        w.write_bytes(KIND_USER, &i.to_le_bytes()).ok();
    }
    let g = r.geometry();
    let mem = r.mem();
    let mut seed = 0x2545F4914F6CDD1Du64;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..200 {
        // Scribble a few words of data, sometimes the control words too.
        for _ in 0..8 {
            let off = g.data + (rnd() % g.capacity) / 8 * 8;
            mem.store(off, rnd(), std::sync::atomic::Ordering::Relaxed);
        }
        if round % 10 == 0 {
            mem.store(
                g.ctl(ctl::RESERVE),
                rnd() % (4 * g.capacity),
                std::sync::atomic::Ordering::Relaxed,
            );
            mem.store(
                g.ctl(ctl::CONSUMER),
                rnd(),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        let mut rd = reader(
            &r,
            if round % 2 == 0 {
                Start::Oldest
            } else {
                Start::Consumer
            },
        );
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 100_000, "reader did not settle");
            match rd.poll() {
                Item::Waiting(_) => break,
                Item::Record(rec) => assert!(rec.payload.len() < 4096),
                Item::Lost(_) => {}
            }
        }
        // Writers keep working (or drop) on a scribbled ring.
        let _ = w.write_bytes(KIND_USER, b"still");
    }
}

/// Forge one control word of a ring holding 50 records after a reader read them, then read on
/// from where that reader stopped and from the oldest record.
fn forge_and_read(mode: Mode, word: u64, value: impl Fn(u64, u64) -> u64) -> (Vec<Got>, Vec<Got>) {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = ring(&dir, 1 << 14, 4096, mode);
    let w = Writer::attach(&r).unwrap();
    for i in 0..50u32 {
        w.write_bytes(KIND_USER, &i.to_le_bytes()).unwrap();
    }
    let g = r.geometry();
    let mut first = reader(&r, Start::Oldest);
    assert_eq!(payloads(&drain(&mut first)).len(), 50);
    let at = first.position();
    let head = r.stats().reserve_pos;
    // The forged word, as a traced program that maps the ring could write it.
    r.mem().store(
        g.ctl(word),
        value(head, g.capacity),
        std::sync::atomic::Ordering::Relaxed,
    );
    let after = drain(&mut reader(&r, Start::At(at)));
    let whole = drain(&mut reader(&r, Start::Oldest));
    (after, whole)
}

#[test]
fn a_forged_reservation_ends_in_one_report_and_a_forged_tail_is_not_believed() {
    /// A name, and the forged value from (head, capacity).
    type Forgery = (&'static str, fn(u64, u64) -> u64);
    let forged_heads: [Forgery; 5] = [
        ("2^62 + 2^61", |_, _| 0x6000_0000_0000_0000),
        ("2^63", |_, _| 0x8000_0000_0000_0000),
        ("u64::MAX - 7", |_, _| u64::MAX - 7),
        ("ten laps on", |h, c| h + 10 * c),
        ("unaligned", |h, c| h + 3 * c + 3),
    ];
    for mode in [Mode::Discard, Mode::Overwrite] {
        for (name, f) in forged_heads {
            let (after, whole) = forge_and_read(mode, ctl::RESERVE, f);
            // Past the last real record: at most one report, and it says why.
            assert!(after.len() <= 1, "{mode:?} head {name}: {after:?}");
            for g in &after {
                assert!(
                    matches!(
                        g,
                        Got::Lost(LossReason::Forged | LossReason::Overwritten, 1)
                    ),
                    "{mode:?} head {name}: {after:?}"
                );
            }
            // From the oldest: bounded, whatever the reader can still make out.
            assert!(
                whole.len() <= 52,
                "{mode:?} head {name}: {} items",
                whole.len()
            );
        }
    }
    let forged_tails: [Forgery; 3] = [
        ("2^63", |_, _| 1 << 63),
        ("u64::MAX", |_, _| u64::MAX),
        ("ten laps past the head", |h, c| h + 10 * c),
    ];
    for (name, f) in forged_tails {
        let (after, whole) = forge_and_read(Mode::Overwrite, ctl::TAIL, f);
        // Nothing was reclaimed, so nothing is lost: the forged tail is not believed.
        assert_eq!(after, vec![], "tail {name}: nothing was past the reader");
        assert_eq!(payloads(&whole).len(), 50, "tail {name}: {whole:?}");
        assert_eq!(whole.len(), 50, "tail {name}: {whole:?}");
    }
}

#[test]
fn a_ring_of_another_user_or_behind_a_symlink_is_refused_for_writing() {
    let dir = tempfile::tempdir().unwrap();
    let (r, path) = ring(&dir, 1 << 13, 4096, Mode::Discard);
    drop(r);
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    assert!(
        matches!(Ring::open(&link), Err(RingError::Io { errno, .. }) if errno == libc::ELOOP),
        "O_NOFOLLOW"
    );
    // Creating over an existing file is refused too (O_EXCL), whatever it is.
    assert!(Ring::create(
        &path,
        &CreateOptions {
            capacity: 1 << 13,
            block_size: 4096,
            ..Default::default()
        }
    )
    .is_err());
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "foreign-owner case needs root to chown the ring; checked symlink and O_EXCL only"
        );
        return;
    }
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid path; giving the file to `nobody`.
    assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
    assert_eq!(
        Ring::open(&path).err(),
        Some(RingError::Foreign { owner: 65534 })
    );
    assert!(
        Ring::open_read_only(&path).is_ok(),
        "reading another user's ring (if permitted) is harmless"
    );
}

#[test]
fn ring_sizes_outside_the_limits_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let try_create = |capacity: u64, block_size: u64, writer_slots: u32| {
        let path = dir
            .path()
            .join(format!("r-{capacity}-{block_size}-{writer_slots}"));
        Ring::create(
            &path,
            &CreateOptions {
                capacity,
                block_size,
                writer_slots,
                ..Default::default()
            },
        )
        .map(|_| ())
        .map_err(|e| (e.to_string(), path.exists()))
    };
    // The smallest ring: two blocks of the smallest block size.
    assert_eq!(try_create(8192, 4096, 1), Ok(()));
    for (cap, block, slots, what) in [
        (4096, 4096, 8, "the minimum is 8K (two blocks of 4K)"),
        (3 << 20, 64 << 10, 8, "not a power of two (say 2M or 4M)"),
        (8 << 30, 64 << 10, 8, "the maximum is 4G"),
        (1 << 20, 3000, 8, "block size"),
        (1 << 20, 2 << 20, 8, "block size"),
        (1 << 20, 64 << 10, 0, "writer slots"),
        (1 << 20, 64 << 10, 70_000, "writer slots"),
    ] {
        let (msg, exists) = try_create(cap, block, slots).unwrap_err();
        assert!(msg.contains(what), "{cap}/{block}/{slots}: {msg}");
        assert!(!exists, "no file is left for a refused ring");
    }
}

#[test]
fn proc_liveness_takes_the_slot_start_time_as_an_upper_bound() {
    use format::protocol::Liveness;
    let me = std::process::id();
    let exact = format::sys::process_start_time(me).unwrap();
    let live = format::ProcLiveness;
    assert!(live.alive(me, exact), "the exact start time (older rings)");
    assert!(
        live.alive(me, format::sys::start_time_bound()),
        "a bound taken after the start"
    );
    assert!(live.alive(me, 0), "unknown");
    assert!(
        !live.alive(me, exact - 1),
        "a slot taken before this process started belongs to an earlier holder of the pid"
    );
    assert!(!live.alive(DEAD_PID, 0));
}

/// Blocks of the file at `path` actually allocated, in bytes.
fn allocated(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn a_deferred_allocation_is_sparse_until_allocated_and_works_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let opts = CreateOptions {
        capacity: 32 << 20,
        defer_allocation: true,
        ..Default::default()
    };
    let ring = Ring::create(&path, &opts).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(allocated(&path) < size / 4, "sparse at creation");
    // Writers and readers work before the space is allocated (pages come as touched).
    let w = Writer::attach(&ring).unwrap();
    let payload = [7u8; 100];
    for _ in 0..1000 {
        w.write_bytes(KIND_USER, &payload).unwrap();
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    assert!(Ring::allocate(&path, &stop).unwrap(), "all of it");
    assert!(allocated(&path) >= size, "allocated: {}", allocated(&path));
    drop(w);
    let got = drain(&mut reader(&ring, Start::Oldest));
    assert_eq!(
        payloads(&got),
        vec![payload.to_vec(); 1000],
        "the records written before the allocation are kept"
    );
}

#[test]
fn a_stopped_allocation_stops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let opts = CreateOptions {
        capacity: 64 << 20,
        defer_allocation: true,
        ..Default::default()
    };
    let _ring = Ring::create(&path, &opts).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(true);
    assert!(
        !Ring::allocate(&path, &stop).unwrap(),
        "stopped before the first step"
    );
    assert!(allocated(&path) < 8 << 20);
    // A missing file is an error, not a creation.
    assert!(Ring::allocate(&dir.path().join("none"), &stop).is_err());
}
