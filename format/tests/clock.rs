//! Record timestamps against the wall clock: new rings carry `CLOCK_REALTIME` and return it as
//! it is; version 1 and 2 rings carry `CLOCK_MONOTONIC` and go through their creation
//! calibration. A suspend or a clock step is simulated without touching the machine's clock,
//! by rewriting a ring's calibration to what it would hold had the ring been created days ago
//! with the clocks in another relation than now.

use std::path::{Path, PathBuf};
use std::time::Duration;

use format::layout::{self, FileHeader};
use format::records::{AnyEvent, EventHeader, ProcessExit};
use format::{CreateOptions, Item, Reader, ReaderOptions, Ring, RingError, Start, Writer};
use zerocopy::{FromBytes, IntoBytes};

const MS: i128 = 1_000_000;
const HOUR: i128 = 3_600_000 * MS;
const DAY: i128 = 24 * HOUR;

fn new_ring(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    let path = dir.path().join(name);
    let opts = CreateOptions {
        capacity: 1 << 16,
        block_size: 4096,
        writer_slots: 4,
        ..Default::default()
    };
    drop(Ring::create(&path, &opts).unwrap());
    path
}

/// Rewrite the header of the (unmapped) ring at `path`.
fn rewrite(path: &Path, f: impl FnOnce(&mut FileHeader)) {
    let mut bytes = std::fs::read(path).unwrap();
    let n = size_of::<FileHeader>();
    let mut h = FileHeader::read_from_bytes(&bytes[..n]).unwrap();
    f(&mut h);
    bytes[..n].copy_from_slice(h.as_bytes());
    std::fs::write(path, &bytes).unwrap();
}

/// Make the ring at `path` what a version 2 substrate created: monotonic records.
fn make_monotonic_v2(path: &Path) {
    rewrite(path, |h| {
        h.version = 2.into();
        h.clock_id = layout::CLOCK_MONOTONIC_ID.into();
    });
}

fn realtime() -> i128 {
    format::sys::clock_ns(libc::CLOCK_REALTIME) as i128
}

fn monotonic() -> i128 {
    format::sys::clock_ns(libc::CLOCK_MONOTONIC) as i128
}

/// Give the ring at `path` the calibration it would hold had the wall clock run `drift` ahead
/// of the monotonic clock since the ring's creation: a suspend of `s` is `drift = s` (wall time
/// went on, monotonic time stood still), a step of the wall clock back by `b` is `drift = -b`.
/// The ring's monotonic age is half the machine's monotonic time (so it is positive however
/// recently the machine booted); its wall-clock age is that plus `drift`.
fn inject_calibration(path: &Path, drift: i128) {
    let (real, mono) = (realtime(), monotonic());
    let mono_age = mono / 2;
    let calib_mono = mono - mono_age;
    let calib_real = real - (mono_age + drift);
    assert!(calib_real > 0);
    rewrite(path, |h| {
        h.created_unix_ns = (calib_real as u64).into();
        h.calib_realtime_ns = (calib_real as u64).into();
        h.calib_monotonic_ns = (calib_mono as u64).into();
    });
}

/// Write one event the way the preload does (its time from the ring's clock), read it back,
/// and return its wall-clock time with the realtime clock read just before and after.
fn stamp_and_read(ring: &Ring) -> (i128, i128, i128) {
    let w = Writer::attach(ring).unwrap();
    let before = realtime();
    let ev = ProcessExit {
        ev: EventHeader {
            ts_ns: format::sys::clock_ns(ring.clock()).into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let after = realtime();
    w.write_event(&ev, std::iter::empty()).unwrap();
    let mut r = Reader::new(
        ring,
        ReaderOptions {
            start: Start::Oldest,
            unwritten_grace: Duration::ZERO,
            ..Default::default()
        },
    );
    let ts = match r.poll() {
        Item::Record(rec) => AnyEvent::decode(rec.kind, rec.payload)
            .unwrap()
            .ev()
            .ts_ns
            .get(),
        other => panic!("expected the record, got {other:?}"),
    };
    w.detach();
    (before, ring.to_unix_ns(ts), after)
}

fn assert_within(what: &str, t: i128, before: i128, after: i128) {
    assert!(
        before - MS <= t && t <= after + MS,
        "{what}: {t} is not within 1 ms of [{before}, {after}] (off by {} ms)",
        if t < before { t - before } else { t - after } / MS
    );
}

#[test]
fn a_new_ring_records_realtime_and_returns_it_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let ring = Ring::open(&new_ring(&dir, "ring")).unwrap();
    assert_eq!(ring.header().version.get(), layout::VERSION);
    assert_eq!(ring.header().clock_id.get(), layout::CLOCK_REALTIME_ID);
    assert_eq!(ring.clock(), libc::CLOCK_REALTIME);
    // The calibration is still taken (informational), but never applied.
    let h = *ring.header();
    assert_ne!(h.calib_realtime_ns.get(), h.calib_monotonic_ns.get());
    for ts in [0u64, 1, 1_795_757_512_734_381_711, u64::MAX] {
        assert_eq!(ring.to_unix_ns(ts), ts as i128);
    }
    let (before, t, after) = stamp_and_read(&ring);
    assert_within("a record of a new ring", t, before, after);
    let before = realtime();
    let now = ring.now_unix_ns();
    assert_within("now_unix_ns", now, before, realtime());
}

#[test]
fn a_monotonic_ring_converts_through_its_calibration() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_ring(&dir, "ring");
    make_monotonic_v2(&path);
    let (r0, m0) = (1_795_757_512_000_000_000u64, 5_000_000_000_000u64);
    rewrite(&path, |h| {
        h.calib_realtime_ns = r0.into();
        h.calib_monotonic_ns = m0.into();
    });
    let ring = Ring::open(&path).unwrap();
    assert_eq!(ring.clock(), libc::CLOCK_MONOTONIC);
    assert_eq!(ring.to_unix_ns(m0), r0 as i128);
    assert_eq!(ring.to_unix_ns(m0 + 123), r0 as i128 + 123);
    assert_eq!(ring.to_unix_ns(m0 - 7), r0 as i128 - 7);
    assert_eq!(ring.to_unix_ns(0), r0 as i128 - m0 as i128);
    assert_eq!(
        ring.to_unix_ns(u64::MAX),
        u64::MAX as i128 - m0 as i128 + r0 as i128
    );
    // A version 1 ring is monotonic too.
    drop(ring);
    rewrite(&path, |h| h.version = 1.into());
    let ring = Ring::open(&path).unwrap();
    assert_eq!(ring.clock(), libc::CLOCK_MONOTONIC);
    assert_eq!(ring.to_unix_ns(m0 + 1), r0 as i128 + 1);
}

#[test]
fn after_a_suspend_or_a_clock_step_a_realtime_ring_still_stamps_true_wall_time() {
    let dir = tempfile::tempdir().unwrap();
    // (what, how far the wall clock ran ahead of the monotonic one since creation)
    let cases = [
        ("suspended 3 days", 3 * DAY),
        ("suspended 7 h", 7 * HOUR),
        ("clock stepped back 2 h", -2 * HOUR),
        ("clock stepped forward 30 min", HOUR / 2),
    ];
    for (i, (what, drift)) in cases.into_iter().enumerate() {
        // A new (realtime) ring: the stale calibration changes nothing.
        let path = new_ring(&dir, &format!("realtime-{i}"));
        inject_calibration(&path, drift);
        let ring = Ring::open(&path).unwrap();
        let (before, t, after) = stamp_and_read(&ring);
        assert_within(what, t, before, after);
        let before = realtime();
        let now = ring.now_unix_ns();
        assert_within(what, now, before, realtime());

        // An old (monotonic) ring still decodes, through its calibration: behind the wall
        // clock by exactly the drift, as it always was, and why new rings are realtime.
        let path = new_ring(&dir, &format!("monotonic-{i}"));
        make_monotonic_v2(&path);
        inject_calibration(&path, drift);
        let ring = Ring::open(&path).unwrap();
        assert_eq!(ring.clock(), libc::CLOCK_MONOTONIC);
        let (before, t, after) = stamp_and_read(&ring);
        assert_within(what, t + drift, before, after);
        assert!(
            t < before - MS || t > after + MS,
            "{what}: the old ring is off"
        );
        let before = realtime();
        let now = ring.now_unix_ns();
        assert_within(what, now + drift, before, realtime());
    }
}

#[test]
fn an_unknown_or_impossible_clock_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_ring(&dir, "ring");
    rewrite(&path, |h| h.clock_id = 99.into());
    let err = Ring::open_read_only(&path).err().unwrap();
    assert_eq!(err, RingError::Clock(99));
    assert!(err.to_string().contains("clock id 99"), "{err}");
    rewrite(&path, |h| h.clock_id = 0.into());
    assert_eq!(Ring::open_read_only(&path).err(), Some(RingError::Clock(0)));

    // Readers of versions 1 and 2 take every timestamp for a monotonic one: a ring that says
    // realtime under those versions was not made by any writer.
    for v in [1u32, 2] {
        rewrite(&path, |h| {
            h.version = v.into();
            h.clock_id = layout::CLOCK_REALTIME_ID.into();
        });
        assert!(matches!(
            Ring::open_read_only(&path).err(),
            Some(RingError::BadHeader(_))
        ));
    }
    // A version 3 ring may still name the monotonic clock.
    rewrite(&path, |h| {
        h.version = 3.into();
        h.clock_id = layout::CLOCK_MONOTONIC_ID.into();
    });
    assert_eq!(
        Ring::open_read_only(&path).unwrap().clock(),
        libc::CLOCK_MONOTONIC
    );
    // A reader of a newer format than this build refuses by version, with one clear line.
    rewrite(&path, |h| h.version = (layout::VERSION + 1).into());
    let err = Ring::open_read_only(&path).err().unwrap();
    assert_eq!(err, RingError::Version(layout::VERSION + 1));
}
