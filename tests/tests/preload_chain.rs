//! A program that execs with an environment without `LD_PRELOAD` (only `PATH`, `env -i`,
//! `execle` with its own `envp`, `unsetenv`, an empty value): the child gets the whole chain of
//! preloaded libraries the process started with, in its order, this library at its place in
//! it — including a library that, like a sanitizer runtime, makes the process exit unless it is
//! loaded first — and the trace follows the child.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;
use tests::harness::{compile, create_ring, output_within, tools};

/// Two chain libraries and the exec program, built in a temporary directory.
struct Chain {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    /// `libchain_first.so`: exits 97 unless first in `LD_PRELOAD` and first loaded.
    first: PathBuf,
    /// `libchain_last.so`.
    last: PathBuf,
    bin: PathBuf,
    marks: PathBuf,
}

fn chain() -> Chain {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let marks = dir.join("marks");
    let marks_def = format!("-DMARKS=\"{}\"", marks.display());
    let lib = |name: &str, extra: &[&str]| {
        let def = format!("-DNAME=\"{name}\"");
        let mut flags = vec!["-shared", "-fPIC", "-O2", &def, &marks_def];
        flags.extend_from_slice(extra);
        compile(&dir, "chain_lib.c", &format!("lib{name}.so"), &flags)
    };
    let first = lib("chain_first", &["-DMUST_BE_FIRST"]);
    let last = lib("chain_last", &[]);
    let bin = compile(&dir, "chain_exec.c", "chain_exec", &["-O2"]);
    Chain {
        _tmp: tmp,
        dir,
        first,
        last,
        bin,
        marks,
    }
}

/// What one traced run did.
struct Traced {
    out: Output,
    lines: Vec<Value>,
    /// The constructor marks of the chain libraries: `(name, pid)`.
    marks: Vec<(String, u32)>,
}

impl Traced {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    fn of(&self, t: &str) -> Vec<&Value> {
        self.lines.iter().filter(|l| l["event_type"] == t).collect()
    }
    fn dump(&self) -> String {
        let mut s = format!(
            "status {:?}\nstdout:\n{}\nstderr:\n{}\nmarks {:?}\ntrace:\n",
            self.out.status,
            self.stdout(),
            String::from_utf8_lossy(&self.out.stderr),
            self.marks
        );
        for l in &self.lines {
            s.push_str(&l.to_string());
            s.push('\n');
        }
        s
    }
}

/// Run `cmd` with `LD_PRELOAD=preload` (set by hand, not by `record`, which puts this library
/// first) and a session ring, and decode the ring.
fn traced(c: &Chain, preload: &str, cmd: &[&str], env: &[(&str, &str)]) -> Traced {
    static N: AtomicU32 = AtomicU32::new(0);
    let ring = c
        .dir
        .join(format!("ring{}", N.fetch_add(1, Ordering::Relaxed)));
    create_ring(&ring, &[]);
    let _ = std::fs::remove_file(&c.marks);
    let mut p = Command::new(cmd[0]);
    p.args(&cmd[1..])
        .current_dir(&c.dir)
        .env("LD_PRELOAD", preload)
        .env("SUBSTRATE_RING", &ring)
        .env_remove("SHIM_PARENT_SPAN")
        .env_remove("SHIM_SESSION_ID")
        .env_remove("SUBSTRATE_PARENT_IMAGE");
    for (k, v) in env {
        p.env(k, v);
    }
    let out = output_within(&mut p, Duration::from_secs(60)).expect("the command finishes");
    let d = Command::new(&tools().drain)
        .arg("decode")
        .arg(&ring)
        .output()
        .unwrap();
    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
    let lines = String::from_utf8(d.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let marks = std::fs::read_to_string(&c.marks)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (n, p) = l.split_once(' ')?;
            Some((n.to_string(), p.parse().ok()?))
        })
        .collect();
    Traced { out, lines, marks }
}

const ORDER: &str = "ORDER=libchain_first.so,libringbuf_preload.so,libchain_last.so";

fn file_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// The run went through two images (the root and the child it exec'd), each with the whole
/// chain, and the trace has both, linked, complete.
fn whole_chain_in_the_child(t: &Traced, child_argv0: &str, preload: &str) {
    assert!(t.out.status.success(), "{}", t.dump());
    let out = t.stdout();
    assert_eq!(
        out.lines().next(),
        Some(format!("LD_PRELOAD={preload}").as_str()),
        "the child got the start chain byte for byte: {}",
        t.dump()
    );
    assert!(
        out.lines().any(|l| l == ORDER),
        "loaded in the original order: {}",
        t.dump()
    );
    // Each library's constructor ran in both images (an exec keeps the pid).
    for lib in ["chain_first", "chain_last"] {
        let n = t.marks.iter().filter(|(m, _)| m == lib).count();
        assert_eq!(n, 2, "{lib} in both images: {}", t.dump());
    }
    assert!(t.of("lost").is_empty(), "{}", t.dump());
    let starts = t.of("process_start");
    assert_eq!(starts.len(), 2, "{}", t.dump());
    let (root, child) = (starts[0], starts[1]);
    assert_eq!(child["parent_image"], root["span_id"], "{}", t.dump());
    assert_eq!(child["argv"][1], "report");
    assert_eq!(child["argv"][0], child_argv0);
    assert_eq!(t.of("exec").len(), 1, "{}", t.dump());
    let exits: Vec<_> = t
        .of("process_exit")
        .into_iter()
        .filter(|l| l["span_id"] == child["span_id"])
        .collect();
    assert_eq!(exits.len(), 1, "{}", t.dump());
    // The child's objects, in the order the loader mapped them.
    let chain: Vec<&str> = t
        .of("object_load")
        .into_iter()
        .filter(|l| l["span_id"] == child["span_id"])
        .map(|l| file_name(l["path"].as_str().unwrap()))
        .filter(|n| n.starts_with("libchain_") || *n == "libringbuf_preload.so")
        .collect();
    assert_eq!(
        chain,
        [
            "libchain_first.so",
            "libringbuf_preload.so",
            "libchain_last.so"
        ],
        "{}",
        t.dump()
    );
}

fn chain_value(c: &Chain, sep: [&str; 2]) -> String {
    format!(
        "{}{}{}{}{}",
        c.first.display(),
        sep[0],
        tools().preload.display(),
        sep[1],
        c.last.display()
    )
}

#[test]
fn a_child_without_ld_preload_gets_the_whole_chain_in_its_order() {
    let c = chain();
    let preload = chain_value(&c, [":", ":"]);
    let bin = c.bin.to_str().unwrap();
    for mode in ["execve-path", "execle", "unset-execv", "empty-execve"] {
        let t = traced(&c, &preload, &[bin, mode], &[]);
        eprintln!("{mode}");
        whole_chain_in_the_child(&t, bin, &preload);
    }
    // env -i: the program clears the environment itself.
    let t = traced(&c, &preload, &["env", "-i", bin, "report"], &[]);
    whole_chain_in_the_child(&t, bin, &preload);
}

#[test]
fn the_chain_keeps_its_separators_and_shim_variables_stay_the_programs() {
    let c = chain();
    let preload = chain_value(&c, [" ", ":"]);
    let bin = c.bin.to_str().unwrap();
    let t = traced(
        &c,
        &preload,
        &[bin, "execve-path"],
        &[("SHIM_SESSION_ID", "ses_kept-by-the-program-only")],
    );
    whole_chain_in_the_child(&t, bin, &preload);
    assert!(
        !t.stdout().contains("SHIM_"),
        "the program's envp had no SHIM_* variable, and none was added: {}",
        t.dump()
    );
    let starts = t.of("process_start");
    assert_eq!(starts[0]["session_id"], "ses_kept-by-the-program-only");
    assert_ne!(starts[1]["session_id"], "ses_kept-by-the-program-only");
}

#[test]
fn the_programs_own_list_is_kept_with_this_library_appended() {
    let c = chain();
    let preload = chain_value(&c, [":", ":"]);
    let bin = c.bin.to_str().unwrap();
    let last = c.last.to_str().unwrap();
    let t = traced(&c, &preload, &[bin, "own-list", last], &[]);
    assert!(t.out.status.success(), "{}", t.dump());
    let out = t.stdout();
    assert_eq!(
        out.lines().next(),
        Some(format!("LD_PRELOAD={last}:{}", tools().preload.display()).as_str()),
        "{}",
        t.dump()
    );
    assert!(
        out.lines()
            .any(|l| l == "ORDER=libchain_last.so,libringbuf_preload.so"),
        "{}",
        t.dump()
    );
    assert_eq!(t.of("process_start").len(), 2, "{}", t.dump());
}

#[test]
fn the_position_check_of_the_first_library_is_real() {
    // The same chain with this library first: the first library refuses to run, as a
    // sanitizer runtime would; the test above would fail the same way if the chain moved.
    let c = chain();
    let preload = format!(
        "{}:{}:{}",
        tools().preload.display(),
        c.first.display(),
        c.last.display()
    );
    let t = traced(&c, &preload, &[c.bin.to_str().unwrap(), "report"], &[]);
    assert_eq!(t.out.status.code(), Some(97), "{}", t.dump());
    assert!(Path::new(&c.marks).exists());
}
