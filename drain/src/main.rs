//! `substrate-drain`: decode session rings into `trace.jsonl`, follow them live, run a command
//! under tracing (`record`), create rings and show their state (`stat`).
//!
//! A thin layer over the `drain` library (decoding, following, output): this binary holds the
//! command line and the jobs only it does, `record` and `stat`, and finding the preload library
//! `record` runs commands with (`preload`: on disk, or the copy embedded in this binary).

mod preload;
mod record;
mod stat;
mod supervise;

use drain::follow::Follower;
use drain::output::{Output, Target};
use drain::{decode, follow, ring_error, session_id, views};

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use format::{CreateOptions, Mode, Ring};

/// Decode substrate session rings into trace.jsonl, live or after the fact.
///
/// `substrate-drain record -- CMD` traces a command into trace.jsonl (the main job).
/// `substrate-drain [decode] RING` decodes a ring's records into JSON lines (stdout, or -o
/// FILE, appended to) and exits; with --follow it keeps decoding new records as they are
/// committed, like `tail -f`. Exit status 2 and one line on stderr for bad input.
#[derive(Parser)]
#[command(
    name = "substrate-drain",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Print the preload library `record` would use, and (on stderr) how it was found, then
    /// exit. Order: $SUBSTRATE_PRELOAD (alone when set); libringbuf_preload.so next to this
    /// program; ../lib/substrate/ and ../lib/ from it; else the library embedded in this
    /// program, written once (by content hash, atomically) to the cache $XDG_CACHE_HOME/substrate/
    /// (absolute), else ~/.cache/substrate/, else the private ring directory.
    #[arg(long)]
    print_preload_path: bool,
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
    /// Append lines to FILE (`-`: standard output, the default). The file may be shared with
    /// other sessions and drains: nothing in it is cut or rewritten, each line is written
    /// whole, a rotated file is noticed and its path reopened, and lines of this ring it
    /// already holds are not written again.
    #[arg(short, long, value_name = "FILE")]
    output: Option<OsString>,
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
    #[command(flatten)]
    filter: FilterArgs,
}

/// Which lines to write: the same filters as `show`. `lost` lines are always written.
#[derive(Args, Clone, Default)]
pub struct FilterArgs {
    /// Only events of these classes (comma-separated): process, file, object (shared objects
    /// loaded), net, dns, lost. `lost` lines are kept whatever the filter (a filtered trace
    /// still says what it is missing); `--events lost` alone keeps only them.
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(views::show::CLASSES))]
    pub events: Vec<String>,
    /// Leave out events whose path starts with PREFIX (repeatable), e.g. `--exclude-path /proc
    /// --exclude-path /sys --exclude-path /dev`.
    #[arg(long, value_name = "PREFIX")]
    pub exclude_path: Vec<String>,
}

impl FilterArgs {
    /// As the view's filter.
    pub fn filter(&self) -> views::show::Filter {
        views::show::Filter {
            classes: self.events.clone(),
            exclude_paths: self.exclude_path.clone(),
        }
    }
}

/// Export formats.
#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// Chrome trace-event JSON, for Perfetto UI and chrome://tracing.
    Chrome,
    /// The compilation database (compile_commands.json) Bear writes, from the compiler runs.
    CompileCommands,
    /// OpenTelemetry spans sent over OTLP/HTTP to --endpoint (a Collector, Jaeger, Tempo…).
    Otlp,
}

/// What a full ring does.
#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    /// Drop new records (counted and reported as `lost` lines).
    Discard,
    /// Reclaim the oldest records (the drain reports how many it missed).
    Overwrite,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Discard => Mode::Discard,
            ModeArg::Overwrite => Mode::Overwrite,
        }
    }
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
    /// Decode a ring into trace.jsonl lines (the same as the bare `substrate-drain RING`).
    Decode(DecodeArgs),
    /// Create an empty ring for a session (what substrate does through the format crate).
    Create(CreateArgs),
    /// Show a ring's header, fill, counters and writers.
    Stat {
        /// The ring file.
        ring: PathBuf,
    },
    /// Counts, files, failures, endpoints and lost records of a trace, in a screenful.
    ///
    /// Example: `substrate-drain summary trace.jsonl` (or a ring; `--json` for machines).
    Summary {
        /// A trace file (trace.jsonl) or a ring.
        input: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// How many entries of each list to show.
        #[arg(long, default_value = "10", value_name = "N")]
        top: usize,
    },
    /// The process tree: one line per program run, with duration and exit status.
    ///
    /// Example: `substrate-drain tree trace.jsonl`
    Tree {
        /// A trace file (trace.jsonl) or a ring.
        input: PathBuf,
        /// Cut lines to this many columns.
        #[arg(long, default_value = "120", value_name = "COLUMNS")]
        width: usize,
    },
    /// One self-contained HTML page: the process tree on a timeline, and the summary's tables.
    ///
    /// A row per process image (program and pid, under the image that started it), a bar from
    /// its start to its end coloured by how it ended, hover titles with argv, cwd, duration and
    /// status; then the files read, written, created and deleted, failed execs and opens,
    /// network endpoints and DNS names. The page loads nothing from anywhere and shows without
    /// JavaScript; its size is bounded (--max-images, --top).
    ///
    /// Example: `substrate-drain report -o report.html trace.jsonl`, then open report.html.
    Report {
        /// A trace file (trace.jsonl) or a ring.
        input: PathBuf,
        /// Where (`-`: standard output).
        #[arg(short, long, value_name = "FILE", default_value = "-")]
        output: OsString,
        /// How many entries of each table to show.
        #[arg(long, default_value = "50", value_name = "N")]
        top: usize,
        /// Show at most N process images on the timeline (the first started).
        #[arg(long, default_value = "5000", value_name = "N")]
        max_images: usize,
    },
    /// One human line per event, strace-like, flags and modes decoded.
    ///
    /// Example: `substrate-drain show --events file --exclude-path /proc trace.jsonl`
    Show {
        /// A trace file (trace.jsonl) or a ring.
        input: PathBuf,
        /// Only these classes of events (comma-separated): process, file, object (shared
        /// objects loaded), net, dns, lost.
        #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(views::show::CLASSES))]
        events: Vec<String>,
        /// Leave out events whose path starts with PREFIX (repeatable), e.g. /proc.
        #[arg(long, value_name = "PREFIX")]
        exclude_path: Vec<String>,
    },
    /// Convert a trace for other tools.
    ///
    /// Example: `substrate-drain export --format chrome -o trace.json trace.jsonl`, then open
    /// trace.json in https://ui.perfetto.dev or chrome://tracing; or `--format
    /// compile-commands -o compile_commands.json` for clangd and other tools; or `--format otlp
    /// --endpoint http://localhost:4318 trace.jsonl` to send the process tree as OpenTelemetry
    /// spans to a Collector, Jaeger, Tempo or Honeycomb (OTLP/HTTP or HTTPS, e.g. `--endpoint
    /// https://api.honeycomb.io --header x-honeycomb-team=KEY`; a one-line summary on stderr,
    /// exit status 1 when the endpoint does not take them).
    Export {
        /// A trace file (trace.jsonl) or a ring.
        input: PathBuf,
        /// What to write.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Where (`-`: standard output; not with otlp).
        #[arg(short, long, value_name = "FILE", default_value = "-")]
        output: OsString,
        #[command(flatten)]
        otlp: views::otlp::Args,
    },
    /// Follow, with ptrace, the programs of a session the preload cannot enter.
    ///
    /// Static executables (Go programs, `-static` builds, busybox) ignore LD_PRELOAD. When a
    /// traced process is about to exec one, the preload asks this supervisor (found through
    /// the ring) to follow it: every process of that subtree then gets process_start, exec,
    /// fork and process_exit lines joined to the tree, until a program the preload can enter
    /// takes over again. `record` starts one itself; substrate runs one next to its
    /// `--follow` drain. Ends on SIGTERM, SIGINT or SIGHUP; the programs it follows run on.
    Supervise(supervise::SuperviseArgs),
    /// Remove this user's rings of sessions that are over.
    ///
    /// Looks in the directory `record` makes rings in ($XDG_RUNTIME_DIR, else
    /// /dev/shm/substrate-UID) for `substrate-*.ring` files whose creator is dead, with no
    /// live writer and no live drain (a `record` that was SIGKILLed leaves one), and removes
    /// them. `record` does the same when it starts.
    Gc {
        /// Look in DIR instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print a shell completion script.
    ///
    /// Example: `substrate-drain completions bash > ~/.local/share/bash-completion/completions/substrate-drain`
    /// (zsh: into a directory of `$fpath` as `_substrate-drain`; fish:
    /// `~/.config/fish/completions/substrate-drain.fish`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), of the command and each subcommand.
    ///
    /// Example: `substrate-drain man > ~/.local/share/man/man1/substrate-drain.1`, then
    /// `man substrate-drain`.
    Man,
}

#[derive(Args)]
struct CreateArgs {
    /// Data capacity in bytes (power of two; suffixes K, M, G).
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    size: u64,
    /// What a full ring does.
    #[arg(long, value_enum, default_value = "discard")]
    mode: ModeArg,
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

/// The manual page: the command's (`clap_mangen`), then a section per subcommand with its
/// synopsis, description and options as subsections.
fn man() -> ExitCode {
    let cmd = <Cli as clap::CommandFactory>::command().name("substrate-drain");
    let mut out = Vec::new();
    if let Err(e) = clap_mangen::Man::new(cmd.clone()).render(&mut out) {
        return fail(format!("man: {e}"));
    }
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
        let name = format!("substrate-drain {}", sub.get_name());
        let page = clap_mangen::Man::new(
            sub.clone()
                .display_name(name.clone())
                .bin_name(name.clone()),
        );
        let mut part = Vec::new();
        let rendered = page
            .render_synopsis_section(&mut part)
            .and_then(|()| page.render_description_section(&mut part))
            .and_then(|()| page.render_options_section(&mut part));
        if rendered.is_err() {
            continue;
        }
        let _ = writeln!(out, ".SH \"{}\"", name.to_uppercase());
        for line in String::from_utf8_lossy(&part).lines() {
            let line = line
                .strip_prefix(".SH ")
                .map_or(line.to_string(), |t| format!(".SS {t}"));
            let _ = writeln!(out, "{line}");
        }
    }
    write_stdout(&out, "man")
}

/// Write `bytes` to standard output; a closed pipe (`| head`) is not an error.
fn write_stdout(bytes: &[u8], what: &str) -> ExitCode {
    match io::stdout().write_all(bytes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(format!("{what}: {e}")),
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("substrate-drain: {msg}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.print_preload_path {
        return match preload::find_preload(None) {
            Ok(f) => {
                println!("{}", f.path.display());
                eprintln!("substrate-drain: {}", f.how);
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        };
    }
    match cli.cmd {
        Some(Cmd::Record(a)) => record::run(a),
        Some(Cmd::Create(a)) => create(a),
        Some(Cmd::Stat { ring }) => stat::run(&ring),
        Some(Cmd::Decode(a)) => decode_cmd(a),
        Some(Cmd::Supervise(a)) => supervise::run(a),
        Some(Cmd::Gc { dir }) => gc(dir),
        Some(Cmd::Summary { input, json, top }) => summary(&input, json, top),
        Some(Cmd::Tree { input, width }) => tree(&input, width),
        Some(Cmd::Report {
            input,
            output,
            top,
            max_images,
        }) => report(&input, &output, views::report::Options { top, max_images }),
        Some(Cmd::Show {
            input,
            events,
            exclude_path,
        }) => show(&input, events, exclude_path),
        Some(Cmd::Export {
            format: ExportFormat::Chrome | ExportFormat::CompileCommands,
            otlp,
            ..
        }) if otlp.given() => fail("the OTLP options go with --format otlp"),
        Some(Cmd::Export {
            input,
            format: ExportFormat::Chrome,
            output,
            ..
        }) => export_chrome(&input, &output),
        Some(Cmd::Export {
            input,
            format: ExportFormat::CompileCommands,
            output,
            ..
        }) => export_compdb(&input, &output),
        Some(Cmd::Completions { shell }) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            // Into memory first: the generator panics on a write error (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "substrate-drain", &mut script);
            write_stdout(&script, "completions")
        }
        Some(Cmd::Man) => man(),
        Some(Cmd::Export {
            input,
            format: ExportFormat::Otlp,
            output,
            otlp,
        }) => export_otlp(&input, &output, &otlp),
        None => decode_cmd(cli.decode),
    }
}

/// Quiet success when the reader of standard output went away (`| head`).
fn written(r: io::Result<()>, what: &str) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(format!("writing {what}: {e}")),
    }
}

fn summary(input: &std::path::Path, json: bool, top: usize) -> ExitCode {
    // Counted on the threads that parse; starts and exits here, in order.
    let mut b = views::summary::Builder::default();
    let r = match views::build(input, &mut b) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let s = b.finish(r.skipped);
    let text = if json {
        serde_json::to_string_pretty(&s).unwrap_or_default() + "\n"
    } else {
        views::summary::text(&s, top)
    };
    // The process ends now: freeing every key of a large trace's summary one by one would
    // only delay that.
    std::mem::forget(s);
    written(io::stdout().write_all(text.as_bytes()), "standard output")
}

fn tree(input: &std::path::Path, width: usize) -> ExitCode {
    // File and network events counted on the threads that parse; the tree built here.
    let mut b = views::tree::Builder::default();
    if let Err(e) = views::build(input, &mut b) {
        return fail(e);
    }
    let (roots, children) = b.finish();
    let text = views::tree::text(&roots, &children, width);
    written(io::stdout().write_all(text.as_bytes()), "standard output")
}

fn report(
    input: &std::path::Path,
    output: &std::ffi::OsStr,
    opts: views::report::Options,
) -> ExitCode {
    let mut b = views::report::Builder::new(opts);
    let r = match views::build(input, &mut b) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let page = b.finish(r.skipped, &input.to_string_lossy());
    let target = Target::parse(output);
    let r = match &target {
        Target::Stdout => io::stdout().lock().write_all(page.as_bytes()),
        Target::File(p) => std::fs::write(p, page),
    };
    written(r, &target.display())
}

fn show(input: &std::path::Path, classes: Vec<String>, exclude_paths: Vec<String>) -> ExitCode {
    let filter = views::show::Filter {
        classes,
        exclude_paths,
    };
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut err = None;
    // With the first event's time known, each line but its program is written where it is
    // parsed; the program (which needs the image's start, read before) here.
    if let Some(t0) = views::first_event_ts(input) {
        let mut w = views::show::Writer::new(&mut out);
        let new = || views::show::Lines::new(&filter, t0);
        let r = views::for_each_event_with(input, &new, |handed| {
            if err.is_none() {
                err = w.add(handed).err();
            }
        });
        if let Err(e) = r {
            return fail(e);
        }
        return written(err.map_or_else(|| out.flush(), Err), "standard output");
    }
    let mut programs = std::collections::HashMap::new();
    let mut t0 = None;
    // What each event did is written on the threads that parse; the time, pid and program
    // (which need the events before) here.
    let render = |ev: &drain::event::Event<'_>, out: &mut Vec<u8>| {
        if filter.keeps(ev) {
            out.extend_from_slice(views::show::what(ev).as_bytes());
        }
    };
    let r = views::for_each_event_rendered(input, &render, |ev, what| {
        if err.is_some() {
            return;
        }
        let span = ev.span_id.as_deref().unwrap_or_default();
        if ev.event_type == "process_start" {
            programs.insert(span.to_string(), views::program(ev));
        }
        let t0 = *t0.get_or_insert(ev.ts_unix_ns);
        if filter.keeps(ev) {
            let prog = programs.get(span).map_or("?", String::as_str);
            let what = String::from_utf8_lossy(what);
            if let Err(e) = views::show::write_line(&mut out, ev, t0, prog, &what) {
                err = Some(e);
            }
        }
    });
    if let Err(e) = r {
        return fail(e);
    }
    written(err.map_or_else(|| out.flush(), Err), "standard output")
}

fn export_chrome(input: &std::path::Path, output: &std::ffi::OsStr) -> ExitCode {
    let target = Target::parse(output);
    // One concrete buffer in front (the many small writes are inlined), the target behind.
    let out: Box<dyn Write> = match &target {
        Target::Stdout => Box::new(io::stdout().lock()),
        Target::File(p) => match std::fs::File::create(p) {
            Ok(f) => Box::new(f),
            Err(e) => return fail(format!("{}: {e}", p.display())),
        },
    };
    let out = io::BufWriter::with_capacity(1 << 16, out);
    // With the first event's time known, instants are written whole where they are parsed.
    let t0 = views::first_event_ts(input);
    let mut w = match views::chrome::Writer::starting_at(out, t0) {
        Ok(w) => w,
        Err(e) => return fail(format!("writing {}: {e}", target.display())),
    };
    let mut err = None;
    // The instants are written on the threads that parse; the images' slices here.
    let new = || views::chrome::Instants::starting_at(t0);
    let r = views::for_each_event_with(input, &new, |handed| {
        if err.is_none() {
            err = w.add_rendered(handed).err();
        }
    });
    match r {
        Ok((_, works)) => works.into_iter().for_each(|work| w.merge(work)),
        Err(e) => return fail(e),
    }
    let r = match err {
        Some(e) => Err(e),
        None => w.finish().map(|_| ()),
    };
    written(r, &target.display())
}

fn export_compdb(input: &std::path::Path, output: &std::ffi::OsStr) -> ExitCode {
    let mut db = views::compdb::Database::default();
    if let Err(e) = views::for_each_event(input, |ev| db.add(ev)) {
        return fail(e);
    }
    let target = Target::parse(output);
    let r = match &target {
        Target::Stdout => db.write(io::BufWriter::new(io::stdout().lock())),
        Target::File(p) => match std::fs::File::create(p) {
            Ok(f) => db.write(io::BufWriter::new(f)),
            Err(e) => return fail(format!("{}: {e}", p.display())),
        },
    };
    written(r, &target.display())
}

fn export_otlp(
    input: &std::path::Path,
    output: &std::ffi::OsStr,
    a: &views::otlp::Args,
) -> ExitCode {
    if output != "-" {
        return fail("--format otlp sends to --endpoint; it writes no file (-o)");
    }
    match views::otlp::export(input, a) {
        Ok(r) => {
            for w in &r.warnings {
                eprintln!("substrate-drain: {w}");
            }
            eprintln!("substrate-drain: {r}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("substrate-drain: {}", e.message);
            ExitCode::from(e.status)
        }
    }
}

fn gc(dir: Option<PathBuf>) -> ExitCode {
    let dir = match dir.map_or_else(drain::rings::private_ring_dir, Ok) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let removed = drain::rings::collect(&dir);
    let mut failed = false;
    for c in &removed {
        match &c.error {
            None => println!("removed {} ({} bytes)", c.path.display(), c.bytes),
            Some(e) => {
                failed = true;
                eprintln!("substrate-drain: {}: {e}", c.path.display());
            }
        }
    }
    let freed: u64 = removed
        .iter()
        .filter(|c| c.error.is_none())
        .map(|c| c.bytes)
        .sum();
    eprintln!(
        "substrate-drain gc: {} stale ring{} removed from {}, {} MiB freed",
        removed.iter().filter(|c| c.error.is_none()).count(),
        if removed.len() == 1 { "" } else { "s" },
        dir.display(),
        freed >> 20
    );
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn create(a: CreateArgs) -> ExitCode {
    let sid = match session_id(a.session_id.as_deref()) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let opts = CreateOptions {
        capacity: a.size,
        mode: a.mode.into(),
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

/// `name` is a misspelt subcommand rather than a ring path: no such file, no `/` or `.`, and
/// within two edits of a subcommand.
fn misspelt_subcommand(name: &std::path::Path) -> Option<String> {
    let n = name.to_str()?;
    if name.exists() || n.contains(['/', '.']) {
        return None;
    }
    // The subcommands as the parser knows them (the visible ones), so this list cannot drift.
    let cmd = <Cli as clap::CommandFactory>::command();
    cmd.get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| (edit_distance(n, c.get_name()), c.get_name()))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, c)| c.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// How often `--follow --until-done` asks whether the session's processes are still alive.
const LIVENESS_EVERY: Duration = Duration::from_millis(100);

fn decode_cmd(a: DecodeArgs) -> ExitCode {
    let Some(path) = a.ring else {
        return fail("no ring given (see `substrate-drain --help`)");
    };
    if let Some(c) = misspelt_subcommand(&path) {
        return fail(format!(
            "`{}` is neither a ring file nor a subcommand; did you mean `{c}`?",
            path.display()
        ));
    }
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
    let target = a.output.as_deref().map_or(Target::Stdout, Target::parse);
    let mut follower = Follower::new(
        &ring,
        decode::Options {
            redact: !a.no_redact,
        },
    );
    if let Target::File(p) = &target {
        if let Err(e) = follower.resume_into(p) {
            return fail(format!("{}: {e}", p.display()));
        }
    }
    let mut out = match Output::open(target.clone()) {
        Ok(o) => o,
        Err(e) => return fail(format!("{}: {e}", target.display())),
    };
    out.set_filter(a.filter.filter());
    if a.follow {
        follow::catch_signals();
    }
    let until_done = a.until_done;
    let mut seen_writer = false;
    // While writers live, whether they still do is asked only every so often (it reads every
    // writer slot used so far), not at each wake-up.
    let mut alive_at: Option<std::time::Instant> = None;
    let mut done = |p: &mut follow::Progress<'_>| {
        if follow::SIGNALLED.load(std::sync::atomic::Ordering::Relaxed) != 0 {
            return true;
        }
        if !until_done || !p.caught_up() {
            return false;
        }
        seen_writer |= p.ring().stats().attaches > 0;
        if !seen_writer || alive_at.is_some_and(|t| t.elapsed() < LIVENESS_EVERY) {
            return false;
        }
        if p.traced_processes_alive() {
            alive_at = Some(std::time::Instant::now());
            return false;
        }
        true
    };
    let until = follow::Until {
        follow: a.follow,
        done: Some(&mut done),
        busy_wait: Duration::from_millis(1000),
        publish: a.follow,
    };
    let r = follower.run(&mut out, until);
    if let Some(l) = follower.stats().unfinished {
        eprintln!(
            "substrate-drain: {}: stopped before a record a live writer has not finished (pos {}, {} bytes not read); decode again once it is done, or --follow",
            path.display(),
            l.pos,
            l.bytes
        );
    }
    match r {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that went away (`| head`) is not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(format!("writing {}: {e}", target.display())),
    }
}
