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
use format::{CreateOptions, Mode, ProcLiveness, Reader, ReaderOptions, Ring, Start};

use drain::{decode, follow, session_id};

use crate::parse_size;

/// Arguments of `record`.
#[derive(Args)]
#[allow(rustdoc::broken_intra_doc_links)] // doc comments here are `--help` text
pub struct RecordArgs {
    /// Where to write the trace.
    #[arg(short, long, value_name = "FILE", default_value = "trace.jsonl")]
    output: PathBuf,
    /// Create the ring at PATH instead of a private temporary name (it must not exist).
    #[arg(long, value_name = "PATH")]
    ring: Option<PathBuf>,
    /// Ring capacity in bytes (power of two; K, M, G suffixes).
    #[arg(long, value_name = "BYTES", default_value = "64M", value_parser = parse_size)]
    size: u64,
    /// What a full ring does: `discard` new records (counted) or `overwrite` the oldest.
    #[arg(long, default_value = "discard", value_parser = crate::parse_mode)]
    mode: Mode,
    /// Keep the ring file after the run (its path is printed in the summary).
    #[arg(long)]
    keep_ring: bool,
    /// The preload library. Default: $SUBSTRATE_PRELOAD, else libringbuf_preload.so next to
    /// this program.
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
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    cmd: Vec<OsString>,
}

fn find_preload(explicit: Option<&Path>) -> Result<PathBuf, String> {
    let p = match explicit {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("SUBSTRATE_PRELOAD") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe()
                .map_err(|e| format!("cannot find own path: {e}"))?
                .with_file_name("libringbuf_preload.so"),
        },
    };
    if !p.is_file() {
        return Err(format!(
            "preload library {} not found (build it with `cargo build --release`, or pass --preload)",
            p.display()
        ));
    }
    std::fs::canonicalize(&p).map_err(|e| format!("{}: {e}", p.display()))
}

/// Whether `d` is a directory (not a symlink) owned by this user with mode 0700.
fn private_dir(d: &Path) -> bool {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::symlink_metadata(d).is_ok_and(|m| {
        // SAFETY: geteuid has no preconditions.
        m.is_dir()
            && m.uid() == unsafe { libc::geteuid() }
            && m.permissions().mode() & 0o777 == 0o700
    })
}

/// A directory only this user can use: `$XDG_RUNTIME_DIR` if it is one, else
/// `/dev/shm/substrate-UID` (or the same under the temporary directory), created 0700 and
/// refused if someone else made it.
fn private_ring_dir() -> Result<PathBuf, String> {
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        if private_dir(&d) {
            return Ok(d);
        }
    }
    let base = Some(PathBuf::from("/dev/shm"))
        .filter(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    // SAFETY: geteuid has no preconditions.
    let d = base.join(format!("substrate-{}", unsafe { libc::geteuid() }));
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(&d) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("{}: {e}", d.display())),
    }
    if !private_dir(&d) {
        return Err(format!(
            "{} is not a private directory (owned by you, mode 0700); remove it or pass --ring",
            d.display()
        ));
    }
    Ok(d)
}

fn private_ring_path() -> Result<PathBuf, String> {
    let dir = private_ring_dir()?;
    let mut r = [0u8; 8];
    if !format::sys::getrandom(&mut r) {
        r = (format::sys::clock_ns(libc::CLOCK_MONOTONIC) ^ std::process::id() as u64)
            .to_le_bytes();
    }
    Ok(dir.join(format!(
        "substrate-{}-{:016x}.ring",
        std::process::id(),
        u64::from_le_bytes(r)
    )))
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

/// Run `record`.
pub fn run(a: RecordArgs) -> ExitCode {
    let preload = match find_preload(a.preload.as_deref()) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let sid = match session_id(None) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let ring_path = match a.ring.clone().map_or_else(private_ring_path, Ok) {
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
        mode: a.mode,
        session_id: sid,
        ..Default::default()
    };
    let ring = match Ring::create(&ring_path, &opts) {
        Ok(r) => r,
        Err(e) => return fail(drain::ring_error(&ring_path, &e)),
    };
    let remove_ring = || {
        if !a.keep_ring {
            let _ = std::fs::remove_file(&ring_path);
        }
    };
    let out = match std::fs::File::create(&a.output) {
        Ok(f) => f,
        Err(e) => {
            remove_ring();
            return fail(format!("{}: {e}", a.output.display()));
        }
    };
    let mut out = io::BufWriter::with_capacity(1 << 16, out);

    let mut preload_env: OsString = preload.clone().into_os_string();
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        preload_env.push(":");
        preload_env.push(old);
    }
    follow::catch_signals();
    let mut cmd = Command::new(&a.cmd[0]);
    cmd.args(&a.cmd[1..])
        .env("LD_PRELOAD", &preload_env)
        .env("SUBSTRATE_RING", &ring_path);
    if std::env::var_os("SHIM_SESSION_ID").is_none() {
        cmd.env("SHIM_SESSION_ID", format::ids::uuid_string(&sid));
    }
    // The child gets default dispositions for the signals the drain catches.
    // SAFETY: only async-signal-safe calls (sigaction) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
                libc::signal(s, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            remove_ring();
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

    let mut dec = decode::Decoder::new(
        &ring,
        decode::Options {
            redact: !a.no_redact,
        },
    );
    let mut reader = Reader::new(
        &ring,
        ReaderOptions {
            start: Start::Oldest,
            ..Default::default()
        },
    );
    let mut status = None;
    let mut exited_at: Option<Instant> = None;
    let grace = Duration::from_secs_f64(a.grace.max(0.0));
    let pid = child.id() as i32;
    let mut done = |ring: &Ring, caught_up: bool| {
        let sig = follow::SIGNALLED.swap(0, Relaxed);
        if sig != 0 && status.is_none() {
            // SAFETY: signalling our own child, which we have not reaped yet.
            unsafe { libc::kill(pid, sig) };
        }
        if status.is_none() {
            if let Ok(Some(s)) = child.try_wait() {
                status = Some(s);
                exited_at = Some(Instant::now());
            }
        }
        let Some(t) = exited_at else {
            return false;
        };
        if !caught_up {
            return false;
        }
        !ring.any_writer_alive(&ProcLiveness) || (!a.wait_all && t.elapsed() >= grace)
    };
    let until = follow::Until {
        follow: true,
        done: &mut done,
        busy_wait: Duration::ZERO,
        publish: true,
    };
    let r = follow::run(&mut reader, &mut dec, &mut out, until);
    // What the stopped writers left: decode to the end without waiting for live ones.
    let r = r.and_then(|_| {
        follow::run(
            &mut reader,
            &mut dec,
            &mut out,
            follow::Until {
                follow: false,
                done: &mut |_, _| true,
                busy_wait: Duration::from_millis(200),
                publish: true,
            },
        )
    });
    let status = match status {
        Some(s) => s,
        None => match child.wait() {
            Ok(s) => s,
            Err(e) => return fail(format!("waiting for the command: {e}")),
        },
    };
    if let Err(e) = r.and_then(|_| out.flush()) {
        remove_ring();
        return fail(format!("writing {}: {e}", a.output.display()));
    }
    remove_ring();
    let s = &dec.stats;
    let kept = if a.keep_ring {
        format!(", ring kept at {}", ring_path.display())
    } else {
        String::new()
    };
    eprintln!(
        "substrate-drain: {} events, {} processes, {} lost, {} dropped -> {} (drain CPU {:.2}s){kept}",
        s.events,
        s.processes,
        s.lost,
        s.dropped,
        a.output.display(),
        own_cpu_secs()
    );
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c as u8),
        (None, Some(sig)) => ExitCode::from(128u8.wrapping_add(sig as u8)),
        _ => ExitCode::from(1),
    }
}
