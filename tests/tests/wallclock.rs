//! `ts` and `ts_unix_ns` against the system's wall clock, end to end: a traced program reads
//! `CLOCK_REALTIME` right before and right after a hooked call (`tests/c/wallclock.c`), and the
//! decoded line of that call must lie between the two (1 ms slack). A suspend or a clock step
//! during a long session is simulated without touching the machine's clock: the ring's header
//! is given the calibration it would hold had it been created long ago with the two clocks in
//! another relation than now. New rings stamp `CLOCK_REALTIME`, so that changes nothing; a
//! version 2 ring is still stamped with `CLOCK_MONOTONIC` by the preload and decoded through its
//! calibration.

use std::mem::offset_of;
use std::path::{Path, PathBuf};
use std::process::Command;

use format::layout::{self, FileHeader};
use serde_json::Value;
use tests::harness::{compile, create_ring, record, tools};

const MS: i128 = 1_000_000;
const HOUR: i128 = 3_600_000 * MS;
const DAY: i128 = 24 * HOUR;

fn realtime() -> i128 {
    format::sys::clock_ns(libc::CLOCK_REALTIME) as i128
}

fn monotonic() -> i128 {
    format::sys::clock_ns(libc::CLOCK_MONOTONIC) as i128
}

fn wallclock(dir: &Path) -> PathBuf {
    compile(dir, "wallclock.c", "wallclock", &["-O2"])
}

/// One `open` the program made, with the clocks it read around it.
#[derive(Debug)]
struct Probe {
    i: u64,
    real: (i128, i128),
    mono: (i128, i128),
}

/// What the program printed: its probes, and the realtime clock at the start of `main` and
/// just before it returned.
struct Printed {
    probes: Vec<Probe>,
    main: i128,
    end: i128,
}

fn printed(stdout: &str) -> Printed {
    let mut p = Printed {
        probes: vec![],
        main: 0,
        end: 0,
    };
    for l in stdout.lines() {
        let w: Vec<&str> = l.split(' ').collect();
        let n = |k: usize| w[k].parse::<i128>().unwrap();
        match w[0] {
            "main" => p.main = n(1),
            "end" => p.end = n(1),
            "open" => p.probes.push(Probe {
                i: n(1) as u64,
                real: (n(2), n(3)),
                mono: (n(4), n(5)),
            }),
            _ => panic!("unexpected output line {l:?}"),
        }
    }
    assert!(p.main > 0 && p.end > 0, "program output: {stdout}");
    p
}

/// The decoded `file_open` line of probe `i`.
fn line_of(lines: &[Value], i: u64) -> &Value {
    let path = format!("/nonexistent/wallclock/{i}");
    let mut found = lines
        .iter()
        .filter(|l| l["event_type"] == "file_open" && l["path"] == path.as_str());
    let l = found.next().unwrap_or_else(|| panic!("no line for {path}"));
    assert!(found.next().is_none(), "{path} once");
    l
}

/// Days since the epoch of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// `ts` (`YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`) as ns since the epoch.
fn parse_ts(ts: &str) -> i128 {
    let b = ts.as_bytes();
    assert!(
        b.len() == 30 && b[4] == b'-' && b[10] == b'T' && b[19] == b'.' && b[29] == b'Z',
        "{ts}"
    );
    let num = |a: usize, z: usize| ts[a..z].parse::<i64>().unwrap();
    let days = days_from_civil(num(0, 4), num(5, 7), num(8, 10));
    let secs = days * 86_400 + num(11, 13) * 3600 + num(14, 16) * 60 + num(17, 19);
    secs as i128 * 1_000_000_000 + num(20, 29) as i128
}

/// `ts_unix_ns` of a line, after checking that `ts` names the same instant.
fn unix_ns(l: &Value) -> i128 {
    let unix = l["ts_unix_ns"].as_i64().unwrap_or_else(|| panic!("{l}")) as i128;
    assert_eq!(
        parse_ts(l["ts"].as_str().unwrap()),
        unix,
        "ts and ts_unix_ns: {l}"
    );
    unix
}

fn assert_within(what: &str, t: i128, (before, after): (i128, i128)) {
    assert!(
        before - MS <= t && t <= after + MS,
        "{what}: {t} is not within 1 ms of [{before}, {after}] (off by {} ms)",
        if t < before { t - before } else { t - after } / MS
    );
}

/// Patch header fields of the ring at `path` (not in use) in place.
fn patch(path: &Path, fields: &[(usize, &[u8])]) {
    let mut bytes = std::fs::read(path).unwrap();
    for (off, v) in fields {
        bytes[*off..*off + v.len()].copy_from_slice(v);
    }
    std::fs::write(path, &bytes).unwrap();
}

/// Make the ring at `path` what a version 2 substrate created: monotonic records.
fn make_monotonic_v2(path: &Path) {
    patch(
        path,
        &[
            (offset_of!(FileHeader, version), &2u32.to_le_bytes()),
            (
                offset_of!(FileHeader, clock_id),
                &layout::CLOCK_MONOTONIC_ID.to_le_bytes(),
            ),
        ],
    );
}

/// Give the ring at `path` the calibration it would hold had the wall clock run `drift` ahead
/// of the monotonic clock since its creation (a suspend of `s`: `drift = s`; the wall clock
/// stepped back by `b`: `drift = -b`), its monotonic age being half the machine's monotonic
/// time. Returns `(calib_realtime_ns, calib_monotonic_ns)`.
fn inject_calibration(path: &Path, drift: i128) -> (i128, i128) {
    let (real, mono) = (realtime(), monotonic());
    let calib_mono = mono - mono / 2;
    let calib_real = real - (mono / 2 + drift);
    patch(
        path,
        &[
            (
                offset_of!(FileHeader, created_unix_ns),
                &(calib_real as u64).to_le_bytes(),
            ),
            (
                offset_of!(FileHeader, calib_realtime_ns),
                &(calib_real as u64).to_le_bytes(),
            ),
            (
                offset_of!(FileHeader, calib_monotonic_ns),
                &(calib_mono as u64).to_le_bytes(),
            ),
        ],
    );
    (calib_real, calib_mono)
}

/// Run `bin args` traced into `ring` (no drain running) and return what it printed.
fn run_traced(ring: &Path, bin: &Path, args: &[&str]) -> Printed {
    let o = Command::new(bin)
        .args(args)
        .env("LD_PRELOAD", &tools().preload)
        .env("SUBSTRATE_RING", ring)
        .env_remove("SHIM_PARENT_SPAN")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    printed(&String::from_utf8_lossy(&o.stdout))
}

/// Decode `ring` offline; also the realtime clock just before and after.
fn decode(ring: &Path) -> (Vec<Value>, (i128, i128)) {
    let before = realtime();
    let o = Command::new(&tools().drain).arg(ring).output().unwrap();
    let after = realtime();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("malformed line {l:?}: {e}")))
        .collect();
    (lines, (before, after))
}

#[test]
fn every_line_carries_the_wall_clock_time_of_its_call() {
    let dir = tempfile::tempdir().unwrap();
    let bin = wallclock(dir.path());
    let bin = bin.to_str().unwrap();
    let t0 = realtime();
    let run = record(dir.path(), &[bin, "40", "500"]);
    let t1 = realtime();
    assert!(run.out.status.success(), "{:?}", run.out);
    let p = printed(&run.stdout());
    assert_eq!(p.probes.len(), 40);
    for pr in &p.probes {
        let l = line_of(&run.lines, pr.i);
        assert_within(&format!("open {}", pr.i), unix_ns(l), pr.real);
    }
    // The image's start is recorded by the constructor, before main; its exit after main.
    let start = run.starts_with_argv(&[bin, "40", "500"]);
    assert_eq!(start.len(), 1, "{}", run.dump());
    assert_within("process_start", unix_ns(start[0]), (t0, p.main));
    let exit = run.of("process_exit");
    assert_eq!(exit.len(), 1, "{}", run.dump());
    assert_within("process_exit", unix_ns(exit[0]), (p.end, t1));
    for l in &run.lines {
        assert_within("every line", unix_ns(l), (t0, t1));
    }
}

#[test]
fn a_long_lived_ring_keeps_true_time_after_a_suspend_or_a_clock_step() {
    let dir = tempfile::tempdir().unwrap();
    let bin = wallclock(dir.path());
    for (k, (what, drift)) in [
        ("suspended 3 days", 3 * DAY),
        ("clock stepped back 2 h", -2 * HOUR),
    ]
    .into_iter()
    .enumerate()
    {
        let ring = dir.path().join(format!("ring-{k}"));
        create_ring(&ring, &["--size", "1M"]);
        inject_calibration(&ring, drift);
        let p = run_traced(&ring, &bin, &["20", "200"]);
        let (lines, _) = decode(&ring);
        for pr in &p.probes {
            let l = line_of(&lines, pr.i);
            assert_within(&format!("{what}: open {}", pr.i), unix_ns(l), pr.real);
        }
    }
}

#[test]
fn an_old_monotonic_ring_is_still_stamped_monotonic_and_decoded_through_its_calibration() {
    let dir = tempfile::tempdir().unwrap();
    let bin = wallclock(dir.path());
    let ring = dir.path().join("ring");
    create_ring(&ring, &["--size", "1M"]);
    make_monotonic_v2(&ring);
    let drift = 7 * HOUR;
    let (calib_real, calib_mono) = inject_calibration(&ring, drift);
    let p = run_traced(&ring, &bin, &["20", "200"]);
    let (lines, _) = decode(&ring);
    for pr in &p.probes {
        let unix = unix_ns(line_of(&lines, pr.i));
        // The preload read the ring's clock id and stamped CLOCK_MONOTONIC: undoing the
        // calibration gives a monotonic time between the program's own two readings, exactly.
        let mono = unix - calib_real + calib_mono;
        assert!(
            pr.mono.0 <= mono && mono <= pr.mono.1,
            "open {}: monotonic {mono} not in {:?}",
            pr.i,
            pr.mono
        );
        // And the old ring is behind the wall clock by the drift, as it always was.
        assert_within(&format!("open {}", pr.i), unix + drift, pr.real);
    }
}

#[test]
fn lost_lines_carry_the_wall_clock_time_the_drain_wrote_them() {
    let dir = tempfile::tempdir().unwrap();
    let bin = wallclock(dir.path());
    let ring = dir.path().join("ring");
    // A small ring and no drain: most of the opens are dropped (ring full), and the decoder
    // reports them in a `lost` line stamped when it wrote it.
    create_ring(&ring, &["--size", "128K"]);
    inject_calibration(&ring, 3 * DAY);
    run_traced(&ring, &bin, &["3000"]);
    let (lines, window) = decode(&ring);
    let lost: Vec<&Value> = lines.iter().filter(|l| l["event_type"] == "lost").collect();
    assert!(
        lost.iter().any(|l| l["reason"] == "ring_full"),
        "records were dropped: {lost:?}"
    );
    for l in lost {
        assert_within("lost", unix_ns(l), window);
    }
}
