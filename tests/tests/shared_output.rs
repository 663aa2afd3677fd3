//! A trace file shared with other sessions, other drains and substrate itself: lines of other
//! rings are never taken for ours, nothing is cut or rewritten, lines never interleave, a
//! rotated file is followed to its new self; and the command-line fixes around `-o`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::harness::{compile, output_within, tools};

fn scenarios(dir: &Path) -> PathBuf {
    compile(dir, "scenarios.c", "scenarios", &["-O2"])
}

fn drain() -> Command {
    Command::new(&tools().drain)
}

fn create(ring: &Path) {
    let o = drain()
        .args(["create", "--size", "16M"])
        .arg(ring)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Run `numbered-opens n us` traced into `ring`.
fn writer(bin: &Path, ring: &Path, n: u32, us: u32) -> std::process::Child {
    Command::new(bin)
        .args(["numbered-opens", &n.to_string(), &us.to_string()])
        .env("LD_PRELOAD", &tools().preload)
        .env("SUBSTRATE_RING", ring)
        .spawn()
        .unwrap()
}

/// Every line of `files` parsed; panics on a line that does not parse.
fn lines(files: &[&Path]) -> Vec<Value> {
    let mut out = vec![];
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for l in text.lines() {
            out.push(
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: malformed line {l:?}: {e}", f.display())),
            );
        }
    }
    out
}

/// `/nonexistent/numbered/N` opens per ring id: N -> how many times.
fn numbered_by_ring(lines: &[Value]) -> HashMap<String, HashMap<u64, u32>> {
    let mut m: HashMap<String, HashMap<u64, u32>> = HashMap::new();
    for l in lines.iter().filter(|l| l["event_type"] == "file_open") {
        let Some(n) = l["path"]
            .as_str()
            .and_then(|p| p.strip_prefix("/nonexistent/numbered/"))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        let ring = l["ring_id"].as_str().unwrap().to_string();
        *m.entry(ring).or_default().entry(n).or_default() += 1;
    }
    m
}

fn exactly_once(counts: &HashMap<u64, u32>, n: u64, what: &str) {
    for i in 0..n {
        assert_eq!(counts.get(&i), Some(&1), "{what}: line {i}");
    }
    assert_eq!(counts.len() as u64, n, "{what}: unexpected lines");
}

#[test]
fn decoding_a_second_ring_into_a_shared_file_adds_all_its_lines_and_a_repeat_adds_none() {
    let dir = tempfile::tempdir().unwrap();
    let bin = scenarios(dir.path());
    let (a, b) = (dir.path().join("a.ring"), dir.path().join("b.ring"));
    let shared = dir.path().join("shared.jsonl");
    for (ring, n) in [(&a, 300), (&b, 200)] {
        create(ring);
        assert!(writer(&bin, ring, n, 0).wait().unwrap().success());
    }
    // Someone else's line first, then B, then A, then both again, with and without --follow.
    std::fs::write(&shared, "{\"event_type\":\"command_start\",\"pos\":5}\n").unwrap();
    for args in [
        vec!["decode", "-o"],
        vec!["decode", "-o"],
        vec!["decode", "--follow", "--until-done", "-o"],
    ] {
        for ring in [&b, &a] {
            let o = drain().args(&args).arg(&shared).arg(ring).output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
    }
    let all = lines(&[&shared]);
    assert_eq!(all[0]["event_type"], "command_start", "others' bytes kept");
    let by_ring = numbered_by_ring(&all);
    assert_eq!(by_ring.len(), 2);
    let mut counts: Vec<usize> = by_ring.values().map(|m| m.len()).collect();
    counts.sort();
    assert_eq!(counts, vec![200, 300]);
    for (ring, m) in &by_ring {
        exactly_once(m, m.len() as u64, ring);
    }
    // One process_start per ring: nothing of either was written twice.
    assert_eq!(
        all.iter()
            .filter(|l| l["event_type"] == "process_start")
            .count(),
        2
    );
}

#[test]
fn two_follows_and_a_third_appender_share_one_file_across_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let bin = scenarios(dir.path());
    let shared = dir.path().join("trace.jsonl");
    let rotated = dir.path().join("trace.jsonl.1");
    let rings: Vec<PathBuf> = ["a.ring", "b.ring"]
        .iter()
        .map(|n| dir.path().join(n))
        .collect();
    let n = 4000u32;
    let mut follows = vec![];
    let mut writers = vec![];
    for ring in &rings {
        create(ring);
        follows.push(
            drain()
                .args(["decode", "--follow", "--until-done", "-o"])
                .arg(&shared)
                .arg(ring)
                .spawn()
                .unwrap(),
        );
        writers.push(writer(&bin, ring, n, 200));
    }
    // A third appender: substrate writing its own lines, one write each, O_APPEND.
    let third = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            let mut k = 0u32;
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(1500) {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&shared)
                    .unwrap();
                let line = format!("{{\"event_type\":\"substrate_span\",\"k\":{k}}}\n");
                f.write_all(line.as_bytes()).unwrap();
                k += 1;
                std::thread::sleep(Duration::from_micros(300));
            }
            k
        })
    };
    // Rotate in the middle, as substrate does at 100 MB: rename the file away.
    std::thread::sleep(Duration::from_millis(400));
    std::fs::rename(&shared, &rotated).unwrap();
    for w in &mut writers {
        assert!(w.wait().unwrap().success());
    }
    let k = third.join().unwrap();
    for f in &mut follows {
        let t = Instant::now();
        while f.try_wait().unwrap().is_none() {
            assert!(t.elapsed() < Duration::from_secs(30), "follow did not end");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(f.wait().unwrap().success());
    }
    let all = lines(&[&rotated, &shared]);
    let before = lines(&[&rotated]).len();
    assert!(
        before > 0 && before < all.len(),
        "the rotation split the trace"
    );
    let mut theirs: Vec<u64> = all
        .iter()
        .filter(|l| l["event_type"] == "substrate_span")
        .map(|l| l["k"].as_u64().unwrap())
        .collect();
    theirs.sort();
    assert_eq!(
        theirs,
        (0..u64::from(k)).collect::<Vec<_>>(),
        "third appender's lines"
    );
    let by_ring = numbered_by_ring(&all);
    assert_eq!(by_ring.len(), 2, "both rings");
    for (ring, m) in &by_ring {
        exactly_once(m, n.into(), ring);
    }
}

#[test]
fn a_follow_killed_and_restarted_into_a_shared_file_neither_repeats_nor_skips() {
    let dir = tempfile::tempdir().unwrap();
    let bin = scenarios(dir.path());
    let ring = dir.path().join("a.ring");
    let shared = dir.path().join("trace.jsonl");
    create(&ring);
    let n = 6000u32;
    let mut w = writer(&bin, &ring, n, 100);
    for round in 0..3 {
        let mut f = drain()
            .args(["decode", "--follow", "-o"])
            .arg(&shared)
            .arg(&ring)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150));
        // Another session's line between our runs.
        let mut o = std::fs::OpenOptions::new()
            .append(true)
            .open(&shared)
            .unwrap();
        writeln!(o, "{{\"event_type\":\"other\",\"round\":{round}}}").unwrap();
        f.kill().unwrap();
        f.wait().unwrap();
    }
    assert!(w.wait().unwrap().success());
    let o = drain()
        .args(["decode", "-o"])
        .arg(&shared)
        .arg(&ring)
        .output()
        .unwrap();
    assert!(o.status.success());
    let all = lines(&[&shared]);
    assert_eq!(all.iter().filter(|l| l["event_type"] == "other").count(), 3);
    let by_ring = numbered_by_ring(&all);
    exactly_once(
        by_ring.values().next().unwrap(),
        n.into(),
        "restarted follow",
    );
}

#[test]
fn record_appends_and_a_command_that_cannot_start_leaves_the_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("trace.jsonl");
    std::fs::write(&out, "{\"mine\":1}\n").unwrap();
    let o = drain()
        .arg("record")
        .arg("-o")
        .arg(&out)
        .args(["--", "/nonexistent/program"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(127));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"mine\":1}\n");
    for _ in 0..2 {
        let o = drain()
            .arg("record")
            .arg("-o")
            .arg(&out)
            .args(["--", "true"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let all = lines(&[&out]);
    assert_eq!(all[0]["mine"], 1);
    assert_eq!(
        all.iter()
            .filter(|l| l["event_type"] == "process_start")
            .count(),
        2,
        "both runs appended"
    );
    // A missing output the failed command would have created is not left behind.
    let fresh = dir.path().join("fresh.jsonl");
    drain()
        .arg("record")
        .arg("-o")
        .arg(&fresh)
        .args(["--", "/nonexistent/program"])
        .output()
        .unwrap();
    assert!(!fresh.exists());
}

#[test]
fn dash_means_standard_output_and_a_closed_pipe_is_quiet_success() {
    let dir = tempfile::tempdir().unwrap();
    let o = drain()
        .current_dir(dir.path())
        .args([
            "record",
            "-o",
            "-",
            "--",
            "sh",
            "-c",
            "for i in 1 2 3; do /bin/true; done",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dir.path().join("-").exists(), "no file named -");
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.lines().count() >= 5, "{text}");
    for l in text.lines() {
        serde_json::from_str::<Value>(l).unwrap();
    }
    // `| head -1`, for record and decode: the reader goes away after one line.
    let ring = dir.path().join("r.ring");
    let mut record = drain();
    record
        .args(["record", "--keep-ring", "--ring"])
        .arg(&ring)
        .args(["-o", "-", "--", "sh", "-c"])
        .arg("i=0; while [ $i -lt 300 ]; do /bin/true; i=$((i+1)); done");
    closed_after_one_byte(&mut record, "record");
    closed_after_one_byte(drain().arg("decode").arg(&ring), "decode");
}

/// Run `cmd`, read one byte of its output and close the pipe: it must end with status 0 and
/// say nothing about it.
fn closed_after_one_byte(cmd: &mut Command, what: &str) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{what}: {:?}", o.status);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("error") && !err.contains("Broken pipe"),
        "{what}: {err}"
    );
}

#[test]
fn the_command_line_helps_where_a_new_user_trips() {
    // A flag record does not know is an error, not a command to run.
    let o = drain()
        .args(["record", "--bogus", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--bogus"));
    // A command after `--` may start with a dash; one without `--` keeps its own flags.
    let dir = tempfile::tempdir().unwrap();
    let o = drain()
        .current_dir(dir.path())
        .args(["record", "-o", "t.jsonl", "ls", "-la", "/"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A misspelt subcommand gets a suggestion, not "no such ring".
    let o = drain().arg("recrod").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("did you mean `record`"), "{err}");
    assert_eq!(err.lines().count(), 1);
    // Sizes: say the minimum, and what powers of two are near.
    let r = dir.path().join("x.ring");
    let o = drain()
        .args(["create", "--size", "4K"])
        .arg(&r)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("minimum is 128K"), "{err}");
    let o = drain()
        .args(["create", "--size", "3M"])
        .arg(&r)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("2M or 4M"), "{err}");
    // Modes are listed by --help and checked by clap.
    let o = drain().args(["create", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.contains("discard") && help.contains("overwrite"),
        "{help}"
    );
    let o = drain()
        .args(["create", "--mode", "bogus"])
        .arg(&r)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("possible values"));
    // The bare RING form and the decode subcommand agree.
    let ring = dir.path().join("d.ring");
    let o = drain()
        .args(["record", "--keep-ring", "-o", "-", "--ring"])
        .arg(&ring)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let bare = output_within(drain().arg(&ring), Duration::from_secs(20)).unwrap();
    let sub = output_within(drain().arg("decode").arg(&ring), Duration::from_secs(20)).unwrap();
    assert!(bare.status.success() && sub.status.success());
    assert_eq!(bare.stdout.len(), sub.stdout.len());
    assert!(!bare.stdout.is_empty());
}

#[test]
fn an_installed_or_copied_substrate_drain_finds_its_preload() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    let lib = dir.path().join("lib/substrate");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::copy(&tools().drain, bin.join("substrate-drain")).unwrap();
    std::fs::copy(&tools().preload, lib.join("libringbuf_preload.so")).unwrap();
    let installed = || {
        let mut c = Command::new(bin.join("substrate-drain"));
        c.env_remove("SUBSTRATE_PRELOAD").current_dir(dir.path());
        c
    };
    let o = installed().arg("--print-preload-path").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let found = String::from_utf8(o.stdout).unwrap();
    assert_eq!(
        Path::new(found.trim()),
        std::fs::canonicalize(lib.join("libringbuf_preload.so")).unwrap()
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("../lib/substrate"));
    let o = installed()
        .args(["record", "-o", "t.jsonl", "--", "/bin/true"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(lines(&[&dir.path().join("t.jsonl")])
        .iter()
        .any(|l| l["event_type"] == "process_start"));
    // Without it: the library embedded in the binary, written to the cache (tests/install.rs).
    std::fs::remove_file(lib.join("libringbuf_preload.so")).unwrap();
    let o = installed()
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .arg("--print-preload-path")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("embedded in substrate-drain"), "{err}");
    let found = String::from_utf8(o.stdout).unwrap();
    assert!(Path::new(found.trim()).starts_with(dir.path().join("cache/substrate")));
}
