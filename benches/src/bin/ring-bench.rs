//! Ring write cost: ns per record from one writer and from two processes competing, for
//! several record sizes, beside the cost of `clock_gettime` and of one uncontended CAS measured
//! in the same run. Prints a Markdown table.
//!
//! Run: `cargo run --release -p benches --bin ring-bench [-- RECORDS_PER_RUN]`
//!
//! The ring is in overwrite mode (64 MiB, 64 KiB blocks) so writers never wait for a reader and
//! the cost of reclaiming blocks is included, amortised, as in a flight recorder. Each figure is
//! the median of 5 runs.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

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

/// ns per record for `procs` processes each writing `n` records of total size `size`.
fn ring_cost(ring_path: &std::path::Path, procs: usize, size: usize, n: u64) -> f64 {
    let payload = vec![0xA5u8; size - 16];
    if procs == 1 {
        let ring = Ring::open(ring_path).unwrap();
        let w = Writer::attach(&ring).unwrap();
        return per_op(n, |_| {
            black_box(w.write_bytes(KIND_USER, &payload).unwrap());
        });
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
            let ring = Ring::open(ring_path).unwrap();
            let w = Writer::attach(&ring).unwrap();
            let ns = per_op(n, |_| {
                black_box(w.write_bytes(KIND_USER, &payload).ok());
            });
            // SAFETY: within the mapped page (procs < 512), atomically written.
            unsafe { (*shared.add(p)).store(ns.to_bits(), Ordering::Release) };
            w.detach();
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
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let path = dir.path().join("ring");
    let opts = CreateOptions {
        capacity: 64 << 20,
        block_size: 64 << 10,
        mode: Mode::Overwrite,
        ..Default::default()
    };
    drop(Ring::create(&path, &opts).unwrap());

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
    println!("| record size (header included) | 1 writer, ns/record | 2 processes competing, ns/record each |");
    println!("|---|---|---|");
    for size in [32usize, 64, 128, 512] {
        let one = median((0..5).map(|_| ring_cost(&path, 1, size, n)).collect());
        let two = median((0..5).map(|_| ring_cost(&path, 2, size, n)).collect());
        println!("| {size} B | {one:.1} | {two:.1} |");
    }
}
