//! The recording path makes no system calls: under `strace -f -c`, 100,000 traced opens make
//! the same number of system calls as 100,000 plain ones, plus a small constant for the
//! library's start-up (mapping the ring, reading /proc). Also in overwrite mode with a ring so
//! small that the writer reclaims a block every few hundred records.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use tests::harness::{compile, stat_number, tools};

/// Syscall name -> calls, from `strace -c` output.
fn counts(path: &Path) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // "% time seconds usecs/call calls [errors] syscall"
        if cols.len() >= 5 && cols[0].parse::<f64>().is_ok() {
            let name = cols[cols.len() - 1].to_string();
            let calls: u64 = cols[3].parse().unwrap_or(0);
            m.insert(name, calls);
        }
    }
    m
}

#[test]
fn a_hundred_thousand_opens_add_no_syscalls() {
    let t = tools();
    let dir = tempfile::tempdir().unwrap();
    let bin = compile(dir.path(), "scenarios.c", "scenarios", &["-O2"]);
    let create = |ring: &Path, args: &[&str]| {
        let ok = Command::new(&t.drain)
            .arg("create")
            .args(args)
            .arg(ring)
            .output()
            .unwrap();
        assert!(ok.status.success());
    };
    let ring = dir.path().join("ring");
    create(&ring, &["--size", "64M"]);
    let small = dir.path().join("small-overwrite-ring");
    create(&small, &["--size", "128K", "--mode", "overwrite"]);
    let run = |out: &Path, traced: Option<&Path>| {
        let mut c = Command::new("strace");
        // cargo sets LD_LIBRARY_PATH: the loader would probe each of its directories for the
        // library's own dependencies, a start-up cost that is not the recording path's.
        c.env_remove("LD_LIBRARY_PATH");
        c.args(["-f", "-c", "-o"]).arg(out);
        if let Some(ring) = traced {
            // -E: the environment of the traced program only, not of strace itself.
            c.arg("-E")
                .arg(format!("LD_PRELOAD={}", t.preload.display()));
            c.arg("-E")
                .arg(format!("SUBSTRATE_RING={}", ring.display()));
        }
        let st = c
            .arg("--")
            .arg(&bin)
            .args(["opens", "100000"])
            .status()
            .expect("strace");
        assert!(st.success());
    };
    let plain = dir.path().join("plain");
    run(&plain, None);
    let p = counts(&plain);
    let total = |m: &BTreeMap<String, u64>| m.get("total").copied().unwrap_or(0);
    assert!(total(&p) >= 200_000, "plain run counted: {p:?}");
    for (name, ring) in [("discard", &ring), ("overwrite", &small)] {
        let traced = dir.path().join(name);
        run(&traced, Some(ring));
        let tr = counts(&traced);
        let extra = total(&tr) as i64 - total(&p) as i64;
        assert!((0..=80).contains(&extra), "{name}: the traced run made {extra} more syscalls than the plain one (expected a small start-up constant)\nplain: {p:?}\ntraced: {tr:?}");
        for call in ["openat", "close"] {
            let d = tr.get(call).copied().unwrap_or(0) as i64
                - p.get(call).copied().unwrap_or(0) as i64;
            assert!(d <= 8, "{name}: {call}: {d} more in the traced run");
        }
    }
    // The small ring was lapped many times over: reclaiming made no system call either.
    let overwritten = stat_number(&small, "overwritten");
    assert!(overwritten > 90_000, "overwritten {overwritten}");
    // And every open was recorded.
    let out = Command::new(&t.drain).arg(&ring).output().unwrap();
    let opens = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"event_type\":\"file_open\"") && l.contains("/etc/hostname"))
        .count();
    assert_eq!(opens, 100_000);
}
