//! Ring write cost: ns per record from one writer and from two processes competing, for
//! several record sizes, beside the cost of `clock_gettime` and of one uncontended CAS measured
//! in the same run. Prints a Markdown table.
//!
//! Run: `cargo run --release -p benches --bin ring-bench [-- RECORDS_PER_RUN]`
//!
//! Both modes, 64 MiB rings with 64 KiB blocks. Overwrite mode (the flight recorder) includes
//! the cost of reclaiming blocks, amortised, and of announcing each reservation in flight (two
//! atomic adds on the writer's own slot). Discard mode (the default of `record`) stands in a
//! reader that keeps up: every 1024 records the writer itself marks everything reserved so far
//! as consumed. Each figure is the median of 5 runs; no run may drop a record.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use format::layout::ctl;
use format::mem::Mem;
use format::{CreateOptions, Mode, Ring, Writer, KIND_USER};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn per_op(n: u64, f: impl Fn(u64)) -> f64 {
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

/// Write `n` records of `payload` and return ns per record. In discard mode, stand in for a
/// reader that keeps up: every 1024 records, publish the reservation position as consumed.
fn write_n(ring: &Ring, payload: &[u8], n: u64) -> f64 {
    let w = Writer::attach(ring).unwrap();
    let discard = ring.mode() == Mode::Discard;
    let ns = per_op(n, |i| {
        black_box(w.write_bytes(KIND_USER, payload).ok());
        if discard && i % 1024 == 0 {
            consume_all(ring);
        }
    });
    w.detach();
    ns
}

/// Move the consumer position up to the reservation position (never down: the other process
/// does the same).
fn consume_all(ring: &Ring) {
    let mem = ring.mem();
    let g = ring.geometry();
    let head = mem.load(g.ctl(ctl::RESERVE), Ordering::Acquire);
    let mut c = mem.load(g.ctl(ctl::CONSUMER), Ordering::Relaxed);
    while c < head {
        match mem.cas(
            g.ctl(ctl::CONSUMER),
            c,
            head,
            Ordering::Release,
            Ordering::Relaxed,
        ) {
            Ok(_) => break,
            Err(now) => c = now,
        }
    }
}

/// ns per record for `procs` processes each writing `n` records of total size `size`.
fn ring_cost(ring_path: &std::path::Path, procs: usize, size: usize, n: u64) -> f64 {
    let payload = vec![0xA5u8; size - 16];
    if procs == 1 {
        return write_n(&Ring::open(ring_path).unwrap(), &payload, n);
    }
    // Children write concurrently; each reports its own ns/record through a pipe-free channel:
    // its exit status cannot carry it, so each writes it into a shared anonymous mapping.
    // SAFETY: a fresh anonymous shared mapping of one page.
    let shared = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    } as *mut AtomicU64;
    let mut pids = vec![];
    for p in 0..procs {
        // SAFETY: the benchmark is single-threaded here; the child only runs Rust code that
        // does not depend on other threads, then _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let ns = write_n(&Ring::open(ring_path).unwrap(), &payload, n);
            // SAFETY: within the mapped page (procs < 512), atomically written.
            unsafe { (*shared.add(p)).store(ns.to_bits(), Ordering::Release) };
            // SAFETY: end the child without running the parent's exit handlers.
            unsafe { libc::_exit(0) };
        }
        pids.push(pid);
    }
    for pid in pids {
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    }
    let v: Vec<f64> = (0..procs)
        // SAFETY: as above; children have exited.
        .map(|p| f64::from_bits(unsafe { (*shared.add(p)).load(Ordering::Acquire) }))
        .collect();
    // SAFETY: our mapping, no longer used.
    unsafe { libc::munmap(shared.cast(), 4096) };
    v.iter().sum::<f64>() / v.len() as f64
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("RECORDS_PER_RUN"))
        .unwrap_or(2_000_000);
    let dir = benches::ring_dir();
    let rings: Vec<_> = [Mode::Overwrite, Mode::Discard]
        .into_iter()
        .map(|mode| {
            let path = dir.path().join(format!("{mode:?}"));
            let opts = CreateOptions {
                capacity: 64 << 20,
                block_size: 64 << 10,
                mode,
                ..Default::default()
            };
            drop(Ring::create(&path, &opts).unwrap());
            path
        })
        .collect();

    let clock = median(
        (0..5)
            .map(|_| {
                per_op(n, |_| {
                    black_box(format::sys::clock_ns(libc::CLOCK_MONOTONIC));
                })
            })
            .collect(),
    );
    let word = AtomicU64::new(0);
    let cas = median(
        (0..5)
            .map(|_| {
                per_op(n, |i| {
                    black_box(
                        word.compare_exchange(i, i + 1, Ordering::AcqRel, Ordering::Relaxed)
                            .ok(),
                    );
                })
            })
            .collect(),
    );
    println!("| what | ns |");
    println!("|---|---|");
    println!("| `clock_gettime(CLOCK_MONOTONIC)` (vDSO) | {clock:.1} |");
    println!("| one uncontended CAS (`lock cmpxchg`) | {cas:.1} |");
    println!();
    println!(
        "| record size (header included) | overwrite: 1 writer | overwrite: 2 processes, each | discard: 1 writer | discard: 2 processes, each |"
    );
    println!("|---|---|---|---|---|");
    for size in [32usize, 64, 128, 512] {
        let mut row = format!("| {size} B |");
        for path in &rings {
            for procs in [1, 2] {
                let ns = median((0..5).map(|_| ring_cost(path, procs, size, n)).collect());
                row += &format!(" {ns:.1} |");
            }
        }
        println!("{row}");
    }
    for path in &rings {
        let stats = Ring::open(path).unwrap().stats();
        assert_eq!(stats.dropped(), 0, "{}: {stats:?}", path.display());
    }
}
