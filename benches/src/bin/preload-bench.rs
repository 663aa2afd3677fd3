//! Cost the preload library adds to a traced program, measured side by side in one run:
//!
//! - one hooked `open` (+ `close`): a 1,000,000-iteration loop, traced minus plain, per call;
//! - the same with an `open` that fails at once (`ENOENT`): a cheaper system call, so the
//!   library's share stands out from the noise of the kernel's path walk;
//! - one `fork` + `exec` of `/bin/true` + `waitpid`: 2,000 iterations, traced over plain; and,
//!   in the same rounds, with an empty C library preloaded (the floor any `LD_PRELOAD` pays on
//!   this machine: needs `cc`) and with this library preloaded but inert (no ring), so the
//!   added time splits into what any preload costs, what loading this library costs, and
//!   what recording costs.
//!
//! Each measurement runs in a fresh child process (this binary, `child` mode) that times its
//! own loop, so process start-up is not counted. Plain and traced runs alternate (A B A B …,
//! 9 rounds); the table shows medians and the median of the per-pair differences and ratios.
//! The traced runs write into a ring large enough to hold every record (nothing dropped).
//!
//! Run: `cargo build --release && cargo run --release -p benches --bin preload-bench`

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use format::{CreateOptions, Ring};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Child mode: run the loop, print ns per iteration.
fn child(what: &str, n: u64) {
    let p = CString::new("/etc/hostname").unwrap();
    let t = Instant::now();
    match what {
        "open" => {
            for _ in 0..n {
                // SAFETY: valid path; the descriptor is closed at once.
                unsafe { libc::close(libc::open(p.as_ptr(), libc::O_RDONLY)) };
            }
        }
        "open-enoent" => {
            let p = CString::new("/nonexistent/x").unwrap();
            for _ in 0..n {
                // SAFETY: valid path; the call fails with ENOENT.
                unsafe { libc::open(p.as_ptr(), libc::O_RDONLY) };
            }
        }
        "forkexec" => {
            let prog = CString::new("/bin/true").unwrap();
            let argv = [prog.as_ptr(), std::ptr::null()];
            for _ in 0..n {
                // SAFETY: the child only execs or exits; the parent waits for it.
                unsafe {
                    let pid = libc::fork();
                    if pid == 0 {
                        libc::execv(prog.as_ptr(), argv.as_ptr());
                        libc::_exit(127);
                    }
                    let mut st = 0;
                    libc::waitpid(pid, &mut st, 0);
                }
            }
        }
        _ => panic!("unknown child mode"),
    }
    println!("{}", t.elapsed().as_nanos() as f64 / n as f64);
}

/// How a child runs.
#[derive(Clone, Copy)]
enum Variant<'a> {
    /// No preload at all.
    Plain,
    /// A preloaded library that does nothing: the floor any `LD_PRELOAD` pays.
    Empty(&'a Path),
    /// This library preloaded without a ring: loaded, inert.
    Inert(&'a Path),
    /// This library recording into a ring.
    Traced(&'a Path, &'a Path),
}

fn run(me: &Path, what: &str, n: u64, v: Variant) -> f64 {
    let mut c = Command::new(me);
    c.args(["child", what, &n.to_string()]);
    c.env_remove("LD_PRELOAD").env_remove("SUBSTRATE_RING");
    match v {
        Variant::Plain => {}
        Variant::Empty(lib) | Variant::Inert(lib) => {
            c.env("LD_PRELOAD", lib);
        }
        Variant::Traced(lib, ring) => {
            c.env("LD_PRELOAD", lib).env("SUBSTRATE_RING", ring);
        }
    }
    let o = c.output().expect("run child");
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .expect("child output")
}

/// Compile a preload library with one empty function (`cc` must be installed).
fn empty_library(dir: &Path) -> Option<PathBuf> {
    let src = dir.join("empty.c");
    let lib = dir.join("libempty.so");
    std::fs::write(&src, "int substrate_bench_empty(void) { return 0; }\n").ok()?;
    let ok = Command::new("cc")
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(lib)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() == 4 && a[1] == "child" {
        return child(&a[2], a[3].parse().unwrap());
    }
    let me = std::env::current_exe().unwrap();
    let lib = benches::artefact("libringbuf_preload.so");
    let dir = benches::ring_dir();
    let rounds = 9;
    let empty = empty_library(dir.path());
    let mut breakdown = vec![];
    println!("| measure | plain | traced | added | ratio |");
    println!("| --- | --- | --- | --- | --- |");
    for (what, n, unit, div) in [
        ("open", 1_000_000u64, "ns", 1.0),
        ("open-enoent", 1_000_000, "ns", 1.0),
        ("forkexec", 2_000, "µs", 1000.0),
    ] {
        let (mut plain, mut traced, mut diff, mut ratio) = (vec![], vec![], vec![], vec![]);
        let (mut floor, mut inert) = (vec![], vec![]);
        for r in 0..rounds {
            // A fresh ring per traced run, big enough for every record.
            let ring = dir.path().join(format!("{what}-{r}.ring"));
            let opts = CreateOptions {
                capacity: 256 << 20,
                ..Default::default()
            };
            drop(Ring::create(&ring, &opts).unwrap());
            let p = run(&me, what, n, Variant::Plain);
            // For fork+exec, also what any preload costs and what this library costs idle,
            // interleaved with the same plain run.
            if what == "forkexec" {
                if let Some(e) = &empty {
                    floor.push(run(&me, what, n, Variant::Empty(e)) - p);
                }
                inert.push(run(&me, what, n, Variant::Inert(&lib)) - p);
            }
            let t = run(&me, what, n, Variant::Traced(&lib, &ring));
            let drops = Ring::open_read_only(&ring).unwrap().stats().dropped();
            assert_eq!(drops, 0, "the ring held every record");
            std::fs::remove_file(&ring).unwrap();
            plain.push(p);
            traced.push(t);
            diff.push(t - p);
            ratio.push(t / p);
        }
        let label = match what {
            "open" => "open+close of a file, per call",
            "open-enoent" => "open of a missing file (ENOENT), per call",
            _ => "fork+exec /bin/true+wait",
        };
        println!(
            "| {label} | {:.1} {unit} | {:.1} {unit} | {:+.1} {unit} | {:.3} |",
            median(plain.clone()) / div,
            median(traced) / div,
            median(diff.clone()) / div,
            median(ratio)
        );
        if what == "forkexec" {
            let p = median(plain) / div;
            let row = |name: &str, added: Vec<f64>| {
                let a = median(added) / div;
                format!("| {name} | {a:+.1} {unit} | {:.3} |", (p + a) / p)
            };
            if !floor.is_empty() {
                breakdown.push(row(
                    "an empty C library in `LD_PRELOAD` (the floor of any preload)",
                    floor,
                ));
            }
            breakdown.push(row("this library preloaded, no ring (inert)", inert));
            breakdown.push(row("this library recording", diff));
        }
    }
    println!();
    println!("fork+exec of /bin/true, added over plain (same rounds, interleaved):");
    println!();
    println!("| preloaded | added | ratio |");
    println!("| --- | --- | --- |");
    for r in breakdown {
        println!("{r}");
    }
}
