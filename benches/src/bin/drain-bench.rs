//! The drain's speed: records decoded to JSON lines per second on one core, the latency from
//! a commit to its line in a followed file, the CPU an idle follower uses, and what following
//! a build costs beyond decoding its records.
//!
//! Run: `cargo build --release && cargo run --release -p benches --bin drain-bench`
//! (`drain-bench follow`: section 4 only; `drain-bench --write-ring PATH [RECORDS]`: write
//! section 1's ring and exit, for profiling and comparing builds).
//!
//! 1. Decode: 2,000,000 `file_open` records (60-byte paths, as a compiler's include opens)
//!    written by this process into a ring in tmpfs, then `substrate-drain RING -o /dev/null`;
//!    lines per second of the drain's CPU time (user + system) and of wall time.
//! 2. Follow latency: `substrate-drain --follow -o FILE RING` runs; 200 times, after 10-30 ms of
//!    quiet (the follower is in its idle back-off), one record is committed and the time until
//!    its line is in FILE is taken. Median and 99th percentile.
//! 3. Idle CPU: the follower's CPU time over 3 s without records (`/proc/PID/schedstat`), as a
//!    share of one core.
//! 4. Follow CPU: `substrate-drain --follow -o FILE RING` runs while short-lived writer
//!    processes, two at a time (as `make -j2` runs compilers, so both cores are busy), each
//!    attach, write 10-60 records (a `process_start`, `file_open`s with 60-byte paths, a
//!    `process_exit`) in clusters of 1-30 between which they compute (2-10 ms of CPU in
//!    all), and detach: about 40,000 records from about 1,100 processes in about 4 s (a
//!    `make -j2` of 300 small C files: 48,000 from 1,800). Once every line is in FILE the
//!    follower is stopped (SIGTERM) and its CPU time (user + system, from `wait4`) is divided
//!    by that of `substrate-drain RING -o FILE2`, the offline decode of the same ring into a
//!    file in the same directory: what following costs beyond decoding. Also its wake-ups
//!    (voluntary context switches), and whether both files are the same. Three rounds; the
//!    median ratio and the range.
//! 5. Views (`drain-bench views`: this section only): a ring of 1,000,000 records as a build
//!    writes them (2,500 images, each a `process_start`, 398 `file_open`s of paths drawn from
//!    20,000, one in ten failing, and a `process_exit`) is decoded to a trace file, and
//!    `summary`, `tree`, `export --format chrome`, `export --format compile-commands` and
//!    `report` read that file, `summary` the ring too. Wall time of each, the median of five
//!    rounds run side by side, and its ratio to two decodes of the ring: into the trace file
//!    (what the drain does; below 1.00x a view reads a trace faster than the drain writes
//!    it), and with its lines discarded (standard output to `/dev/null`: the decoding alone).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use format::records::{open_op, EventHeader, FileOpen, ProcessExit, ProcessStart};
use format::{CreateOptions, Ring, Writer};

fn header(span: [u8; 16]) -> EventHeader {
    EventHeader {
        // New rings carry wall-clock time (see RING.md).
        ts_ns: format::sys::clock_ns(libc::CLOCK_REALTIME).into(),
        span,
        pid: std::process::id().into(),
        tid: std::process::id().into(),
        ..Default::default()
    }
}

/// An `openat(AT_FDCWD, path, O_RDONLY)` that returned `fd` (or failed with `errno`).
fn open_record(span: [u8; 16], fd: i32, errno: i32) -> FileOpen {
    FileOpen {
        ev: header(span),
        op: open_op::OPENAT.into(),
        has_mode: 0.into(),
        flags: libc::O_RDONLY.into(),
        mode: 0.into(),
        dirfd: libc::AT_FDCWD.into(),
        fd: fd.into(),
        errno: errno.into(),
    }
}

fn open_event(w: &Writer<'_>, span: [u8; 16], path: &[u8]) {
    w.write_event(&open_record(span, 3, 0), std::iter::once(path))
        .expect("ring holds the record");
}

fn start_event(w: &Writer<'_>, span: [u8; 16]) {
    let ev = ProcessStart {
        ev: header(span),
        ppid: 1.into(),
        start_flags: 1.into(),
        parent_image: [0; 16],
        start_time: 0.into(),
    };
    // exe, cwd, SHIM_PARENT_SPAN and SHIM_SESSION_ID (unset: empty), argv.
    let vars: [&[u8]; 6] = [b"/usr/bin/cc", b"/src", b"", b"", b"cc", b"-c"];
    w.write_event(&ev, vars.into_iter()).unwrap();
}

/// Section 1's ring: a `process_start`, then `n` `file_open` records with 60-byte paths.
fn decode_ring(ring_path: &std::path::Path, n: u64, span: [u8; 16]) -> Ring {
    let ring = Ring::create(
        ring_path,
        &CreateOptions {
            capacity: (n * 144 * 2).next_power_of_two().clamp(1 << 20, 1 << 30),
            ..Default::default()
        },
    )
    .unwrap();
    {
        let w = Writer::attach(&ring).unwrap();
        start_event(&w, span);
        let mut path = b"/usr/include/x86_64-linux-gnu/bits/types/struct_FILE_000000.h".to_vec();
        for i in 0..n {
            let d = format!("{:06}", i % 1_000_000);
            path[48..54].copy_from_slice(d.as_bytes());
            open_event(&w, span, &path);
        }
    }
    ring
}

/// CPU time of `pid`'s main thread so far: `/proc/PID/schedstat` (nanoseconds), else
/// `/proc/PID/stat` (clock ticks, 10 ms here: too coarse for an idle follower).
fn cpu_of(pid: u32) -> Duration {
    if let Some(ns) = std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
    {
        return Duration::from_nanos(ns);
    }
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // fields 14 and 15 (utime, stime) are the 12th and 13th after the state.
    let ticks = f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

fn children_cpu() -> Duration {
    // SAFETY: rusage is plain data; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is valid for writes.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Wait for child `pid` and return its CPU time (user + system) and whether it exited 0.
fn wait_cpu(pid: u32) -> (Duration, bool) {
    // SAFETY: rusage is plain data; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut status = 0;
    // SAFETY: pid is our child; status and ru are valid for writes.
    let r = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (
        tv(ru.ru_utime) + tv(ru.ru_stime),
        r == pid as i32 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    )
}

/// Voluntary context switches of `pid` so far: how often it went to sleep.
fn wakeups_of(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn lines_in(path: &std::path::Path) -> usize {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}

/// One writer process of section 4, a compiler of a `make -j2`: attach, write `n` records (a
/// `process_start`, `file_open`s, a `process_exit`) in clusters of 1-30 with `work` of CPU
/// spent between them (the compiler computing), detach and exit. Forked from this
/// single-threaded process; never returns.
fn burst_child(ring: &Ring, work: Duration, n: usize, seed: u64) -> ! {
    let mut x = seed;
    let mut rand = move |n: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    let span = format::ids::new_uuid_v7();
    let opens = n.saturating_sub(2) as u64;
    if let Ok(w) = Writer::attach(ring) {
        start_event(&w, span);
        let mut path = b"/usr/include/x86_64-linux-gnu/bits/types/struct_FILE_000000.h".to_vec();
        let mut i = 0;
        while i < opens {
            // Work, as much per record as on average.
            let cluster = (1 + rand(30)).min(opens - i);
            let until = Instant::now() + work * cluster as u32 / opens as u32;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            for _ in 0..cluster {
                let d = format!("{:06}", (seed * 1000 + i) % 1_000_000);
                path[54..60].copy_from_slice(d.as_bytes());
                let ev = open_record(span, 3, 0);
                let _ = w.write_event(&ev, std::iter::once(path.as_slice()));
                i += 1;
            }
        }
        let exit = ProcessExit {
            ev: header(span),
            how: format::records::exit_how::EXIT.into(),
            ..Default::default()
        };
        let _ = w.write_event(&exit, std::iter::empty());
    }
    // SAFETY: ends this forked child without running the parent's exit handlers.
    unsafe { libc::_exit(0) }
}

/// Start `cmd` and return its pid, for [`wait_cpu`] (`wait4`, which `Child` does not offer:
/// the child's own CPU time).
fn spawn_pid(cmd: &mut Command) -> u32 {
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    // Dropping a `Child` neither kills nor waits for it; `wait_cpu` reaps it.
    drop(child);
    pid
}

/// Section 4, one round: the follower's CPU, the offline decode's CPU, records, seconds of
/// writing, the follower's wake-ups.
fn follow_round(drain: &std::path::Path, dir: &std::path::Path, round: u32) -> FollowRound {
    let ring_path = dir.join(format!("burst-{round}.ring"));
    let out = dir.join(format!("burst-{round}.jsonl"));
    let offline = dir.join(format!("burst-{round}.offline.jsonl"));
    let ring = Ring::create(
        &ring_path,
        &CreateOptions {
            capacity: 64 << 20,
            ..Default::default()
        },
    )
    .unwrap();
    let follower = spawn_pid(
        Command::new(drain)
            .arg("--follow")
            .arg("-o")
            .arg(&out)
            .arg(&ring_path)
            .stdout(Stdio::null()),
    );
    // Let it start (and reach its idle naps) before the build starts.
    std::thread::sleep(Duration::from_millis(200));
    let mut x = 0x5eed_u64 + round as u64;
    let mut rand = move |n: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    let t = Instant::now();
    let (mut records, mut running, mut seed) = (0usize, 0, 0u64);
    while records < 40_000 || running > 0 {
        if records < 40_000 && running < 2 {
            let n = 10 + rand(51) as usize;
            let work = Duration::from_micros(2_000 + rand(8_000));
            seed += 1;
            // SAFETY: this process is single-threaded here; the child only writes into the
            // ring and exits.
            match unsafe { libc::fork() } {
                0 => burst_child(&ring, work, n, seed),
                -1 => panic!("fork: {}", std::io::Error::last_os_error()),
                _ => {}
            }
            records += n;
            running += 1;
        } else {
            let mut st = 0;
            // SAFETY: waits for any child; st is valid for writes.
            let pid = unsafe { libc::waitpid(-1, &mut st, 0) };
            assert!(pid != follower as i32, "the follower ended early");
            if pid > 0 {
                running -= 1;
            }
        }
    }
    let writing = t.elapsed();
    let t = Instant::now();
    while lines_in(&out) < records {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the follower wrote {} of {records} lines",
            lines_in(&out)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let wakeups = wakeups_of(follower);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(follower as i32, libc::SIGTERM) };
    let (follow_cpu, _) = wait_cpu(follower);
    let off = spawn_pid(Command::new(drain).arg(&ring_path).arg("-o").arg(&offline));
    let (offline_cpu, ok) = wait_cpu(off);
    assert!(ok, "the offline decode failed");
    let same = std::fs::read(&out).ok() == std::fs::read(&offline).ok();
    drop(ring);
    if same {
        for p in [&ring_path, &out, &offline] {
            let _ = std::fs::remove_file(p);
        }
    } else {
        // Kept for a look (the temporary directory goes, the files move next to it).
        for p in [&ring_path, &out, &offline] {
            let keep = std::env::temp_dir().join(p.file_name().unwrap_or_default());
            if std::fs::copy(p, &keep).is_ok() {
                eprintln!("drain-bench: outputs differ; kept {}", keep.display());
            }
            let _ = std::fs::remove_file(p);
        }
    }
    FollowRound {
        follow_cpu,
        offline_cpu,
        records,
        writing,
        wakeups,
        same,
    }
}

struct FollowRound {
    follow_cpu: Duration,
    offline_cpu: Duration,
    records: usize,
    writing: Duration,
    wakeups: u64,
    /// The follower's file equals the offline decode's.
    same: bool,
}

impl FollowRound {
    fn ratio(&self) -> f64 {
        self.follow_cpu.as_secs_f64() / self.offline_cpu.as_secs_f64().max(1e-9)
    }
}

fn main() {
    let drain = benches::artefact("substrate-drain");
    let dir = benches::ring_dir();
    let span = format::ids::new_uuid_v7();

    // `drain-bench --write-ring PATH [N]`: write section 1's ring (N records, default 2 M)
    // to PATH and exit, for profiling the decode (`valgrind --tool=callgrind substrate-drain
    // PATH -o /dev/null`) and for comparing two builds' output.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--write-ring") {
        let Some(path) = args.get(1) else {
            eprintln!("usage: drain-bench [--write-ring PATH [RECORDS]]");
            std::process::exit(2);
        };
        let n = args
            .get(2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(2_000_000);
        drop(decode_ring(std::path::Path::new(path), n, span));
        return;
    }

    // `drain-bench follow`: section 4 only; `drain-bench views`: section 5 only.
    let follow_only = args.first().map(String::as_str) == Some("follow");
    if args.first().map(String::as_str) == Some("views") {
        println!("| measure | result |");
        println!("| --- | --- |");
        views(&drain, dir.path());
        return;
    }

    println!("| measure | result |");
    println!("| --- | --- |");
    if follow_only {
        follow_cpu(&drain, dir.path());
        return;
    }

    // 1. Decode throughput.
    let n = 2_000_000u64;
    let ring_path = dir.path().join("decode.ring");
    let ring = decode_ring(&ring_path, n, span);
    let cpu0 = children_cpu();
    let t = Instant::now();
    let st = Command::new(&drain)
        .arg(&ring_path)
        .arg("-o")
        .arg("/dev/null")
        .status()
        .unwrap();
    let wall = t.elapsed();
    let cpu = children_cpu() - cpu0;
    assert!(st.success());
    println!(
        "| decode {n} records to JSON lines | {:.2} M lines/s of CPU time, {:.2} M lines/s wall ({:.2} s CPU) |",
        n as f64 / cpu.as_secs_f64() / 1e6,
        n as f64 / wall.as_secs_f64() / 1e6,
        cpu.as_secs_f64()
    );
    drop(ring);
    std::fs::remove_file(&ring_path).unwrap();

    // 2. Follow latency.
    let ring_path = dir.path().join("follow.ring");
    let out = dir.path().join("follow.jsonl");
    let ring = Ring::create(
        &ring_path,
        &CreateOptions {
            capacity: 16 << 20,
            ..Default::default()
        },
    )
    .unwrap();
    let w = Writer::attach(&ring).unwrap();
    start_event(&w, span);
    let mut child = Command::new(&drain)
        .arg("--follow")
        .arg("-o")
        .arg(&out)
        .arg(&ring_path)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let wait_for = |needle: &str, f: &mut Option<std::fs::File>, seen: &mut String| -> Duration {
        let t = Instant::now();
        loop {
            if f.is_none() {
                *f = std::fs::File::open(&out).ok();
            }
            if let Some(file) = f.as_mut() {
                let mut s = String::new();
                file.read_to_string(&mut s).unwrap();
                seen.push_str(&s);
                if seen.contains(needle) {
                    return t.elapsed();
                }
            }
            std::hint::spin_loop();
            if t.elapsed() > Duration::from_secs(5) {
                panic!("line {needle} never appeared");
            }
        }
    };
    let mut f = None;
    let mut seen = String::new();
    wait_for("process_start", &mut f, &mut seen);
    let mut lat = vec![];
    let mut x = 7u64;
    for i in 0..200 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        std::thread::sleep(Duration::from_millis(10 + (x >> 33) % 21));
        let p = format!("/latency/{i}/x");
        let t = Instant::now();
        open_event(&w, span, p.as_bytes());
        let needle = format!("\"path\":\"{p}\"");
        wait_for(&needle, &mut f, &mut seen);
        lat.push(t.elapsed());
        seen.clear();
    }
    lat.sort();
    println!(
        "| follow: commit to line in file | median {:.2} ms, p99 {:.2} ms (200 records, 10-30 ms apart) |",
        lat[lat.len() / 2].as_secs_f64() * 1e3,
        lat[lat.len() * 99 / 100].as_secs_f64() * 1e3
    );

    // 3. Idle CPU.
    let c0 = cpu_of(child.id());
    std::thread::sleep(Duration::from_secs(3));
    let c1 = cpu_of(child.id());
    println!(
        "| follow: CPU while idle | {:.2}% of one core ({:.1} ms over 3 s) |",
        (c1 - c0).as_secs_f64() / 3.0 * 100.0,
        (c1 - c0).as_secs_f64() * 1e3
    );
    child.kill().unwrap();
    child.wait().unwrap();
    drop(w);
    drop(ring);

    // 4. Follow CPU against offline decode CPU.
    follow_cpu(&drain, dir.path());

    // 5. Views against decode.
    views(&drain, dir.path());
}

/// Section 5's ring: `images` images of a build, 400 records each.
fn views_ring(path: &std::path::Path, images: u64) -> Ring {
    let ring = Ring::create(
        path,
        &CreateOptions {
            capacity: (images * 400 * 144 * 2).next_power_of_two(),
            ..Default::default()
        },
    )
    .unwrap();
    {
        let w = Writer::attach(&ring).unwrap();
        let mut x = 0x5eed_u64;
        let mut path = b"/usr/include/x86_64-linux-gnu/bits/types/struct_FILE_000000.h".to_vec();
        for _ in 0..images {
            let span = format::ids::new_uuid_v7();
            start_event(&w, span);
            for i in 0..398 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let d = format!("{:06}", (x >> 33) % 20_000);
                path[54..60].copy_from_slice(d.as_bytes());
                let ev = if i % 10 == 0 {
                    open_record(span, -1, libc::ENOENT)
                } else {
                    open_record(span, 3, 0)
                };
                w.write_event(&ev, std::iter::once(path.as_slice()))
                    .expect("ring holds the record");
            }
            let exit = ProcessExit {
                ev: header(span),
                how: format::records::exit_how::EXIT.into(),
                ..Default::default()
            };
            w.write_event(&exit, std::iter::empty()).unwrap();
        }
    }
    ring
}

/// Section 5: each view's wall time on a 1 M-line trace against the decode's.
fn views(drain: &std::path::Path, dir: &std::path::Path) {
    let ring_path = dir.join("views.ring");
    let trace = dir.join("views.jsonl");
    let ring = views_ring(&ring_path, 2_500);
    let ring_s = ring_path.to_str().unwrap().to_string();
    let trace_s = trace.to_str().unwrap().to_string();
    let out = dir.join("views.out");
    let out_s = out.to_str().unwrap().to_string();
    let runs: Vec<(&str, Vec<&str>)> = vec![
        (
            "decode the ring to a trace file",
            vec![&ring_s, "-o", &trace_s],
        ),
        ("decode the ring, lines discarded", vec![&ring_s]),
        ("summary of the trace", vec!["summary", &trace_s]),
        (
            "summary --json of the trace",
            vec!["summary", "--json", &trace_s],
        ),
        ("tree of the trace", vec!["tree", &trace_s]),
        (
            "export --format chrome of the trace",
            vec!["export", "--format", "chrome", &trace_s, "-o", &out_s],
        ),
        (
            "export --format compile-commands of the trace",
            vec![
                "export",
                "--format",
                "compile-commands",
                &trace_s,
                "-o",
                &out_s,
            ],
        ),
        (
            "report of the trace",
            vec!["report", &trace_s, "-o", &out_s],
        ),
        ("summary of the ring", vec!["summary", &ring_s]),
    ];
    const ROUNDS: usize = 5;
    let mut walls: Vec<Vec<Duration>> = vec![vec![]; runs.len()];
    for _ in 0..ROUNDS {
        for (k, (_, args)) in runs.iter().enumerate() {
            if k == 0 {
                // A decode into an existing trace resumes after its last line: start afresh.
                let _ = std::fs::remove_file(&trace);
            }
            let t = Instant::now();
            let st = Command::new(drain)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            walls[k].push(t.elapsed());
            assert!(st.success(), "{args:?}");
        }
    }
    let lines = lines_in(&trace);
    let median = |w: &mut Vec<Duration>| {
        w.sort();
        w[ROUNDS / 2]
    };
    // Two references: the decode as the drain does it (into a trace file), and the decode
    // alone (its lines discarded: no file system cost).
    let decode = median(&mut walls[0]).as_secs_f64();
    let discarded = median(&mut walls[1]).as_secs_f64();
    for (k, (what, _)) in runs.iter().enumerate() {
        let m = median(&mut walls[k]).as_secs_f64();
        println!(
            "| {what} ({lines} lines) | {m:.2} s, {:.2} M lines/s, {:.2}x the decode into a file, {:.2}x the decode discarded |",
            lines as f64 / m / 1e6,
            m / decode,
            m / discarded,
        );
    }
    drop(ring);
    for p in [&ring_path, &trace, &out] {
        let _ = std::fs::remove_file(p);
    }
}

/// Section 4: three rounds of [`follow_round`], the median ratio and the range.
fn follow_cpu(drain: &std::path::Path, dir: &std::path::Path) {
    let mut rounds: Vec<FollowRound> = (0..3).map(|r| follow_round(drain, dir, r)).collect();
    rounds.sort_by(|a, b| a.ratio().total_cmp(&b.ratio()));
    let m = &rounds[1];
    println!(
        "| follow: CPU following bursts, against offline decode | {:.2}x (range {:.2}-{:.2}x; median round: follower {} ms, offline {} ms, {} records in {:.1} s, {} wake-ups{}) |",
        m.ratio(),
        rounds[0].ratio(),
        rounds[2].ratio(),
        m.follow_cpu.as_millis(),
        m.offline_cpu.as_millis(),
        m.records,
        m.writing.as_secs_f64(),
        m.wakeups,
        if rounds.iter().all(|r| r.same) {
            ""
        } else {
            "; OUTPUTS DIFFER"
        }
    );
}
