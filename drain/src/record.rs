//! `substrate-drain record -- CMD ARGS…`: trace one command into `trace.jsonl`.
//!
//! 1. Create a private ring (mode 0600, `O_EXCL`) named `substrate-<pid>-<random>.ring` in
//!    `$XDG_RUNTIME_DIR` (if it is the user's, mode 0700), else in `/dev/shm/substrate-UID/`
//!    (created 0700; refused if someone else made it). See `docs/PERMISSIONS.md`.
//! 2. Start CMD with `LD_PRELOAD` (the library first, the caller's own preloads after),
//!    `SUBSTRATE_RING`, and `SHIM_SESSION_ID` (the ring's session id) unless the caller set
//!    one; the caller's `SHIM_SESSION_ID` and `SHIM_PARENT_SPAN` pass through untouched.
//! 3. Drain live. Once CMD has exited, go on while any traced process still holds a writer slot,
//!    for at most the grace period (`--grace`, default 2 s; `--wait-all` waits for every one,
//!    for daemons that outlive CMD), then decode what is left and stop.
//! 4. Remove the ring (unless `--keep-ring`), print the summary, exit with CMD's status.

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use clap::Args;
use format::{CreateOptions, ProcLiveness, Ring};

use drain::follow::Follower;
use drain::output::{Output, Target};
use drain::{decode, follow, rings, session_id};

use crate::parse_size;

/// Arguments of `record`.
#[derive(Args)]
#[allow(rustdoc::broken_intra_doc_links)] // doc comments here are `--help` text
pub struct RecordArgs {
    /// Where to append the trace (`-`: standard output). The file may be shared: nothing in
    /// it is cut or rewritten, each line is written whole, and a rotated file is noticed and
    /// its path reopened.
    #[arg(short, long, value_name = "FILE", default_value = "trace.jsonl")]
    output: OsString,
    /// Create the ring at PATH instead of a private temporary name (it must not exist).
    #[arg(long, value_name = "PATH")]
    ring: Option<PathBuf>,
    #[command(flatten)]
    filter: crate::FilterArgs,
    /// Ring capacity in bytes (power of two; K, M, G suffixes).
    #[arg(long, value_name = "BYTES", default_value = "64M", value_parser = parse_size)]
    size: u64,
    /// What a full ring does: `discard` new records (counted) or `overwrite` the oldest.
    #[arg(long, value_enum, default_value = "discard")]
    mode: crate::ModeArg,
    /// Keep the ring file after the run (its path is printed in the summary).
    #[arg(long)]
    keep_ring: bool,
    /// The preload library. Default: $SUBSTRATE_PRELOAD, else libringbuf_preload.so next to
    /// this program, in ../lib/substrate/ or ../lib/ from it, else the copy embedded in this
    /// program, written once to $XDG_CACHE_HOME/substrate/ (or ~/.cache/substrate/, or the
    /// private ring directory) as libringbuf_preload-HASH.so. `--print-preload-path` shows
    /// which.
    #[arg(long, value_name = "PATH")]
    preload: Option<PathBuf>,
    /// After CMD exits, how long to wait for traced processes it left running (seconds).
    #[arg(long, value_name = "SECS", default_value = "2")]
    grace: f64,
    /// After CMD exits, wait for every traced process, however long (daemons).
    #[arg(long)]
    wait_all: bool,
    /// Keep argument values that look like secrets (default: replaced by [REDACTED]).
    #[arg(long)]
    no_redact: bool,
    /// Start no supervisor: static programs (which ignore LD_PRELOAD) and everything they
    /// start are then recorded only as `untraced` exec lines.
    #[arg(long)]
    no_supervise: bool,
    /// What the supervisor records of static programs: `process` events, or `full`: their
    /// file opens too (each of their system calls then stops them: slower).
    #[arg(long = "static", value_enum, default_value = "process")]
    depth: crate::supervise::StaticDepth,
    /// The command and its arguments (after `--` when the command starts with `-`).
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    cmd: Vec<OsString>,
}

/// An output whose reader may go away (`-o - | head`): from the first `EPIPE` on, lines are
/// dropped quietly and `closed` is set.
struct QuietPipe<'a> {
    out: &'a mut Output,
    closed: bool,
}

impl QuietPipe<'_> {
    fn quiet(&mut self, r: io::Result<()>) -> io::Result<()> {
        match r {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            r => r,
        }
    }
}

impl Write for QuietPipe<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.write_all(b)?;
        Ok(b.len())
    }
    fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let r = self.out.line(b);
        self.quiet(r)
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let r = self.out.flush();
        self.quiet(r)
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("substrate-drain record: {msg}");
    ExitCode::from(2)
}

/// CPU time (user + system) this process has used.
fn own_cpu_secs() -> f64 {
    // SAFETY: rusage is plain data, valid for writes.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// Allocate the ring file's space on a thread of its own, so that the command starts without
/// waiting for it. The signals `record` forwards are blocked on that thread (they reach the
/// main one); `None` if no thread could be started (the pages are then allocated as writers
/// touch them).
fn allocate_in_background(path: &Path) -> Allocation {
    let p = path.to_path_buf();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    // SAFETY: sigset_t is plain data (all-zero valid); the calls only read and write these
    // two sets and this thread's mask, which is restored below.
    let old = unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        for s in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGCHLD,
        ] {
            libc::sigaddset(&mut block, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old);
        old
    };
    let h = std::thread::Builder::new()
        .name("allocate ring".into())
        .spawn(move || Ring::allocate(&p, &stop2))
        .ok();
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    Allocation { thread: h, stop }
}

/// The ring's allocation under way ([`allocate_in_background`]).
struct Allocation {
    thread: Option<std::thread::JoinHandle<Result<bool, format::RingError>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Allocation {
    /// Stop allocating (once the command is done, what is not allocated yet is never needed,
    /// and freeing less is quicker): the error, if it failed.
    fn stop(self) -> Option<format::RingError> {
        // Relaxed: a request to stop, nothing published with it.
        self.stop.store(true, Relaxed);
        match self.thread?.join() {
            Ok(Err(e)) => Some(e),
            _ => None,
        }
    }
}

/// Run `record`.
pub fn run(a: RecordArgs) -> ExitCode {
    let preload = match crate::preload::find_preload(a.preload.as_deref()) {
        Ok(f) => f.path,
        Err(e) => return fail(e),
    };
    let sid = match session_id(None) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    // Rings that SIGKILLed runs of ours left behind.
    if a.ring.is_none() {
        if let Ok(d) = rings::private_ring_dir() {
            rings::collect(&d);
        }
    }
    let ring_path = match a.ring.clone().map_or_else(rings::private_ring_path, Ok) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let ring_path = if ring_path.is_absolute() {
        ring_path
    } else {
        std::env::current_dir()
            .map(|d| d.join(&ring_path))
            .unwrap_or(ring_path)
    };
    let opts = CreateOptions {
        capacity: a.size,
        mode: a.mode.into(),
        session_id: sid,
        // Its room is checked now; it is allocated beside the command's start.
        defer_allocation: true,
        ..Default::default()
    };
    let ring = match Ring::create(&ring_path, &opts) {
        Ok(r) => r,
        Err(e) => return fail(drain::ring_error(&ring_path, &e)),
    };
    let allocation = allocate_in_background(&ring_path);
    let remove_ring = || {
        if !a.keep_ring {
            let _ = std::fs::remove_file(&ring_path);
        }
    };
    let target = Target::parse(&a.output);
    let created = matches!(&target, Target::File(p) if !p.exists());
    let mut out = match Output::open(target.clone()) {
        Ok(o) => o,
        Err(e) => {
            remove_ring();
            return fail(format!("{}: {e}", target.display()));
        }
    };
    out.set_filter(a.filter.filter());

    let mut preload_env: OsString = preload.clone().into_os_string();
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        preload_env.push(":");
        preload_env.push(old);
    }
    follow::catch_signals();
    let supervisor = if a.no_supervise {
        None
    } else {
        match start_supervisor(&ring_path, a.depth) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("substrate-drain record: no supervisor ({e}): static programs will not be followed");
                None
            }
        }
    };
    let root_static = is_static_program(&a.cmd[0]);
    if root_static && supervisor.is_none() {
        eprintln!(
            "substrate-drain record: {} is a static executable: the preload cannot enter it and no supervisor follows it, so only the programs it starts that load the library are recorded",
            a.cmd[0].to_string_lossy()
        );
    }
    let mut cmd = Command::new(&a.cmd[0]);
    cmd.args(&a.cmd[1..])
        .env("LD_PRELOAD", &preload_env)
        .env("SUBSTRATE_RING", &ring_path);
    // A new ring, a new tree: an outer traced session's image link does not belong in it.
    cmd.env_remove("SUBSTRATE_PARENT_IMAGE");
    if std::env::var_os("SHIM_SESSION_ID").is_none() {
        cmd.env("SHIM_SESSION_ID", format::ids::uuid_string(&sid));
    }
    // A static root is followed by the supervisor from its exec on. Its dynamic children
    // find their parent image in SUBSTRATE_PARENT_IMAGE, which the supervisor sets in place:
    // give it a value of the right length.
    let follow_root = root_static && supervisor.is_some();
    if follow_root {
        cmd.env("SUBSTRATE_PARENT_IMAGE", format::ids::span_string(&[0; 16]));
    }
    let header = *ring.header();
    // The child gets default dispositions for the signals the drain catches.
    // SAFETY: only async-signal-safe calls between fork and exec: sigaction, and the
    // supervisor request (raw system calls on stack buffers).
    unsafe {
        cmd.pre_exec(move || {
            for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
                libc::signal(s, libc::SIG_DFL);
            }
            if follow_root {
                let pid = libc::getpid() as u32;
                // Kept open until the exec closes it (close-on-exec): the supervisor is then
                // waiting for this exec.
                if let Some(f) = format::supervise::request(
                    &header,
                    format::supervise::op::ROOT,
                    pid,
                    pid,
                    [0; 16],
                ) {
                    std::mem::forget(f);
                }
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            remove_ring();
            if let (true, Target::File(p)) = (created, &target) {
                // Nothing was written: leave no empty file of ours behind.
                if std::fs::metadata(p).is_ok_and(|m| m.len() == 0) {
                    let _ = std::fs::remove_file(p);
                }
            }
            eprintln!(
                "substrate-drain record: cannot run {}: {e}",
                a.cmd[0].to_string_lossy()
            );
            return ExitCode::from(if e.kind() == io::ErrorKind::NotFound {
                127
            } else {
                126
            });
        }
    };

    let mut follower = Follower::new(
        &ring,
        decode::Options {
            redact: !a.no_redact,
        },
    );
    // `-o - | head`: once the reader is gone, lines are dropped and the command runs on.
    let mut out = QuietPipe {
        out: &mut out,
        closed: false,
    };
    let mut status = None;
    let mut exited_at: Option<Instant> = None;
    let grace = Duration::from_secs_f64(a.grace.max(0.0));
    let pid = child.id() as i32;
    // Signals caught: the first is forwarded to CMD while it runs; once CMD has exited, or at
    // the second, recording stops (what is in the ring is still decoded).
    let mut signals = 0u32;
    let mut last_signal = 0;
    let mut done = |p: &mut follow::Progress<'_>| {
        let sig = follow::SIGNALLED.swap(0, Relaxed);
        if sig != 0 {
            signals += 1;
            last_signal = sig;
            if status.is_none() {
                // SAFETY: signalling our own child, which we have not reaped yet.
                unsafe { libc::kill(pid, sig) };
            }
        }
        if status.is_none() {
            if let Ok(Some(s)) = child.try_wait() {
                status = Some(s);
                exited_at = Some(Instant::now());
            }
        }
        if signals >= 2 {
            return true;
        }
        let Some(t) = exited_at else {
            return false;
        };
        if signals >= 1 || (!a.wait_all && t.elapsed() >= grace) {
            return true;
        }
        // The command has exited: the end is near, notice it promptly.
        p.ask_again_soon();
        // Everyone gone (a forked child that has not attached yet counts) and everything
        // read; a record still busy past that (its writer alive but detached, or a forged
        // header) is reported by the last pass.
        (p.caught_up() || t.elapsed() >= grace) && !p.traced_processes_alive()
    };
    let until = follow::Until {
        follow: true,
        done: Some(&mut done),
        busy_wait: Duration::ZERO,
        publish: true,
    };
    let r = follower.run(&mut out, until);
    // What the stopped writers left: decode to the end without waiting for live ones.
    let r = r.and_then(|_| {
        follower.run(
            &mut out,
            follow::Until {
                busy_wait: Duration::from_millis(200),
                ..follow::Until::caught_up()
            },
        )
    });
    // A forced end (a second signal) does not wait for CMD.
    let status = match status {
        Some(s) => Some(s),
        None if signals >= 2 => None,
        None => match child.wait() {
            Ok(s) => Some(s),
            Err(e) => return fail(format!("waiting for the command: {e}")),
        },
    };
    if let Err(e) = r.and_then(|_| out.flush()) {
        remove_ring();
        return fail(format!("writing {}: {e}", target.display()));
    }
    let closed = if out.closed { " (closed early)" } else { "" };
    if let Some(s) = supervisor {
        s.stop();
    }
    if let Some(e) = allocation.stop().filter(|e| {
        // A file system without fallocate(2): the pages came as they were touched.
        !matches!(e, format::RingError::Io { errno, .. } if *errno == libc::EOPNOTSUPP)
    }) {
        eprintln!(
            "substrate-drain record: warning: {} (a full file system kills a traced program's write with SIGBUS)",
            drain::ring_error(&ring_path, &e)
        );
    }
    remove_ring();
    let s = follower.stats();
    let kept = if a.keep_ring {
        format!(", ring kept at {}", ring_path.display())
    } else {
        String::new()
    };
    eprintln!(
        "substrate-drain: {} events, {} processes, {} lost, {} dropped -> {}{closed} (drain CPU {:.2}s){kept}",
        s.events,
        s.processes,
        s.lost,
        s.dropped,
        target.display(),
        own_cpu_secs()
    );
    still_running(&ring);
    if let Some(l) = follower.stats().unfinished {
        eprintln!(
            "substrate-drain: stopped before a record still being written (pos {}, {} bytes not read)",
            l.pos, l.bytes
        );
    }
    let Some(status) = status else {
        return ExitCode::from(128u8.wrapping_add(last_signal as u8));
    };
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c as u8),
        (None, Some(sig)) => ExitCode::from(128u8.wrapping_add(sig as u8)),
        _ => ExitCode::from(1),
    }
}

/// Name the traced processes still running when recording stopped: their later events are
/// not in the trace.
fn still_running(ring: &Ring) {
    let live: Vec<String> = ring
        .writers(&ProcLiveness)
        .into_iter()
        .filter(|w| w.alive)
        .map(|w| {
            let comm = std::fs::read_to_string(format!("/proc/{}/comm", w.pid)).unwrap_or_default();
            format!("{} {}", w.pid, comm.trim())
        })
        .collect();
    if live.is_empty() {
        return;
    }
    let shown: Vec<&str> = live.iter().take(10).map(String::as_str).collect();
    let more = if live.len() > 10 {
        format!(" and {} more", live.len() - 10)
    } else {
        String::new()
    };
    eprintln!(
        "substrate-drain: {} traced process{} still running when recording stopped, their later events are not in the trace: {}{more}",
        live.len(),
        if live.len() == 1 { "" } else { "es" },
        shown.join(", ")
    );
}

/// A `substrate-drain supervise` process of this recording.
struct SupervisorProcess(std::process::Child);

impl SupervisorProcess {
    /// End it (its tracees run on) and reap it.
    fn stop(mut self) {
        // SAFETY: signalling our own child, not reaped yet.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Start `substrate-drain supervise RING` and wait until it listens.
fn start_supervisor(
    ring: &Path,
    depth: crate::supervise::StaticDepth,
) -> io::Result<SupervisorProcess> {
    let exe = std::env::current_exe()?;
    let mut fds = [0; 2];
    // SAFETY: fds is valid for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors of ours.
    let (r, w) = unsafe {
        use std::os::fd::FromRawFd;
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    let wfd = {
        use std::os::fd::AsRawFd;
        w.as_raw_fd()
    };
    let mut cmd = Command::new(exe);
    cmd.arg("supervise")
        .arg("--ready-fd")
        .arg("3")
        .arg("--static")
        .arg(match depth {
            crate::supervise::StaticDepth::Process => "process",
            crate::supervise::StaticDepth::Full => "full",
        })
        .arg(ring)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .env_remove("LD_PRELOAD");
    // SAFETY: async-signal-safe calls only: the ready pipe becomes descriptor 3 (dup2 clears
    // close-on-exec), and a process group of its own keeps terminal signals (^C) for CMD.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(wfd, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            libc::setpgid(0, 0);
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(w);
    let mut b = [0u8; 1];
    use std::io::Read;
    match (&r).read(&mut b) {
        Ok(1) => Ok(SupervisorProcess(child)),
        _ => {
            let mut c = child;
            let _ = c.wait();
            Err(io::Error::other("it did not start"))
        }
    }
}

/// Whether `program` (searched in PATH as exec would) is a static executable the preload
/// cannot enter, and not setuid/setgid (such a program is never traced with ptrace: it would
/// lose its privileges).
fn is_static_program(program: &std::ffi::OsStr) -> bool {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{FileExt, PermissionsExt};
    let p = Path::new(program);
    let path = if program.as_bytes().contains(&b'/') {
        Some(p.to_path_buf())
    } else {
        std::env::var_os("PATH").and_then(|dirs| {
            std::env::split_paths(&dirs).map(|d| d.join(p)).find(|c| {
                c.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
        })
    };
    let Some(f) = path.and_then(|p| std::fs::File::open(p).ok()) else {
        return false;
    };
    if f.metadata()
        .is_ok_and(|m| m.permissions().mode() & 0o6000 != 0)
    {
        return false;
    }
    format::elf::is_static_executable(&mut |b, off| f.read_at(b, off).unwrap_or(0))
}
