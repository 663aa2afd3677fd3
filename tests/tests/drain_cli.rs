//! `substrate-drain` through the real binary: offline decoding of rings whose writers were
//! SIGKILLed, a follow killed and restarted (nothing duplicated or skipped), bad input,
//! exit-status and signal forwarding of `record`, redaction, `stat`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::harness::{
    compile, create_ring, forge_control_word, output_within, record, record_with, tools, Run,
};

fn scenarios(dir: &Path) -> PathBuf {
    compile(dir, "scenarios.c", "scenarios", &["-O2"])
}

/// A temporary directory with the scenario program compiled in it and a new ring, `ring`,
/// created with `create_args`.
fn fixture(create_args: &[&str]) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bin = scenarios(dir.path());
    let ring = dir.path().join("ring");
    create_ring(&ring, create_args);
    (dir, bin, ring)
}

fn traced(ring: &Path, bin: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .env("LD_PRELOAD", &tools().preload)
        .env("SUBSTRATE_RING", ring)
        .env_remove("SHIM_PARENT_SPAN")
        .env_remove("SHIM_SESSION_ID")
        .env_remove("SUBSTRATE_PARENT_IMAGE");
    c
}

fn parse(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("malformed line {l:?}: {e}")))
        .collect()
}

fn decode(ring: &Path) -> (std::process::Output, Vec<Value>) {
    let o = Command::new(&tools().drain).arg(ring).output().unwrap();
    let lines = parse(&String::from_utf8_lossy(&o.stdout));
    (o, lines)
}

/// How many `object_load` records the scenario program `bin` writes when it does nothing (the
/// objects the loader maps before `main`), from a run into a ring of its own.
fn objects_at_start(bin: &Path) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("ring");
    create_ring(&ring, &[]);
    assert!(traced(&ring, bin, &["nothing"]).status().unwrap().success());
    let (_, lines) = decode(&ring);
    lines
        .iter()
        .filter(|l| l["event_type"] == "object_load")
        .count() as u64
}

/// Indices of `/nonexistent/numbered/N` opens in `lines`.
fn numbered(lines: &[Value]) -> Vec<u64> {
    lines
        .iter()
        .filter(|l| l["event_type"] == "file_open")
        .filter_map(|l| {
            l["path"]
                .as_str()?
                .strip_prefix("/nonexistent/numbered/")?
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn a_ring_whose_writers_were_killed_decodes_every_committed_record_once() {
    let (_dir, bin, ring) = fixture(&["--size", "64M"]);
    let mut kids: Vec<_> = (0..4)
        .map(|_| {
            traced(&ring, &bin, &["numbered-opens", "10000000", "0"])
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(150));
    for k in &mut kids {
        k.kill().unwrap();
        k.wait().unwrap();
    }
    let (o, lines) = decode(&ring);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let starts = lines
        .iter()
        .filter(|l| l["event_type"] == "process_start")
        .count();
    assert_eq!(starts, 4);
    // Each writer's opens come out in order, each once, with no gap: a killed writer loses at
    // most the record it was writing (reported as lost), never one in the middle.
    for pid in lines
        .iter()
        .filter(|l| l["event_type"] == "process_start")
        .map(|l| l["pid"].clone())
    {
        let mine: Vec<Value> = lines.iter().filter(|l| l["pid"] == pid).cloned().collect();
        let idx = numbered(&mine);
        assert!(idx.len() > 10, "writer {pid} wrote");
        assert_eq!(
            idx,
            (0..idx.len() as u64).collect::<Vec<_>>(),
            "writer {pid}: in order, once, no gap"
        );
    }
    let pos: Vec<u64> = lines
        .iter()
        .filter(|l| l["event_type"] != "lost")
        .map(|l| l["pos"].as_u64().unwrap())
        .collect();
    assert_eq!(
        pos.len(),
        pos.iter().collect::<BTreeSet<_>>().len(),
        "no record twice"
    );
    let lost: u64 = lines
        .iter()
        .filter(|l| l["event_type"] == "lost")
        .map(|l| l["count"].as_u64().unwrap())
        .sum();
    assert!(lost <= 4, "at most one record per killed writer: {lost}");
}

#[test]
fn a_follow_killed_and_restarted_neither_repeats_nor_skips() {
    let (dir, bin, ring) = fixture(&["--size", "1M"]);
    let out = dir.path().join("trace.jsonl");
    let n = 3000;
    let mut writer = traced(&ring, &bin, &["numbered-opens", &n.to_string(), "500"])
        .spawn()
        .unwrap();
    let follow = || {
        Command::new(&tools().drain)
            .arg("--follow")
            .arg("--until-done")
            .arg("-o")
            .arg(&out)
            .arg(&ring)
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    for _ in 0..3 {
        let mut d = follow();
        std::thread::sleep(Duration::from_millis(300));
        d.kill().unwrap(); // SIGKILL: no chance to flush or publish
        d.wait().unwrap();
    }
    let mut d = follow();
    writer.wait().unwrap();
    let t = Instant::now();
    let st = d.wait().unwrap();
    assert!(st.success());
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "--until-done stopped once the writer was gone"
    );
    // A SIGKILL can end a write(2) of several pages early (the kernel checks for a fatal
    // signal between pages), leaving a line cut short. The drain ends such a line with a
    // newline and leaves it (SCHEMA.md, "A shared trace file"); the restarted drain writes
    // the whole line again. So at most one cut line per kill, each the start of a whole one.
    let text = std::fs::read_to_string(&out).unwrap();
    let (whole, cut): (Vec<&str>, Vec<&str>) = text
        .lines()
        .partition(|l| serde_json::from_str::<Value>(l).is_ok());
    assert!(cut.len() <= 3, "at most one line cut per kill: {cut:?}");
    for c in &cut {
        assert!(
            whole.iter().any(|l| l.len() > c.len() && l.starts_with(c)),
            "a cut line is the start of a line written whole: {c:?}"
        );
    }
    let lines = parse(&whole.join("\n"));
    let idx = numbered(&lines);
    assert_eq!(
        idx,
        (0..n).collect::<Vec<_>>(),
        "every open exactly once, in order, across 3 drain kills"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["event_type"] == "process_start")
            .count(),
        1
    );
    assert_eq!(
        lines.iter().filter(|l| l["event_type"] == "lost").count(),
        0
    );
}

fn expect_clear_error(args: &[&Path], what: &str) {
    let o = Command::new(&tools().drain).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{what}: exit status 2, stderr: {err}"
    );
    assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
    assert!(err.starts_with("substrate-drain: "), "{what}: {err}");
    assert!(o.stdout.is_empty(), "{what}: no output");
}

#[test]
fn bad_input_gets_one_clear_line_and_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    expect_clear_error(&[&d.join("missing")], "missing file");
    std::fs::write(
        d.join("random"),
        (0..100_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    expect_clear_error(&[&d.join("random")], "random bytes");
    std::fs::write(d.join("empty"), b"").unwrap();
    expect_clear_error(&[&d.join("empty")], "empty file");
    expect_clear_error(&[d], "a directory");

    let ring = d.join("ring");
    create_ring(&ring, &["--size", "128K"]);
    let bytes = std::fs::read(&ring).unwrap();
    std::fs::write(d.join("truncated"), &bytes[..bytes.len() / 2]).unwrap();
    expect_clear_error(&[&d.join("truncated")], "truncated ring");
    let mut v2 = bytes.clone();
    v2[8] = 99; // version field
    std::fs::write(d.join("version"), &v2).unwrap();
    expect_clear_error(&[&d.join("version")], "another version");
    let random = d.join("random");
    expect_clear_error(&[Path::new("stat"), &random], "stat");
    expect_clear_error(&[Path::new("--follow"), &random], "follow");
}

#[test]
fn a_scribbled_ring_yields_loss_reports_never_a_panic() {
    let (_dir, bin, ring) = fixture(&["--size", "128K"]);
    let st = traced(&ring, &bin, &["numbered-opens", "500", "0"])
        .status()
        .unwrap();
    assert!(st.success());
    let clean = decode(&ring).1.len();
    let mut bytes = std::fs::read(&ring).unwrap();
    let data = bytes.len() - (128 << 10);
    let mut x = 12345u64;
    for _ in 0..200 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let at = data + (x >> 33) as usize % 20_000;
        bytes[at] = (x >> 13) as u8;
    }
    std::fs::write(&ring, &bytes).unwrap();
    let (o, lines) = decode(&ring);
    assert!(
        o.status.success(),
        "exit 0 with loss reports: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        lines.iter().any(|l| l["event_type"] == "lost"),
        "the damage is reported"
    );
    assert!(lines.len() < clean + 200);
}

#[test]
fn a_forged_reservation_or_tail_ends_decoding_with_one_report_not_unbounded_output() {
    use format::layout::ctl;
    /// Ring mode, what is forged, the control word, its value from (head, capacity).
    type Forgery = (&'static str, &'static str, u64, fn(u64, u64) -> u64);
    let cases: [Forgery; 5] = [
        ("discard", "reserve 2^63", ctl::RESERVE, |_, _| 1 << 63),
        ("discard", "reserve u64::MAX-7", ctl::RESERVE, |_, _| {
            u64::MAX - 7
        }),
        ("discard", "reserve 0x6000...", ctl::RESERVE, |_, _| {
            0x6000 << 48
        }),
        ("overwrite", "tail 2^63", ctl::TAIL, |_, _| 1 << 63),
        ("overwrite", "tail ten laps on", ctl::TAIL, |h, c| {
            h + 10 * c
        }),
    ];
    for (mode, what, word, value) in cases {
        let (_dir, bin, ring) = fixture(&["--size", "128K", "--mode", mode]);
        let st = traced(&ring, &bin, &["numbered-opens", "200", "0"])
            .status()
            .unwrap();
        assert!(st.success());
        let clean = decode(&ring).1;
        forge_control_word(&ring, word, value);
        let o = output_within(
            Command::new(&tools().drain).arg(&ring),
            Duration::from_secs(20),
        )
        .unwrap_or_else(|| panic!("{mode} {what}: the decode did not end"));
        assert!(o.status.success(), "{mode} {what}: {o:?}");
        let lines = parse(&String::from_utf8_lossy(&o.stdout));
        let lost: Vec<_> = lines.iter().filter(|l| l["event_type"] == "lost").collect();
        assert!(lost.len() <= 1, "{mode} {what}: {lost:?}");
        assert!(lines.len() <= clean.len() + 1, "{mode} {what}");
        if word == ctl::TAIL {
            // Nothing was reclaimed: a tail no writer could have moved is not believed.
            assert_eq!(numbered(&lines), numbered(&clean), "{mode} {what}");
            assert!(lost.is_empty(), "{mode} {what}: {lost:?}");
        } else {
            assert_eq!(lost[0]["reason"], "forged", "{mode} {what}");
        }
    }
}

#[test]
fn record_passes_the_exit_status_through_and_forwards_signals() {
    let dir = tempfile::tempdir().unwrap();
    let r = record(dir.path(), &["sh", "-c", "exit 3"]);
    assert_eq!(r.out.status.code(), Some(3));
    let r = record(dir.path(), &["sh", "-c", "kill -KILL $$"]);
    assert_eq!(r.out.status.code(), Some(128 + 9));
    let summary = String::from_utf8_lossy(&r.out.stderr);
    assert!(
        summary.contains("events") && summary.contains("processes"),
        "{summary}"
    );

    let t = tools();
    let trace = dir.path().join("sig.jsonl");
    let mut child = Command::new(&t.drain)
        .args(["record", "-o"])
        .arg(&trace)
        .arg("--preload")
        .arg(&t.preload)
        .args([
            "--",
            "sh",
            "-c",
            "trap 'echo got TERM; exit 9' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    // SAFETY: signalling the drain we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line, "got TERM\n", "SIGTERM reached the command");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(9), "the command's exit status");
    let lines = parse(&std::fs::read_to_string(&trace).unwrap());
    let exit = lines
        .iter()
        .rev()
        .find(|l| l["event_type"] == "process_exit")
        .unwrap();
    assert_eq!(exit["exit_code"], 9);
}

#[test]
fn secrets_in_argv_are_redacted_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = [
        "sh",
        "-c",
        "/bin/echo --token abc --password=hunter2 AWS_SECRET_ACCESS_KEY=xyz keep",
    ];
    let r = record(dir.path(), &cmd);
    let e = r.of("exec");
    assert_eq!(
        Run::argv(e[0]),
        [
            "/bin/echo",
            "--token",
            "[REDACTED]",
            "--password=[REDACTED]",
            "AWS_SECRET_ACCESS_KEY=[REDACTED]",
            "keep"
        ]
    );
    assert_eq!(e[0]["redacted"], true);
    let text: String = r.lines.iter().map(|l| l.to_string()).collect();
    assert!(
        !text.contains("hunter2") && !text.contains("xyz ") && !text.contains("\"abc\""),
        "no secret anywhere"
    );
    assert_eq!(
        r.stdout(),
        "--token abc --password=hunter2 AWS_SECRET_ACCESS_KEY=xyz keep\n",
        "the program itself is untouched"
    );
    let r = record_with(dir.path(), &["--no-redact"], &cmd, &[]);
    assert_eq!(Run::argv(r.of("exec")[0])[2], "abc");
}

#[test]
fn a_lapped_overwrite_ring_decodes_with_an_exact_count_of_what_was_overwritten() {
    let (_dir, bin, ring) = fixture(&["--size", "128K", "--mode", "overwrite"]);
    let n = 5000; // about 100 bytes a record: several laps of the ring
    assert!(
        traced(&ring, &bin, &["numbered-opens", &n.to_string(), "0"])
            .status()
            .unwrap()
            .success()
    );
    let (o, lines) = decode(&ring);
    assert!(o.status.success());
    // First what was reclaimed before anyone read it, counted exactly from the block
    // descriptors; then the newest records, in order, to the last.
    let first = &lines[0];
    assert_eq!(first["event_type"], "lost", "{first}");
    assert_eq!(first["reason"], "overwritten");
    assert_eq!(first["exact"], true);
    let overwritten: u64 = lines
        .iter()
        .filter(|l| l["event_type"] == "lost")
        .map(|l| {
            assert_eq!(l["reason"], "overwritten", "{l}");
            l["count"].as_u64().unwrap()
        })
        .sum();
    let opens = numbered(&lines);
    assert_eq!(*opens.last().unwrap(), n - 1);
    assert!(opens.windows(2).all(|w| w[1] == w[0] + 1), "consecutive");
    let records = lines.iter().filter(|l| l["event_type"] != "lost").count() as u64;
    // process_start, its objects, n opens, process_exit: each either decoded or counted
    // overwritten.
    assert_eq!(records + overwritten, n + 2 + objects_at_start(&bin));
}

#[test]
fn a_follow_resumed_after_the_ring_lapped_reports_exactly_what_it_missed() {
    let (dir, bin, ring) = fixture(&["--size", "128K", "--mode", "overwrite"]);
    let out = dir.path().join("trace.jsonl");
    let follow = || {
        let st = Command::new(&tools().drain)
            .args(["--follow", "--until-done", "-o"])
            .arg(&out)
            .arg(&ring)
            .status()
            .unwrap();
        assert!(st.success());
    };
    let run = |n: u64| {
        assert!(
            traced(&ring, &bin, &["numbered-opens", &n.to_string(), "0"])
                .status()
                .unwrap()
                .success()
        );
    };
    run(100); // read whole by the first follow, which publishes its position
    follow();
    let first = parse(&std::fs::read_to_string(&out).unwrap()).len();
    run(5000); // several laps while no drain runs
    follow(); // resumes: what was reclaimed meanwhile comes first, counted
    let lines = parse(&std::fs::read_to_string(&out).unwrap());
    let resumed = &lines[first..];
    assert_eq!(resumed[0]["event_type"], "lost", "{}", resumed[0]);
    assert_eq!(resumed[0]["reason"], "overwritten");
    assert_eq!(resumed[0]["exact"], true);
    let lost: u64 = resumed
        .iter()
        .filter(|l| l["event_type"] == "lost")
        .map(|l| l["count"].as_u64().unwrap())
        .sum();
    let records = resumed.iter().filter(|l| l["event_type"] != "lost").count() as u64;
    // The second process: process_start, its objects, 5000 opens, process_exit.
    assert_eq!(records + lost, 5002 + objects_at_start(&bin));
    assert_eq!(*numbered(resumed).last().unwrap(), 4999);
}

#[test]
fn stat_shows_header_counters_and_writers() {
    let (_dir, bin, ring) = fixture(&[
        "--size",
        "1M",
        "--mode",
        "overwrite",
        "--session-id",
        "0190f1c2-7a3b-7def-8123-456789abcdef",
    ]);
    assert!(traced(&ring, &bin, &["numbered-opens", "10", "0"])
        .status()
        .unwrap()
        .success());
    let o = Command::new(&tools().drain)
        .arg("stat")
        .arg(&ring)
        .output()
        .unwrap();
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    for want in [
        "mode        Overwrite",
        "session     0190f1c2-7a3b-7def-8123-456789abcdef",
        "capacity    1048576 bytes",
        "writers     1 attached, 1 detached",
    ] {
        assert!(s.contains(want), "stat lacks {want:?}:\n{s}");
    }
    let (_, lines) = decode(&ring);
    assert!(lines
        .iter()
        .all(|l| l["session_id"] == "0190f1c2-7a3b-7def-8123-456789abcdef"));
}

#[test]
fn non_utf8_arguments_are_escaped_losslessly() {
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::ffi::OsStrExt;
    let arg = std::ffi::OsStr::from_bytes(b"caf\xe9\\n");
    let t = tools();
    let trace = dir.path().join("t.jsonl");
    let o = Command::new(&t.drain)
        .args(["record", "-o"])
        .arg(&trace)
        .arg("--preload")
        .arg(&t.preload)
        .args(["--", "/bin/echo"])
        .arg(arg)
        .output()
        .unwrap();
    assert!(o.status.success());
    let lines = parse(&std::fs::read_to_string(&trace).unwrap());
    let s = &lines[0];
    assert_eq!(s["argv"][1], "caf\\xe9\\\\n");
    assert_eq!(s["escaped"], serde_json::json!(["argv[1]"]));
}

#[test]
fn a_ring_that_cannot_be_allocated_is_a_clear_error_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("big.ring");
    // A file size limit of 1 MiB makes allocating a 64 MiB ring fail as a full disk would
    // (posix_fallocate fails; SIGXFSZ is ignored so the error comes back as EFBIG).
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -f 1024; trap '' XFSZ; exec {} create --size 64M {}",
            tools().drain.display(),
            ring.display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("allocate ring file"), "{err}");
    assert!(!ring.exists(), "the half-made ring is removed");
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -f 1024; trap '' XFSZ; exec {} record --ring {} -o {} -- true",
            tools().drain.display(),
            ring.display(),
            dir.path().join("t.jsonl").display()
        ))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn the_preload_is_inert_without_a_usable_ring() {
    let dir = tempfile::tempdir().unwrap();
    let bin = scenarios(dir.path());
    let junk = dir.path().join("junk");
    std::fs::write(&junk, vec![7u8; 65536]).unwrap();
    let plain = Command::new(&bin).arg("errno").output().unwrap();
    for ring in [
        Path::new("/nonexistent/ring"),
        junk.as_path(),
        Path::new(""),
        dir.path(),
    ] {
        let o = traced(ring, &bin, &["errno"]).output().unwrap();
        assert_eq!(o.status.code(), Some(0));
        assert_eq!(
            o.stdout, plain.stdout,
            "ring {ring:?}: the program behaves as without the library"
        );
        assert!(o.stderr.is_empty(), "ring {ring:?}: nothing printed");
    }
    assert_eq!(
        std::fs::read(&junk).unwrap(),
        vec![7u8; 65536],
        "a file that is not a ring is never written"
    );
}

/// A version 2 ring (header version 2, monotonic clock) holding `process_start` records in the
/// layout the preload of versions 1 and 2 wrote (`ProcessStartV2`: parsed ids in the fixed
/// part, no `SHIM_*` var fields), decoded by the binary: the ids come out as that version's
/// drain rendered them, and `parent_image` links a child to the image that started it.
#[test]
fn a_version_2_ring_decodes_its_process_start_records() {
    use format::ids;
    use format::records::{open_op, start_flags, EventHeader, FileOpen, ProcessStartV2};
    use format::{layout, CreateOptions, Ring, Writer};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.ring");
    let ring_session = [0x11; 16];
    let opts = CreateOptions {
        capacity: 1 << 16,
        block_size: 4096,
        session_id: ring_session,
        ..Default::default()
    };
    drop(Ring::create(&path, &opts).unwrap());
    // Make it the version 2 ring an older `create` made: version 2, monotonic clock.
    let mut bytes = std::fs::read(&path).unwrap();
    let version = std::mem::offset_of!(layout::FileHeader, version);
    bytes[version..version + 4].copy_from_slice(&2u32.to_le_bytes());
    let clock = std::mem::offset_of!(layout::FileHeader, clock_id);
    bytes[clock..clock + 4].copy_from_slice(&layout::CLOCK_MONOTONIC_ID.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();

    let (root, child, stray) = ([0xa1; 16], [0xb2; 16], [0xc3; 16]);
    let (caller_span, session) = ([0x5e; 16], [0x77; 16]);
    let ring = Ring::open(&path).unwrap();
    assert_eq!(ring.header().version.get(), 2);
    let w = Writer::attach(&ring).unwrap();
    let header = |span: [u8; 16], pid: u32| EventHeader {
        ts_ns: 1_000.into(),
        span,
        pid: pid.into(),
        tid: pid.into(),
        ..Default::default()
    };
    let start = |span, pid, parent_span, session_id, flags: u32| ProcessStartV2 {
        ev: header(span, pid),
        ppid: 1.into(),
        start_flags: flags.into(),
        parent_span,
        session_id,
        start_time: 7.into(),
    };
    let vars = |v: &[&'static str]| v.iter().map(|s| s.as_bytes()).collect::<Vec<_>>();
    // The root, started by substrate: its SHIM_PARENT_SPAN named substrate's span.
    let v = vars(&["/bin/sh", "/work", "sh", "-c", "cat x"]);
    let ev = start(root, 500, caller_span, session, start_flags::EXEC);
    w.write_event(&ev, v.iter().copied()).unwrap();
    // Its forked child: the old preload set the child's parent span to the root's span.
    let v = vars(&["/bin/sh", "/work", "sh", "-c", "cat x"]);
    let ev = start(child, 501, root, session, start_flags::FORKED);
    w.write_event(&ev, v.iter().copied()).unwrap();
    // A record of a kind whose layout did not change, by the child: a relative open.
    let open = FileOpen {
        ev: header(child, 501),
        op: open_op::OPEN.into(),
        dirfd: (-100).into(),
        fd: 3.into(),
        ..Default::default()
    };
    w.write_event(&open, [&b"x"[..]].into_iter()).unwrap();
    // A process with neither variable set: a root, the ring's session.
    let v = vars(&["/bin/true", "/", "true"]);
    let ev = start(
        stray,
        502,
        [0; 16],
        [0; 16],
        start_flags::EXEC | start_flags::ROOT,
    );
    w.write_event(&ev, v.iter().copied()).unwrap();
    drop(w);
    drop(ring);

    let (o, lines) = decode(&path);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let kinds: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["event_type"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "process_start",
            "process_start",
            "file_open",
            "process_start"
        ],
        "{lines:#?}"
    );
    let text = |id: &[u8; 16]| Value::from(ids::uuid_string(id));
    let span = |id: &[u8; 16]| Value::from(ids::span_string(id));
    let (r, c, f, s) = (&lines[0], &lines[1], &lines[2], &lines[3]);
    assert_eq!(r["session_id"], text(&session));
    assert_eq!(r["span_id"], span(&root));
    assert_eq!(
        r["parent_span"],
        span(&caller_span),
        "as the version 2 drain had it"
    );
    assert_eq!(
        r["parent_image"],
        Value::Null,
        "substrate's span is no image of the ring"
    );
    assert_eq!(
        (r["exe"].as_str(), r["cwd"].as_str()),
        (Some("/bin/sh"), Some("/work"))
    );
    assert_eq!(r["argv"], serde_json::json!(["sh", "-c", "cat x"]));
    assert_eq!(
        (r["via"].as_str(), r["pid"].as_i64()),
        (Some("exec"), Some(500))
    );
    assert_eq!(c["parent_span"], span(&root));
    assert_eq!(c["parent_image"], span(&root), "the image that forked it");
    assert_eq!(
        (c["session_id"].clone(), c["via"].as_str()),
        (text(&session), Some("fork"))
    );
    assert_eq!(f["span_id"], span(&child));
    assert_eq!(f["parent_image"], span(&root));
    assert_eq!(
        f["abs_path"], "/work/x",
        "the cwd of a version 2 process_start is known"
    );
    assert_eq!(s["session_id"], text(&ring_session), "none set: the ring's");
    assert_eq!(
        (s["parent_span"].clone(), s["parent_image"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(s["argv"], serde_json::json!(["true"]));
}

#[test]
fn completions_are_valid_shell_and_the_man_page_covers_every_subcommand() {
    let drain = &tools().drain;
    let bash = Command::new(drain)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(bash.status.success());
    let script = String::from_utf8(bash.stdout).unwrap();
    assert!(script.contains("complete -F _substrate__drain"), "{script}");
    // bash accepts the script, and completes a subcommand from its prefix.
    let probe = format!(
        "{script}\nCOMP_WORDS=(substrate-drain sum); COMP_CWORD=1; \
         _substrate__drain substrate-drain sum substrate-drain; echo \"${{COMPREPLY[@]}}\""
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "summary");
    for shell in ["zsh", "fish"] {
        let o = Command::new(drain)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(o.status.success() && o.stdout.len() > 100, "{shell}");
    }

    let man = Command::new(drain).arg("man").output().unwrap();
    assert!(man.status.success());
    let page = String::from_utf8(man.stdout).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH substrate-drain"),
        "{page}"
    );
    for sub in [
        "record", "decode", "create", "stat", "summary", "tree", "show", "export", "gc",
    ] {
        assert!(
            page.contains(&format!(".SH \"SUBSTRATE-DRAIN {}\"", sub.to_uppercase())),
            "no section for {sub}"
        );
    }
    // A closed pipe is not an error.
    let mut child = Command::new(drain)
        .arg("man")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    assert!(child.wait().unwrap().success());
}

#[test]
fn record_and_decode_leave_out_the_events_and_paths_they_are_told_to() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = [
        "sh",
        "-c",
        "cat /proc/self/stat >/dev/null; cat /etc/hostname >/dev/null",
    ];
    let opens = |r: &Run| -> Vec<String> {
        r.of("file_open")
            .iter()
            .map(|l| l["abs_path"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let all = record(dir.path(), &cmd);
    assert!(opens(&all).iter().any(|p| p.starts_with("/proc/")));
    assert!(opens(&all).iter().any(|p| p == "/etc/hostname"));

    let no_proc = record_with(
        dir.path(),
        &["--exclude-path", "/proc", "--exclude-path", "/dev"],
        &cmd,
        &[],
    );
    assert!(no_proc.out.status.success());
    let o = opens(&no_proc);
    assert!(
        o.iter()
            .all(|p| !p.starts_with("/proc") && !p.starts_with("/dev")),
        "{o:?}"
    );
    assert!(o.iter().any(|p| p == "/etc/hostname"), "{o:?}");
    assert_eq!(
        no_proc.of("process_start").len(),
        all.of("process_start").len()
    );

    let processes = record_with(dir.path(), &["--events", "process"], &cmd, &[]);
    assert!(processes.of("file_open").is_empty());
    assert!(processes.of("object_load").is_empty());
    assert!(!processes.of("process_start").is_empty() && !processes.of("exec").is_empty());

    // decode: the same filters on a ring.
    let (_d, bin, ring) = fixture(&[]);
    let st = traced(&ring, &bin, &["opens", "3"]).status().unwrap();
    assert!(st.success());
    let decode_with = |args: &[&str]| -> Vec<Value> {
        let o = Command::new(&tools().drain)
            .arg("decode")
            .args(args)
            .arg(&ring)
            .output()
            .unwrap();
        assert!(o.status.success());
        parse(&String::from_utf8_lossy(&o.stdout))
    };
    let files = decode_with(&["--events", "file"]);
    assert_eq!(
        files.len(),
        3,
        "the three opens and nothing else: {files:?}"
    );
    assert!(files.iter().all(|l| l["event_type"] == "file_open"));
    assert!(decode_with(&["--events", "file", "--exclude-path", "/etc"]).is_empty());
    assert!(decode_with(&[]).len() > 3);
}
