//! `substrate-drain`: decode session rings into `trace.jsonl`, follow them live, run a command
//! under tracing (`record`), create rings and show their state (`stat`).
//!
//! A thin layer over the `drain` library (decoding, following, output): this binary holds the
//! command line and the jobs only it does, `record` and `stat`.

mod record;
mod stat;

use drain::{decode, follow, ring_error, session_id};

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use format::{CreateOptions, Mode, Reader, ReaderOptions, Ring, Start};

/// Decode substrate session rings into trace.jsonl, live or after the fact.
///
/// With a RING and no command: decode the ring's records into JSON lines (stdout, or -o FILE)
/// and exit; with --follow, keep decoding new records as they are committed, like `tail -f`.
/// Exit status 2 and one line on stderr for a file that is not a usable ring.
#[derive(Parser)]
#[command(
    name = "substrate-drain",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    decode: DecodeArgs,
}

#[derive(Args)]
#[allow(rustdoc::broken_intra_doc_links)] // doc comments here are `--help` text
struct DecodeArgs {
    /// The ring file to decode.
    ring: Option<PathBuf>,
    /// Write lines to FILE instead of stdout. With --follow, an existing FILE is appended to,
    /// and a restarted follow neither repeats nor skips a line.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Keep decoding new records as they are committed, until interrupted (SIGINT/SIGTERM).
    /// Starts where the last follow of this ring stopped.
    #[arg(short, long)]
    follow: bool,
    /// With --follow: stop once every writer of the session has gone and all is decoded.
    #[arg(long, requires = "follow")]
    until_done: bool,
    /// Keep argument values that look like secrets (default: replaced by [REDACTED]).
    #[arg(long)]
    no_redact: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run CMD with tracing and write its trace (the main job).
    ///
    /// Creates a private ring, starts CMD with the preload library, decodes live into FILE,
    /// and when CMD has exited and its last traced process is gone, removes the ring, prints a
    /// one-line summary on stderr and exits with CMD's exit status (128+N if killed by signal
    /// N). SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded to CMD.
    Record(record::RecordArgs),
    /// Create an empty ring for a session (what substrate does through the format crate).
    Create(CreateArgs),
    /// Show a ring's header, fill, counters and writers.
    Stat {
        /// The ring file.
        ring: PathBuf,
    },
}

#[derive(Args)]
struct CreateArgs {
    /// Data capacity in bytes (power of two; suffixes K, M, G).
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    size: u64,
    /// What a full ring does: `discard` new records (counted), or `overwrite` the oldest.
    #[arg(long, default_value = "discard", value_parser = parse_mode)]
    mode: Mode,
    /// Session id (UUID) stored in the header; default: SHIM_SESSION_ID, else a new UUIDv7.
    #[arg(long)]
    session_id: Option<String>,
    /// Path of the new ring (must not exist).
    ring: PathBuf,
}

/// Parse `64M`, `1G`, `65536`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mul) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1 << 20),
        Some(b'g' | b'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("`{s}` is not a size (bytes, or a number with K, M or G)"))
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    match s {
        "discard" => Ok(Mode::Discard),
        "overwrite" => Ok(Mode::Overwrite),
        _ => Err(format!("`{s}` is not a mode (discard or overwrite)")),
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("substrate-drain: {msg}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Some(Cmd::Record(a)) => record::run(a),
        Some(Cmd::Create(a)) => create(a),
        Some(Cmd::Stat { ring }) => stat::run(&ring),
        None => decode_cmd(cli.decode),
    }
}

fn create(a: CreateArgs) -> ExitCode {
    let sid = match session_id(a.session_id.as_deref()) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let opts = CreateOptions {
        capacity: a.size,
        mode: a.mode,
        session_id: sid,
        ..Default::default()
    };
    match Ring::create(&a.ring, &opts) {
        Ok(_) => {
            println!("{}", a.ring.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(ring_error(&a.ring, &e)),
    }
}

fn decode_cmd(a: DecodeArgs) -> ExitCode {
    let Some(path) = a.ring else {
        return fail("no ring given (see `substrate-drain --help`)");
    };
    // A follow publishes its position (read-write); a one-off decode never modifies the ring.
    let ring = if a.follow {
        Ring::open(&path).or_else(|_| Ring::open_read_only(&path))
    } else {
        Ring::open_read_only(&path)
    };
    let ring = match ring {
        Ok(r) => r,
        Err(e) => return fail(ring_error(&path, &e)),
    };
    let publish = a.follow && ring.writable();
    let opts = decode::Options {
        redact: !a.no_redact,
    };
    let mut dec = decode::Decoder::new(&ring, opts);
    let start = if publish {
        // Re-read from the oldest record to learn spans and directories, writing nothing
        // below the published position.
        dec.mute_below = ring.consumer_position();
        if let Some(out) = &a.output {
            match follow::resume_output(out, dec.mute_below) {
                Ok(s) => dec.skip = s,
                Err(e) => return fail(format!("{}: {e}", out.display())),
            }
        }
        Start::Oldest
    } else {
        Start::Oldest
    };
    let mut reader = Reader::new(
        &ring,
        ReaderOptions {
            start,
            ..Default::default()
        },
    );
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(a.follow)
                .write(true)
                .truncate(!a.follow)
                .open(p);
            match f {
                Ok(f) => Box::new(io::BufWriter::with_capacity(1 << 16, f)),
                Err(e) => return fail(format!("{}: {e}", p.display())),
            }
        }
        None => Box::new(io::BufWriter::with_capacity(1 << 16, io::stdout().lock())),
    };
    if a.follow {
        follow::catch_signals();
    }
    let until_done = a.until_done;
    let mut seen_writer = false;
    let mut done = |ring: &Ring, caught_up: bool| {
        if follow::SIGNALLED.load(std::sync::atomic::Ordering::Relaxed) != 0 {
            return true;
        }
        if !until_done || !caught_up {
            return false;
        }
        let st = ring.stats();
        seen_writer |= st.attaches > 0;
        seen_writer && !ring.any_writer_alive(&format::ProcLiveness)
    };
    let until = follow::Until {
        follow: a.follow,
        done: &mut done,
        busy_wait: Duration::from_millis(1000),
        publish,
    };
    match follow::run(&mut reader, &mut dec, &mut out, until) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(format!("writing output: {e}")),
    }
}
