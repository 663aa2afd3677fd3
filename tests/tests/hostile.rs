//! What a hostile or careless traced process, or an impatient user, does to the drain: a FIFO
//! for a ring, signals at every stage of `record`, a decode that ends before the writers are
//! done, rings left behind by a SIGKILLed `record`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::harness::{output_within, tools};

fn drain() -> Command {
    Command::new(&tools().drain)
}

fn wait_with_limit(child: &mut std::process::Child, limit: Duration, what: &str) -> i32 {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            use std::os::unix::process::ExitStatusExt;
            return st.code().unwrap_or(128 + st.signal().unwrap_or(0));
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// SIGKILL the process whose pid the file at `path` holds (a test's orphan).
fn kill_pid_in(path: &Path) {
    let pid: i32 = std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill(2) on a pid our test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Wait until `path` holds a line (the traced command has started).
fn wait_for_lines(path: &Path) {
    wait_for_text(path, "\n");
}

/// Wait until `path` holds `text`.
fn wait_for_text(path: &Path, text: &str) {
    let t = Instant::now();
    while !std::fs::read_to_string(path).is_ok_and(|s| s.contains(text)) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{text:?} did not appear in {}: {:?}",
            path.display(),
            std::fs::read_to_string(path)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_fifo_or_directory_is_refused_at_once_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("ring");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for args in [
        vec!["decode"],
        vec!["stat"],
        vec!["decode", "--follow"],
        vec![],
    ] {
        for target in [&fifo, &dir.path().to_path_buf()] {
            let o = output_within(drain().args(&args).arg(target), Duration::from_secs(10))
                .unwrap_or_else(|| panic!("{args:?} {}: blocked", target.display()));
            assert_eq!(o.status.code(), Some(2), "{args:?}");
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains("not a regular file"), "{err}");
        }
    }
}

#[test]
fn record_stops_on_a_signal_after_its_command_exited_and_names_what_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("r.ring");
    let trace = dir.path().join("t.jsonl");
    let mut rec = drain()
        .args(["record", "--wait-all", "--ring"])
        .arg(&ring)
        .arg("-o")
        .arg(&trace)
        .args(["--", "sh", "-c", "sleep 30 & echo $! > pid; exit 0"])
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command has exited and the sleep it left is traced.
    wait_for_text(&trace, "\"argv\":[\"sleep\"");
    signal(&rec, libc::SIGTERM);
    let code = wait_with_limit(&mut rec, Duration::from_secs(10), "record --wait-all");
    // The orphaned sleep holds record's stderr open: end it before reading to the end.
    kill_pid_in(&dir.path().join("pid"));
    let mut err = String::new();
    std::io::Read::read_to_string(rec.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(code, 0, "the command's status: {err}");
    assert!(!ring.exists(), "the ring is removed");
    assert!(
        err.contains("still running") && err.contains("sleep"),
        "the summary names the process: {err}"
    );
    let lines: Vec<Value> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|l| l["event_type"] == "process_start"));
}

#[test]
fn record_forwards_the_first_signal_and_a_second_forces_the_end() {
    let dir = tempfile::tempdir().unwrap();
    // The command dies of the forwarded signal: record ends with 128+N.
    let ring = dir.path().join("a.ring");
    let trace = dir.path().join("a.jsonl");
    let mut rec = drain()
        .args(["record", "--ring"])
        .arg(&ring)
        .arg("-o")
        .arg(&trace)
        .args(["--", "sleep", "30"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_lines(&trace);
    signal(&rec, libc::SIGINT);
    let code = wait_with_limit(&mut rec, Duration::from_secs(10), "record sleep");
    assert_eq!(code, 128 + libc::SIGINT);
    assert!(!ring.exists());

    // The command ignores the signal: the second one ends record anyway.
    let ring = dir.path().join("b.ring");
    let trace = dir.path().join("b.jsonl");
    let mut rec = drain()
        .args(["record", "--ring"])
        .arg(&ring)
        .arg("-o")
        .arg(&trace)
        .args([
            "--",
            "sh",
            "-c",
            "trap '' TERM; echo $$ > pid; exec sleep 30",
        ])
        .current_dir(dir.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The trap is set once the pid file is written.
    wait_for_text(&dir.path().join("pid"), "\n");
    signal(&rec, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        rec.try_wait().unwrap().is_none(),
        "one signal: still waiting"
    );
    signal(&rec, libc::SIGTERM);
    let code = wait_with_limit(&mut rec, Duration::from_secs(10), "record, second signal");
    kill_pid_in(&dir.path().join("pid"));
    assert_eq!(code, 128 + libc::SIGTERM);
    assert!(!ring.exists(), "the ring is removed");
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(text
        .lines()
        .all(|l| serde_json::from_str::<Value>(l).is_ok()));
}

#[test]
fn a_decode_that_stops_at_a_live_writers_unfinished_record_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.ring");
    let ring = format::Ring::create(&path, &format::CreateOptions::default()).unwrap();
    let w = format::Writer::attach(&ring).unwrap();
    for i in 0..5u32 {
        w.write_bytes(format::KIND_USER, &i.to_le_bytes()).unwrap();
    }
    // This process is alive and holds a record reserved, not committed.
    let open = w.claim(format::KIND_USER, 64).unwrap();
    std::mem::forget(open);
    let o = output_within(drain().arg("decode").arg(&path), Duration::from_secs(20)).unwrap();
    assert!(o.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lost: Vec<_> = lines.iter().filter(|l| l["event_type"] == "lost").collect();
    assert_eq!(lost.len(), 1, "{lines:?}");
    assert_eq!(lost[0]["reason"], "unfinished");
    assert!(lost[0]["count"].as_u64().unwrap() >= 1);
    assert!(lost[0]["bytes"].as_u64().unwrap() >= 64);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not finished"), "{err}");
}

#[test]
fn gc_removes_rings_of_sessions_that_are_over_and_keeps_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    // Made by a process that has exited: stale.
    let stale = dir.path().join("substrate-1-dead.ring");
    let o = drain().arg("create").arg(&stale).output().unwrap();
    assert!(o.status.success());
    // Made by this live process: kept.
    let live = dir.path().join("substrate-2-live.ring");
    let _ring = format::Ring::create(&live, &format::CreateOptions::default()).unwrap();
    // Not ours to judge: kept.
    let other = dir.path().join("notes.ring");
    std::fs::write(&other, b"x").unwrap();
    let o = drain()
        .args(["gc", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!stale.exists(), "stale ring removed");
    assert!(live.exists() && other.exists());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("substrate-1-dead.ring"), "{out}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 stale ring removed"));
}
