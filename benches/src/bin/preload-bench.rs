//! Cost the preload library adds to a traced program, measured side by side in one run:
//!
//! - one hooked `open` (+ `close`): a 1,000,000-iteration loop, traced minus plain, per call;
//! - the same with an `open` that fails at once (`ENOENT`): a cheaper system call, so the
//!   library's share stands out from the noise of the kernel's path walk;
//! - the per-call rows again into a ring whose pages were touched before (a ring past its first
//!   lap): a fresh ring's first touch of each page is a page fault that allocates it;
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
//! # The LTTng-UST anchor
//!
//! In the same rounds, interleaved with the runs above, the bench measures what LTTng-UST's
//! libc wrapper adds (`liblttng-ust-libc-wrapper.so`, Debian's `liblttng-ust1`, preloaded,
//! with a recording session of `lttng-tools` enabling `lttng_ust_libc:*`), and prints our
//! added cost beside it. None of LTTng-UST's preload helpers records `open` or `exec`: the
//! libc wrapper records `malloc`, `free`, `calloc`, `realloc`, `memalign` and
//! `posix_memalign`; `liblttng-ust-fd.so` wraps `close` and `fclose` only to keep the
//! application from closing the tracer's own descriptors, and `liblttng-ust-fork.so` the
//! `fork`/`clone`/`set*id` family only to re-register a forked child, both without any event;
//! `liblttng-ust-dl.so` records `dlopen`/`dlclose`, `liblttng-ust-pthread-wrapper.so` mutex
//! calls. So the comparable measures are:
//!
//! - per call: a loop of `malloc(64)` + `free` (2 events recorded per iteration) with the
//!   wrapper, minus the same loop plain, beside our open+close (1 record, `close` is not
//!   hooked) and, per record, beside our failed `open` (1 record) against half of it;
//! - per fork+exec: the same `/bin/true` loop with the wrapper preloaded and the session
//!   recording, which is what LTTng-UST costs each new process: loading the tracer, its
//!   registration with the session daemon (default `LTTNG_UST_REGISTER_TIMEOUT`), its base
//!   address state dump (default, its events not enabled), and the process's traced `malloc`s.
//!   This loop runs a quarter of the iterations (LTTng's exec is ~10 times slower), still
//!   reported per iteration.
//!
//! The session writes its trace to the bench's temporary directory in `/dev/shm`, with
//! LTTng's default channel (discard mode, per-user buffers); at the end the bench prints the
//! trace's size and LTTng's count of discarded events (it should be 0, as our ring drops
//! nothing). The anchor is optional: when `lttng`, `lttng-sessiond` or the wrapper is
//! missing, or the session cannot be set up, one line says it was skipped and why, and the
//! rest runs unchanged. An already running session daemon is used as it is; otherwise the
//! bench starts one (`lttng-sessiond --no-kernel`) and stops it at the end; the session
//! (`substrate-bench-PID`) is destroyed at the end, also when the bench panics.
//! `PRELOAD_BENCH_LTTNG=0` skips the anchor.
//!
//! Quick check: `PRELOAD_BENCH_QUICK=1` runs 3 rounds of a tenth of the iterations.
//!
//! Run: `cargo build --release && cargo run --release -p benches --bin preload-bench`
//! (LTTng: `apt-get install lttng-tools liblttng-ust1`)

use std::ffi::CString;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
        "malloc" => {
            for _ in 0..n {
                // SAFETY: the block is freed at once and never touched; `black_box` keeps the
                // compiler from removing the pair.
                unsafe { libc::free(black_box(libc::malloc(black_box(64)))) };
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

/// Read one byte of every page of the ring at `path`, as a reader that went over it would:
/// the pages are then allocated and up to date, as in a ring past its first lap.
fn touch_pages(path: &Path) {
    let f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    use std::os::fd::AsRawFd;
    // SAFETY: a fresh read-only shared mapping of a file we opened, unmapped below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    let mut sum = 0u8;
    for off in (0..len).step_by(4096) {
        // SAFETY: within the mapping; volatile so the read happens.
        sum = sum.wrapping_add(unsafe { std::ptr::read_volatile((p as *const u8).add(off)) });
    }
    std::hint::black_box(sum);
    // SAFETY: the mapping made above.
    unsafe { libc::munmap(p, len) };
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
    /// LTTng-UST's libc wrapper preloaded, a session recording its events.
    Lttng(&'a Path),
}

fn run(me: &Path, what: &str, n: u64, v: Variant) -> f64 {
    let mut c = Command::new(me);
    c.args(["child", what, &n.to_string()]);
    c.env_remove("LD_PRELOAD").env_remove("SUBSTRATE_RING");
    match v {
        Variant::Plain => {}
        Variant::Empty(lib) | Variant::Inert(lib) | Variant::Lttng(lib) => {
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

/// Run `lttng ARGS` without letting it start a session daemon; its standard output, or why it
/// failed.
fn lttng(args: &[&str]) -> Result<String, String> {
    let o = Command::new("lttng")
        .arg("--no-sessiond")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`lttng` cannot run ({e}): install lttng-tools"))?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&o.stderr);
        let err = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        Err(format!("`lttng {}` failed: {}", args.join(" "), err.trim()))
    }
}

/// What to undo at the end: the session, and the session daemon if the bench started it.
/// Kept in a static so that a panic undoes it too (release builds abort on panic: no
/// destructor runs, but the panic hook does).
struct Cleanup {
    session: Option<String>,
    daemon: Option<Child>,
}

static CLEANUP: Mutex<Cleanup> = Mutex::new(Cleanup {
    session: None,
    daemon: None,
});

impl Cleanup {
    fn run(&mut self) {
        if let Some(s) = self.session.take() {
            if let Err(e) = lttng(&["destroy", &s]) {
                eprintln!("LTTng session {s} not destroyed: {e}");
            }
        }
        if let Some(mut d) = self.daemon.take() {
            // SAFETY: `d` is our own child, not yet waited for, so its pid is still its own.
            unsafe { libc::kill(d.id() as libc::pid_t, libc::SIGTERM) };
            let t = Instant::now();
            while d.try_wait().ok().flatten().is_none() {
                if t.elapsed() > Duration::from_secs(10) {
                    eprintln!("lttng-sessiond did not stop on SIGTERM: killed");
                    let _ = d.kill();
                    let _ = d.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn cleanup() {
    // `try_lock`: a panic while the lock is held must not deadlock in the hook.
    if let Ok(mut c) = CLEANUP.try_lock() {
        c.run();
    }
}

/// A library's path from the loader's cache (`ldconfig -p`), the versioned name first.
fn find_library(name: &str) -> Option<PathBuf> {
    let o = Command::new("ldconfig").arg("-p").output().ok()?;
    let list = String::from_utf8_lossy(&o.stdout).into_owned();
    let path = |file: &str| {
        list.lines()
            .filter(|l| l.trim_start().starts_with(&format!("{file} ")))
            .find_map(|l| l.split("=> ").nth(1))
            .map(|p| PathBuf::from(p.trim()))
    };
    path(&format!("{name}.1")).or_else(|| path(name))
}

/// LTTng-UST's libc wrapper with a recording session, set up for the bench.
struct Lttng {
    wrapper: PathBuf,
    session: String,
    output: PathBuf,
}

impl Lttng {
    /// Find the wrapper, reach (or start) a session daemon, create and start the session.
    fn setup(dir: &Path) -> Result<Lttng, String> {
        if std::env::var_os("PRELOAD_BENCH_LTTNG").is_some_and(|v| v == "0") {
            return Err("PRELOAD_BENCH_LTTNG=0".into());
        }
        let wrapper = find_library("liblttng-ust-libc-wrapper.so")
            .ok_or("liblttng-ust-libc-wrapper.so is not installed (liblttng-ust1)")?;
        lttng(&["version"])?;
        if lttng(&["list"]).is_err() {
            Self::start_daemon()?;
        }
        let session = format!("substrate-bench-{}", std::process::id());
        let output = dir.join("lttng-trace");
        lttng(&[
            "create",
            &session,
            &format!("--output={}", output.display()),
        ])?;
        CLEANUP.lock().unwrap().session = Some(session.clone());
        lttng(&["enable-event", "-u", "lttng_ust_libc:*", "-s", &session])?;
        lttng(&["start", &session])?;
        Ok(Lttng {
            wrapper,
            session,
            output,
        })
    }

    /// Start `lttng-sessiond` as a child of the bench and wait until it answers.
    fn start_daemon() -> Result<(), String> {
        let mut c = Command::new("lttng-sessiond");
        c.arg("--no-kernel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: `prctl` is async-signal-safe; the daemon gets SIGTERM if the bench dies
        // (e.g. on Ctrl-C) instead of outliving it.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut c, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let d = c
            .spawn()
            .map_err(|e| format!("`lttng-sessiond` cannot run ({e}): install lttng-tools"))?;
        CLEANUP.lock().unwrap().daemon = Some(d);
        let t = Instant::now();
        loop {
            match lttng(&["list"]) {
                Ok(_) => return Ok(()),
                Err(e) if t.elapsed() > Duration::from_secs(10) => {
                    return Err(format!("the session daemon did not answer: {e}"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Stop the session and say what it recorded: trace bytes and events LTTng discarded.
    fn finish(&self) -> Result<(u64, u64), String> {
        lttng(&["stop", &self.session])?;
        let list = lttng(&["list", &self.session])?;
        let discarded = list
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                let k = k.trim();
                let counted = k == "Discarded events" || k == "Lost packets";
                counted.then(|| v.trim().parse::<u64>().ok()).flatten()
            })
            .sum();
        Ok((dir_size(&self.output), discarded))
    }
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() == 4 && a[1] == "child" {
        return child(&a[2], a[3].parse().unwrap());
    }
    let me = std::env::current_exe().unwrap();
    let lib = benches::artefact("libringbuf_preload.so");
    let dir = benches::ring_dir();
    let quick = std::env::var_os("PRELOAD_BENCH_QUICK").is_some_and(|v| v != "0");
    let (rounds, scale) = if quick { (3, 10) } else { (9, 1) };
    let empty = empty_library(dir.path());

    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        cleanup();
        hook(info);
    }));
    let lttng = Lttng::setup(dir.path())
        .inspect_err(|why| {
            cleanup();
            println!("LTTng-UST anchor skipped: {why}.");
            println!();
        })
        .ok();

    let mut breakdown = vec![];
    let mut side = vec![];
    let mut malloc_events = 0;
    println!("| measure | plain | traced | added | ratio |");
    println!("| --- | --- | --- | --- | --- |");
    for (what, n, unit, div) in [
        ("open", 1_000_000u64, "ns", 1.0),
        ("open-enoent", 1_000_000, "ns", 1.0),
        ("forkexec", 2_000, "µs", 1000.0),
    ] {
        let n = n / scale;
        let (mut plain, mut traced, mut diff, mut ratio) = (vec![], vec![], vec![], vec![]);
        let (mut floor, mut inert, mut warm) = (vec![], vec![], vec![]);
        // LTTng's runs: the malloc loop plain and traced (per-call rows) or fork+exec.
        let (mut lt_plain, mut lt_traced, mut lt_diff, mut lt_ratio) =
            (vec![], vec![], vec![], vec![]);
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
            if what != "forkexec" {
                // The same into a ring whose pages a reader has touched (a ring past its first
                // lap): what a record costs without the first touch of fresh memory.
                drop(Ring::create(&ring, &opts).unwrap());
                touch_pages(&ring);
                warm.push(run(&me, what, n, Variant::Traced(&lib, &ring)) - p);
                std::fs::remove_file(&ring).unwrap();
            }
            if let Some(l) = &lttng {
                let wrapper = Variant::Lttng(&l.wrapper);
                let (lp, lt) = if what == "forkexec" {
                    (p, run(&me, what, (n / 4).max(1), wrapper))
                } else {
                    malloc_events += 2 * n;
                    let lp = run(&me, "malloc", n, Variant::Plain);
                    (lp, run(&me, "malloc", n, wrapper))
                };
                lt_plain.push(lp);
                lt_traced.push(lt);
                lt_diff.push(lt - lp);
                lt_ratio.push(lt / lp);
            }
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
        let ours = median(diff.clone()) / div;
        println!(
            "| {label} | {:.1} {unit} | {:.1} {unit} | {ours:+.1} {unit} | {:.3} |",
            median(plain.clone()) / div,
            median(traced) / div,
            median(ratio)
        );
        if let Some(theirs) = (!lt_diff.is_empty()).then(|| median(lt_diff.clone()) / div) {
            let (name, theirs) = match what {
                "open" => (
                    "per loop iteration: open+close (1 record) / malloc+free (2 events)",
                    theirs,
                ),
                "open-enoent" => (
                    "per record: failed open / half a malloc+free (1 event)",
                    theirs / 2.0,
                ),
                _ => ("per fork+exec of /bin/true + wait", theirs),
            };
            side.push(format!(
                "| {name} | {ours:+.1} {unit} | {theirs:+.1} {unit} | {:.2} |",
                ours / theirs
            ));
        }
        if what != "forkexec" && !lt_diff.is_empty() {
            println!(
                "| LTTng-UST: malloc+free (2 events), per call pair | {:.1} ns | {:.1} ns \
                 | {:+.1} ns | {:.3} |",
                median(lt_plain),
                median(lt_traced),
                median(lt_diff.clone()),
                median(lt_ratio)
            );
        }
        if !warm.is_empty() {
            println!(
                "| the same, into a ring whose pages were touched before (past its first lap) | | | {:+.1} {unit} | |",
                median(warm) / div
            );
        }
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
            if !lt_diff.is_empty() {
                breakdown.push(row(
                    "LTTng-UST libc wrapper, session recording `lttng_ust_libc:*`",
                    lt_diff,
                ));
            }
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
    if let Some(l) = &lttng {
        println!();
        println!(
            "Added cost, this library beside LTTng-UST's libc wrapper (same rounds, interleaved):"
        );
        println!();
        println!("| measure | this library | LTTng-UST | ratio |");
        println!("| --- | --- | --- | --- |");
        for r in side {
            println!("{r}");
        }
        println!();
        match l.finish() {
            Ok((bytes, discarded)) => println!(
                "LTTng-UST session: {:.1} MiB of trace written ({malloc_events} events from \
                 the malloc loops, plus the fork+exec runs'), {discarded} events discarded.",
                bytes as f64 / (1 << 20) as f64
            ),
            Err(e) => println!("LTTng-UST session: cannot read its statistics: {e}"),
        }
    }
    cleanup();
}
