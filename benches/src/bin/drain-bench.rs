//! The drain's speed: records decoded to JSON lines per second on one core, the latency from
//! a commit to its line in a followed file, and the CPU an idle follower uses.
//!
//! Run: `cargo build --release && cargo run --release -p benches --bin drain-bench`
//!
//! 1. Decode: 2,000,000 `file_open` records (60-byte paths, as a compiler's include opens)
//!    written by this process into a ring in tmpfs, then `substrate-drain RING -o /dev/null`;
//!    lines per second of the drain's CPU time (user + system) and of wall time.
//! 2. Follow latency: `substrate-drain --follow -o FILE RING` runs; 200 times, after 10-30 ms of
//!    quiet (the follower is in its idle back-off), one record is committed and the time until
//!    its line is in FILE is taken. Median and 99th percentile.
//! 3. Idle CPU: the follower's CPU time over 3 s without records, as a share of one core.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use format::records::{open_op, EventHeader, FileOpen, ProcessStart};
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

fn open_event(w: &Writer<'_>, span: [u8; 16], path: &[u8]) {
    let ev = FileOpen {
        ev: header(span),
        op: open_op::OPENAT.into(),
        has_mode: 0.into(),
        flags: libc::O_RDONLY.into(),
        mode: 0.into(),
        dirfd: libc::AT_FDCWD.into(),
        fd: 3.into(),
        errno: 0.into(),
    };
    w.write_event(&ev, std::iter::once(path))
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

fn cpu_of(pid: u32) -> Duration {
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
    println!("| measure | result |");
    println!("| --- | --- |");
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
        "| follow: CPU while idle | {:.2}% of one core ({} ms over 3 s) |",
        (c1 - c0).as_secs_f64() / 3.0 * 100.0,
        (c1 - c0).as_millis()
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
