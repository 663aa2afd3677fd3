//! Crash soak: rounds of a writer storm (several processes × threads, through the real preload
//! library) whose writers are SIGKILLed at random moments while a follower drains, in both ring
//! modes; then an offline decode of the same ring. Checked every round: no malformed line, the
//! follower and the offline decode never hang, each thread's records come out in order and at
//! most once, nothing is missing without a `lost` report, and in discard mode (where nothing is
//! overwritten) every thread's records form an unbroken sequence.
//!
//! CI runs a short version. The long one: `SOAK_ROUNDS=300 cargo test --release -p tests --test crash_soak`.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::harness::{compile, env_knob, stat_number, tools};

fn parse(text: &str, what: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: malformed line {l:?}: {e}"))
        })
        .collect()
}

/// (pid, thread) -> indices, in line order, of `/nonexistent/tT/I` opens.
fn sequences(lines: &[Value]) -> BTreeMap<(i64, u32), Vec<u64>> {
    let mut m: BTreeMap<(i64, u32), Vec<u64>> = BTreeMap::new();
    for l in lines.iter().filter(|l| l["event_type"] == "file_open") {
        let Some(rest) = l["path"]
            .as_str()
            .and_then(|p| p.strip_prefix("/nonexistent/t"))
        else {
            continue;
        };
        let (t, i) = rest.split_once('/').unwrap();
        m.entry((l["pid"].as_i64().unwrap(), t.parse().unwrap()))
            .or_default()
            .push(i.parse().unwrap());
    }
    m
}

fn lost(lines: &[Value]) -> u64 {
    lines
        .iter()
        .filter(|l| l["event_type"] == "lost")
        .map(|l| l["count"].as_u64().unwrap())
        .sum()
}

/// `from_start`: the reader saw the stream from its beginning (a follower), so each thread's
/// records start at 0; an offline decode after a follower sees what the ring still holds, a
/// suffix of each thread's records. `known_lost`: losses reported elsewhere (a reader started
/// late does not report again the drops that happened before it).
fn check(lines: &[Value], overwrite: bool, from_start: bool, known_lost: u64, what: &str) {
    let lost = lost(lines) + known_lost;
    for ((pid, t), seq) in sequences(lines) {
        assert!(
            seq.windows(2).all(|w| w[0] < w[1]),
            "{what}: thread {pid}/{t} out of order or repeated"
        );
        if !overwrite {
            // Nothing is reclaimed in discard mode: what a writer committed is unbroken.
            let first = if from_start { 0 } else { seq[0] };
            let gaps = seq[seq.len() - 1] + 1 - first - seq.len() as u64;
            let first_hole = seq.windows(2).find(|w| w[1] != w[0] + 1);
            assert!(
                gaps <= lost,
                "{what}: thread {pid}/{t} has {gaps} holes (first {first_hole:?}), only {lost} reported lost"
            );
        }
    }
}

#[test]
fn writers_killed_at_random_never_hang_the_drain_or_lose_records_silently() {
    let rounds: u32 = env_knob("SOAK_ROUNDS", 12);
    let t = tools();
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let bin = compile(dir.path(), "scenarios.c", "scenarios", &["-O2"]);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut killed = 0;
    let mut records = 0usize;
    let mut dropped = 0u64;
    for round in 0..rounds {
        let overwrite = round % 2 == 1;
        let ring = dir.path().join(format!("soak-{round}.ring"));
        let size = if overwrite { "256K" } else { "16M" };
        let mode = if overwrite { "overwrite" } else { "discard" };
        let o = Command::new(&t.drain)
            .args(["create", "--size", size, "--mode", mode])
            .arg(&ring)
            .output()
            .unwrap();
        assert!(o.status.success());
        let out = dir.path().join(format!("soak-{round}.jsonl"));
        let mut follower = Command::new(&t.drain)
            .arg("--follow")
            .arg("-o")
            .arg(&out)
            .arg(&ring)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut writers: Vec<_> = (0..3)
            .map(|_| {
                Command::new(&bin)
                    .args(["threaded-numbered", "3", "1000000"])
                    .env("LD_PRELOAD", &t.preload)
                    .env("SUBSTRATE_RING", &ring)
                    .spawn()
                    .unwrap()
            })
            .collect();
        for w in &mut writers {
            std::thread::sleep(Duration::from_millis(5 + next(60)));
            w.kill().unwrap();
            w.wait().unwrap();
            killed += 1;
        }
        // The follower catches up and is stopped; it must exit promptly.
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(follower.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            if follower.try_wait().unwrap().is_some() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "round {round}: follower hung"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let followed = parse(&std::fs::read_to_string(&out).unwrap(), "follower");
        check(
            &followed,
            overwrite,
            true,
            0,
            &format!("round {round} ({mode}) follower"),
        );
        // Offline decode of the same ring, with a time limit.
        let start = Instant::now();
        let o = Command::new(&t.drain).arg(&ring).output().unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "round {round}: offline decode hung"
        );
        assert!(
            o.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let offline = parse(&String::from_utf8_lossy(&o.stdout), "offline");
        // Drops that happened before this reader started are not reported again: allow what
        // `stat` counts.
        let dropped_total = stat_number(&ring, "dropped");
        check(
            &offline,
            overwrite,
            false,
            lost(&followed) + dropped_total,
            &format!("round {round} ({mode}) offline"),
        );
        records += followed.len();
        dropped += lost(&followed);
        std::fs::remove_file(&ring).unwrap();
        std::fs::remove_file(&out).unwrap();
    }
    eprintln!("crash soak: {rounds} rounds, {killed} writers SIGKILLed, {records} lines followed, {dropped} records reported lost or dropped");
}
