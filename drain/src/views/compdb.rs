//! `export --format compile-commands`: the compilation database (`compile_commands.json`,
//! as Bear writes it) from the compiler runs of a trace.
//!
//! Every program started by exec whose name is a C or C++ compiler driver (`cc`, `c++`, `gcc`,
//! `g++`, `clang`, `clang++`, with a target prefix or a version suffix such as
//! `x86_64-linux-gnu-gcc-12`) and that compiles at least one source file gives one entry per
//! source file, built the way Bear 3 builds them:
//!
//! - `arguments`: the compiler as it was found (`/usr/bin/cc`, not the file the link points
//!   to), `-c` when the command did not have it (a compile-and-link), the other arguments in
//!   their order without the source files and the output, then `-o OUTPUT` if there was one,
//!   then the source file;
//! - `directory`: the working directory; `file` and `output`: made absolute against it.
//!
//! Runs that only preprocess (`-E`, `-M`, `-MM`) or only link give no entry. An entry seen
//! twice is written once.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::event::Event;

/// One compilation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Entry {
    /// The compiler and its arguments.
    pub arguments: Vec<String>,
    /// Working directory.
    pub directory: String,
    /// The source file, absolute.
    pub file: String,
    /// The output file, absolute, when `-o` named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// Compiler driver names (after a target prefix and a version suffix are taken off).
const DRIVERS: [&str; 6] = ["cc", "c++", "gcc", "g++", "clang", "clang++"];

/// Source file name endings of C, C++, Objective-C and assembler.
const SOURCES: [&str; 16] = [
    ".c", ".cc", ".cp", ".cpp", ".cxx", ".c++", ".C", ".CPP", ".i", ".ii", ".s", ".S", ".sx", ".m",
    ".mm", ".cu",
];

/// Options whose value is the next argument.
const WITH_VALUE: [&str; 22] = [
    "-I",
    "-D",
    "-U",
    "-include",
    "-imacros",
    "-isystem",
    "-iquote",
    "-idirafter",
    "-iprefix",
    "-isysroot",
    "-x",
    "-MF",
    "-MT",
    "-MQ",
    "-L",
    "-Xlinker",
    "-Xassembler",
    "-Xpreprocessor",
    "-aux-info",
    "-T",
    "-u",
    "--param",
];

/// Whether `program` (`argv[0]` or a path) names a compiler driver.
pub fn is_compiler(program: &str) -> bool {
    let name = program.rsplit('/').next().unwrap_or(program);
    // A version suffix: gcc-12, clang-16, gcc-12.2.
    let name = match name.rsplit_once('-') {
        Some((head, v)) if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.') => {
            head
        }
        _ => name,
    };
    DRIVERS
        .iter()
        .any(|d| name == *d || name.strip_suffix(d).is_some_and(|p| p.ends_with('-')))
}

fn is_source(arg: &str) -> bool {
    !arg.starts_with('-') && SOURCES.iter().any(|s| arg.ends_with(s))
}

fn absolute(dir: &str, p: &str) -> String {
    if p.starts_with('/') {
        p.to_string()
    } else {
        Path::new(dir).join(p).to_string_lossy().into_owned()
    }
}

/// The compiler as it was found: argv[0] made absolute, or looked up next to the executable
/// and then in `PATH` (the first candidate that is the same file as `exe`), else `exe`.
fn compiler_path(argv0: &str, exe: &str, dir: &str) -> String {
    if argv0.contains('/') {
        return absolute(dir, argv0);
    }
    let target = std::fs::canonicalize(exe).ok();
    let mut dirs: Vec<PathBuf> = Path::new(exe)
        .parent()
        .map(Path::to_path_buf)
        .into_iter()
        .collect();
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    for d in dirs {
        let c = d.join(argv0);
        if target.is_some() && std::fs::canonicalize(&c).ok() == target {
            return c.to_string_lossy().into_owned();
        }
    }
    exe.to_string()
}

/// The entries of one event (a `process_start` of a compiler started by exec), else none.
pub fn entries(ev: &Event) -> Vec<Entry> {
    if ev.event_type != "process_start" || ev.via.as_deref() != Some("exec") {
        return vec![];
    }
    let (Some(argv), Some(dir)) = (ev.argv.as_deref(), ev.cwd.as_deref()) else {
        return vec![];
    };
    let Some(argv0) = argv.first() else {
        return vec![];
    };
    if !is_compiler(argv0) {
        return vec![];
    }
    let mut flags: Vec<&str> = vec![];
    let mut sources: Vec<&str> = vec![];
    let mut output = None;
    let mut has_c = false;
    let mut args = argv[1..].iter().map(|a| &**a);
    while let Some(a) = args.next() {
        match a {
            "-E" | "-M" | "-MM" => return vec![],
            "-c" => {
                has_c = true;
                flags.push(a);
            }
            "-o" => output = args.next(),
            _ if a.starts_with("-o") && a.len() > 2 => output = Some(&a[2..]),
            _ if WITH_VALUE.contains(&a) => {
                flags.push(a);
                flags.extend(args.next());
            }
            _ if is_source(a) => sources.push(a),
            _ => flags.push(a),
        }
    }
    let compiler = compiler_path(argv0, ev.exe.as_deref().unwrap_or(argv0), dir);
    sources
        .into_iter()
        .map(|src| {
            let mut arguments = vec![compiler.clone()];
            if !has_c {
                arguments.push("-c".into());
            }
            arguments.extend(flags.iter().map(|f| f.to_string()));
            if let Some(o) = output {
                arguments.push("-o".into());
                arguments.push(o.into());
            }
            arguments.push(src.into());
            Entry {
                arguments,
                directory: dir.to_string(),
                file: absolute(dir, src),
                output: output.map(|o| absolute(dir, o)),
            }
        })
        .collect()
}

/// Collects the entries of a trace and writes them as one JSON array.
#[derive(Default)]
pub struct Database {
    entries: Vec<Entry>,
    seen: HashSet<Entry>,
}

impl Database {
    /// Take the entries of `ev`.
    pub fn add(&mut self, ev: &Event) {
        for e in entries(ev) {
            if self.seen.insert(e.clone()) {
                self.entries.push(e);
            }
        }
    }

    /// Entries so far.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Write the database (pretty-printed, as Bear does).
    pub fn write(&self, mut out: impl Write) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut out, &self.entries)?;
        out.write_all(b"\n")?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(argv: &[&str]) -> Event<'static> {
        let mut e: Event = serde_json::from_str(
            r#"{"ts":"","ts_unix_ns":0,"pos":0,"ring_id":"","event_type":"process_start","component":"telemetry","via":"exec","cwd":"/w","exe":"/nonexistent/cc"}"#,
        )
        .unwrap();
        e.argv = Some(argv.iter().map(|s| s.to_string().into()).collect());
        e
    }

    #[test]
    fn compiler_names() {
        for c in [
            "cc",
            "gcc",
            "g++",
            "/usr/bin/clang++",
            "x86_64-linux-gnu-gcc-12",
            "clang-16",
        ] {
            assert!(is_compiler(c), "{c}");
        }
        for c in [
            "cc1", "collect2", "ld", "as", "gcc-ar", "ccache", "c++filt", "make",
        ] {
            assert!(!is_compiler(c), "{c}");
        }
    }

    #[test]
    fn entries_as_bear_writes_them() {
        let e = entries(&start(&["./cc", "-O2", "-c", "a.c", "-o", "a.o"]));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].arguments, ["/w/./cc", "-O2", "-c", "-o", "a.o", "a.c"]);
        assert_eq!(e[0].file, "/w/a.c");
        assert_eq!(e[0].output.as_deref(), Some("/w/a.o"));
        let e = entries(&start(&["/x/cc", "-Wall", "-o", "prog", "m.c", "a.o"]));
        assert_eq!(
            e[0].arguments,
            ["/x/cc", "-c", "-Wall", "a.o", "-o", "prog", "m.c"]
        );
        let e = entries(&start(&["/x/cc", "-c", "-I", "inc.c", "x.c", "y.cpp"]));
        assert_eq!(
            e.len(),
            2,
            "one entry per source, and -I's value is not one"
        );
        assert_eq!(e[1].arguments, ["/x/cc", "-c", "-I", "inc.c", "y.cpp"]);
        assert!(entries(&start(&["/x/cc", "-E", "a.c"])).is_empty());
        assert!(entries(&start(&["/x/cc", "a.o", "-o", "p"])).is_empty());
        assert!(entries(&start(&["/x/ld", "a.c"])).is_empty());
    }
}
