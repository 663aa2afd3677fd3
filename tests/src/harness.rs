//! Running real programs under `substrate-drain record` and reading back their trace.
//!
//! [`tools`] builds the release drain and preload once per test binary (a nested
//! `cargo build --release`), [`compile`] builds a C program with the system compiler, and
//! [`record`] runs a command traced and parses `trace.jsonl`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

/// The workspace's target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Paths of the release drain and preload library, built on first use.
pub struct Tools {
    /// `substrate-drain`.
    pub drain: PathBuf,
    /// `libringbuf_preload.so`.
    pub preload: PathBuf,
}

/// Build (once) and locate the tools.
pub fn tools() -> &'static Tools {
    static T: OnceLock<Tools> = OnceLock::new();
    T.get_or_init(|| {
        let st = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "-q",
                "-p",
                "drain",
                "-p",
                "ringbuf-preload",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(
            st.success(),
            "cargo build --release of drain and preload failed"
        );
        let dir = target_dir().join("release");
        Tools {
            drain: dir.join("substrate-drain"),
            preload: dir.join("libringbuf_preload.so"),
        }
    })
}

/// Compile `src` (a file under `tests/c/`) into `dir` as `name` with extra compiler flags.
pub fn compile(dir: &Path, src: &str, name: &str, flags: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("c").join(src);
    // Library flags (-l…) must follow the source for the linker; the rest may precede it.
    let (libs, opts): (Vec<&str>, Vec<&str>) = flags.iter().partition(|f| f.starts_with("-l"));
    let o = Command::new("cc")
        .args(opts)
        .arg(&src)
        .args(libs)
        .arg("-o")
        .arg(&out)
        .arg("-lpthread")
        .output()
        .expect("run cc");
    assert!(
        o.status.success(),
        "cc {}: {}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// A traced run: the command's output and the decoded trace.
pub struct Run {
    /// Exit status, stdout and stderr of `substrate-drain record` (stdout is the command's).
    pub out: Output,
    /// Every line of trace.jsonl, parsed.
    pub lines: Vec<Value>,
}

impl Run {
    /// The command's stdout.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    /// Lines of one event type.
    pub fn of(&self, event_type: &str) -> Vec<&Value> {
        self.lines
            .iter()
            .filter(|l| l["event_type"] == event_type)
            .collect()
    }
    /// The argv of a line, as strings.
    pub fn argv(l: &Value) -> Vec<String> {
        l["argv"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
    /// `process_start` lines of images started by exec whose argv is exactly `argv` (a forked
    /// copy of a program has its argv too, but is not a new program).
    pub fn starts_with_argv(&self, argv: &[&str]) -> Vec<&Value> {
        self.of("process_start")
            .into_iter()
            .filter(|l| l["via"] == "exec" && Self::argv(l) == argv)
            .collect()
    }
    /// The image tree: does `child`'s chain of parent images reach `ancestor`'s span?
    pub fn descends(&self, child: &Value, ancestor: &Value) -> bool {
        let target = &ancestor["span_id"];
        let mut cur = child["parent_image"].clone();
        for _ in 0..64 {
            if cur.is_null() {
                return false;
            }
            if &cur == target {
                return true;
            }
            let next = self
                .of("process_start")
                .into_iter()
                .find(|l| l["span_id"] == cur)
                .map(|l| l["parent_image"].clone());
            match next {
                Some(n) => cur = n,
                None => return false,
            }
        }
        false
    }
    /// A compact dump of the trace for assertion messages.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        for l in &self.lines {
            let mut m = l.as_object().cloned().unwrap_or_default();
            for k in [
                "ts",
                "ts_unix_ns",
                "session_id",
                "component",
                "tid",
                "span_id",
                "parent_span",
                "parent_image",
                "cwd",
                "exe",
            ] {
                m.remove(k);
            }
            s.push_str(&Value::Object(m).to_string());
            s.push('\n');
        }
        s
    }
}

/// Run `cmd` under `substrate-drain record` in `dir`, with `extra` options before `--`.
pub fn record_with(dir: &Path, extra: &[&str], cmd: &[&str], env: &[(&str, &str)]) -> Run {
    let t = tools();
    let trace = dir.join(format!(
        "trace-{}.jsonl",
        std::process::id() as u64 * 1000
            + COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut c = Command::new(&t.drain);
    c.arg("record")
        .arg("-o")
        .arg(&trace)
        .arg("--preload")
        .arg(&t.preload);
    c.args(extra).arg("--").args(cmd).current_dir(dir);
    session_env(&mut c, env);
    let out = c.output().expect("run substrate-drain record");
    Run {
        out,
        lines: read_trace(&trace),
    }
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Give `c` the test's environment: no session variables inherited from outside, then `env`.
fn session_env(c: &mut Command, env: &[(&str, &str)]) {
    c.env_remove("LD_PRELOAD")
        .env_remove("SHIM_PARENT_SPAN")
        .env_remove("SHIM_SESSION_ID")
        .env_remove("SUBSTRATE_RING")
        .env_remove("SUBSTRATE_PARENT_IMAGE");
    for (k, v) in env {
        c.env(k, v);
    }
}

/// Every line of a trace file, parsed (a missing file is an empty trace).
fn read_trace(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("malformed line {l:?}: {e}")))
        .collect()
}

/// Run `cmd` traced with default options.
pub fn record(dir: &Path, cmd: &[&str]) -> Run {
    record_with(dir, &[], cmd, &[])
}

/// A traced run that `strace -ff` watched too (same processes, same pids).
pub struct Straced {
    /// The trace.
    pub run: Run,
    /// `(pid, argv)` of every successful `execve`/`execveat` of the traced tree, as strace saw
    /// them (the drain's own exec excluded).
    pub execs: Vec<(i64, Vec<String>)>,
}

/// A test's size knob from the environment (`SOAK_ROUNDS`, `FUZZ_ITERS`), or its CI default.
pub fn env_knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The first number on the line of `substrate-drain stat RING` that starts with `label`
/// (`dropped`, `overwritten`); 0 when absent.
pub fn stat_number(ring: &Path, label: &str) -> u64 {
    let o = Command::new(&tools().drain)
        .arg("stat")
        .arg(ring)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `substrate-drain ARGS INPUT`, which must succeed: its standard output.
pub fn drain_ok<A: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[A], input: &Path) -> Vec<u8> {
    let o = Command::new(&tools().drain)
        .args(args)
        .arg(input)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// `substrate-drain create EXTRA.. RING`, which must succeed.
pub fn create_ring(ring: &Path, extra: &[&str]) {
    let o = Command::new(&tools().drain)
        .arg("create")
        .args(extra)
        .arg(ring)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Build (if needed) and locate the release example `name` of the drain crate.
pub fn drain_example(name: &str) -> PathBuf {
    let _ = tools();
    let st = Command::new(env!("CARGO"))
        .args(["build", "--release", "-q", "-p", "drain", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(st.success(), "cargo build of example {name} failed");
    target_dir().join("release/examples").join(name)
}

/// Overwrite one control word of the ring at `ring` (`format::layout::ctl::*`) with `value`,
/// as a traced program that maps the ring could. `value` gets the current reservation
/// position and the capacity, so forgeries can be relative to them.
pub fn forge_control_word(ring: &Path, word: u64, value: impl Fn(u64, u64) -> u64) {
    use format::mem::Mem;
    let r = format::Ring::open(ring).expect("open the ring to forge a word");
    let g = r.geometry();
    let v = value(r.stats().reserve_pos, g.capacity);
    r.mem()
        .store(g.ctl(word), v, std::sync::atomic::Ordering::SeqCst);
}

/// Run `cmd` to completion or kill it after `limit`; `None` when it had to be killed. Output
/// past 16 MiB a stream is read and thrown away, so a runaway writer cannot exhaust memory.
pub fn output_within(cmd: &mut Command, limit: std::time::Duration) -> Option<Output> {
    use std::io::Read;
    fn keep_some(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let (mut kept, mut buf) = (vec![], [0u8; 65536]);
            while let Ok(n @ 1..) = r.read(&mut buf) {
                if kept.len() < 16 << 20 {
                    kept.extend_from_slice(&buf[..n]);
                }
            }
            kept
        })
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = keep_some(child.stdout.take().unwrap());
    let err = keep_some(child.stderr.take().unwrap());
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    Some(Output {
        status: status?,
        stdout,
        stderr,
    })
}

/// Run `cmd` under `strace -ff` *and* `substrate-drain record` at once, so both see the same
/// processes with the same pids.
pub fn record_straced(dir: &Path, cmd: &[&str], env: &[(&str, &str)]) -> Straced {
    let t = tools();
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let sdir = dir.join(format!("strace-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&sdir).unwrap();
    let trace = dir.join(format!("trace-straced-{}-{n}.jsonl", std::process::id()));
    let mut c = Command::new("strace");
    c.args([
        "-ff",
        "-qq",
        "-e",
        "trace=execve,execveat",
        "-s",
        "65535",
        "-o",
    ])
    .arg(sdir.join("st"))
    .arg("--")
    .arg(&t.drain)
    .arg("record")
    .arg("-o")
    .arg(&trace)
    .arg("--preload")
    .arg(&t.preload)
    .arg("--")
    .args(cmd)
    .current_dir(dir);
    session_env(&mut c, env);
    let out = c.output().expect("run strace (is it installed?)");
    let lines = read_trace(&trace);
    let mut execs = Vec::new();
    for f in std::fs::read_dir(&sdir).unwrap() {
        let f = f.unwrap().path();
        let pid: i64 = f
            .extension()
            .and_then(|e| e.to_str())
            .and_then(|e| e.parse().ok())
            .unwrap();
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            if !(line.starts_with("execve(") || line.starts_with("execveat("))
                || !line.ends_with("= 0")
            {
                continue;
            }
            if let Some(argv) = strace_argv(line) {
                if !argv.first().is_some_and(|a| a.ends_with("substrate-drain")) {
                    execs.push((pid, argv));
                }
            }
        }
    }
    Straced {
        run: Run { out, lines },
        execs,
    }
}

/// The argv array of an strace `execve(...)` line.
fn strace_argv(line: &str) -> Option<Vec<String>> {
    let b = line.as_bytes();
    // Skip the path (or dirfd, path) to the first '[' outside a string.
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        match b[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'[' if !in_str => break,
            _ => {}
        }
        i += 1;
    }
    i += 1;
    let mut argv = Vec::new();
    loop {
        while i < b.len() && (b[i] == b' ' || b[i] == b',') {
            i += 1;
        }
        if i >= b.len() || b[i] == b']' {
            return Some(argv);
        }
        if b[i] != b'"' {
            return None;
        }
        i += 1;
        let mut s = Vec::new();
        while i < b.len() && b[i] != b'"' {
            if b[i] == b'\\' && i + 1 < b.len() {
                i += 1;
                match b[i] {
                    b'n' => s.push(b'\n'),
                    b't' => s.push(b'\t'),
                    b'r' => s.push(b'\r'),
                    b'v' => s.push(11),
                    b'f' => s.push(12),
                    b'x' => {
                        let h = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
                        s.push(u8::from_str_radix(h, 16).ok()?);
                        i += 2;
                    }
                    d @ b'0'..=b'7' => {
                        let mut v = (d - b'0') as u32;
                        while i + 1 < b.len() && (b'0'..=b'7').contains(&b[i + 1]) && v < 32 {
                            i += 1;
                            v = v * 8 + (b[i] - b'0') as u32;
                        }
                        s.push(v as u8);
                    }
                    c => s.push(c),
                }
            } else {
                s.push(b[i]);
            }
            i += 1;
        }
        i += 1;
        if b.get(i..i + 3) == Some(b"...") {
            i += 3; // strace cut the string: -s is large enough that this does not happen
        }
        argv.push(String::from_utf8_lossy(&s).into_owned());
    }
}
