//! A `substrate-drain` on its own (what `cargo install --path drain` installs, or a copied
//! binary) traces with the preload library embedded in it: written once to a private cache by
//! content hash, reused, replaced when wrong (truncated, a planted symlink) without ever being
//! seen half-written, refused in a cache others can write. Every run here is the release
//! binary copied alone into a temporary `bin/`, with `HOME` and `XDG_CACHE_HOME` in temporary
//! directories.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tests::harness::tools;

/// Held while a binary is copied and while a child is started. Tests run in threads: a child
/// forked while another thread has its copy open for writing holds that descriptor until it
/// execs, and executing the copy then fails with ETXTBSY.
static SPAWN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Start `c` (under [`SPAWN`]), its stdout and stderr captured.
fn spawn(c: &mut Command) -> std::process::Child {
    let _g = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Run `c` to completion: [`spawn`], then wait outside the lock.
fn output(c: &mut Command) -> Output {
    spawn(c).wait_with_output().unwrap()
}

/// A copied `substrate-drain` and the temporary directories it runs with.
struct Alone {
    dir: tempfile::TempDir,
}

impl Alone {
    fn new() -> Alone {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        // $XDG_RUNTIME_DIR, private: the ring directory, and the last cache.
        std::fs::create_dir(dir.path().join("run")).unwrap();
        std::fs::set_permissions(
            dir.path().join("run"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let drain = &tools().drain;
        {
            let _g = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
            std::fs::copy(drain, dir.path().join("bin/substrate-drain")).unwrap();
        }
        Alone { dir }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    /// The cache `XDG_CACHE_HOME=DIR/xdg` gives.
    fn cache(&self) -> PathBuf {
        self.path("xdg/substrate")
    }
    /// The copied binary, run in DIR with `HOME=DIR/home`, `XDG_CACHE_HOME=DIR/xdg`, and no
    /// preload or session variables from outside.
    fn cmd(&self) -> Command {
        let mut c = Command::new(self.path("bin/substrate-drain"));
        c.current_dir(self.dir.path())
            .env("HOME", self.path("home"))
            .env("XDG_CACHE_HOME", self.path("xdg"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env_remove("SUBSTRATE_PRELOAD")
            .env_remove("LD_PRELOAD")
            .env_remove("SHIM_SESSION_ID")
            .env_remove("SHIM_PARENT_SPAN")
            .env_remove("SUBSTRATE_RING")
            .env_remove("SUBSTRATE_PARENT_IMAGE");
        c
    }
    /// `--print-preload-path`: the path, and what it said on stderr.
    fn print_path(&self, c: &mut Command) -> (PathBuf, String) {
        let o = output(c.arg("--print-preload-path"));
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        let out = String::from_utf8(o.stdout).unwrap();
        (PathBuf::from(out.trim_end()), err)
    }
    /// `record -o FILE -- sh -c 'cat /etc/hostname >/dev/null'` (FILE in DIR).
    fn record_cat(&self, trace: &str) -> Output {
        assert!(
            Path::new("/etc/hostname").is_file(),
            "this test reads /etc/hostname"
        );
        output(
            self.cmd()
                .args(["record", "-o", trace, "--", "sh", "-c"])
                .arg("cat /etc/hostname >/dev/null"),
        )
    }
}

/// The run succeeded and the preload ran inside `cat`: a `file_open` of `/etc/hostname` on the
/// span of the image whose argv is `cat /etc/hostname`.
fn assert_traced(o: &Output, trace: &Path) {
    assert!(
        o.status.success(),
        "record failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let lines: Vec<Value> = std::fs::read_to_string(trace)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let cat = lines
        .iter()
        .find(|l| {
            l["event_type"] == "process_start"
                && l["argv"] == serde_json::json!(["cat", "/etc/hostname"])
        })
        .unwrap_or_else(|| panic!("no process_start of cat in {}", trace.display()));
    assert!(
        lines.iter().any(|l| l["event_type"] == "file_open"
            && l["path"] == "/etc/hostname"
            && l["span_id"] == cat["span_id"]),
        "no file_open of /etc/hostname by cat in {}",
        trace.display()
    );
}

/// The files of `d`, by name.
fn names(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The one library of the cache `d`, checked by name: `libringbuf_preload-<16 hex>.so`, and
/// nothing else there (no temporary file left behind).
fn only_library(d: &Path) -> PathBuf {
    let n = names(d);
    assert_eq!(n.len(), 1, "{}: {n:?}", d.display());
    let hex = n[0]
        .strip_prefix("libringbuf_preload-")
        .and_then(|r| r.strip_suffix(".so"))
        .unwrap_or_else(|| panic!("unexpected name {}", n[0]));
    assert!(
        hex.len() == 16
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{}",
        n[0]
    );
    d.join(&n[0])
}

#[test]
fn a_copied_binary_alone_traces_with_its_embedded_preload() {
    let a = Alone::new();
    // Nothing next to it, in ../lib/substrate or ../lib.
    assert_eq!(names(&a.path("bin")), ["substrate-drain"]);
    let o = a.record_cat("t1.jsonl");
    assert_traced(&o, &a.path("t1.jsonl"));
    let lib = only_library(&a.cache());
    let dir_mode = std::fs::metadata(a.cache()).unwrap().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    let m1 = std::fs::symlink_metadata(&lib).unwrap();
    assert!(m1.file_type().is_file());
    let bytes = std::fs::read(&lib).unwrap();
    assert!(bytes.starts_with(b"\x7fELF"));

    // --print-preload-path names it and says where it came from.
    let (p, err) = a.print_path(&mut a.cmd());
    assert_eq!(p, lib);
    assert!(
        err.contains("embedded in substrate-drain")
            && err.contains("already in the cache")
            && err.contains(a.cache().to_str().unwrap()),
        "{err}"
    );

    // A second run reuses it: the same file, not rewritten.
    let o = a.record_cat("t2.jsonl");
    assert_traced(&o, &a.path("t2.jsonl"));
    let m2 = std::fs::symlink_metadata(&lib).unwrap();
    assert_eq!(
        (m2.ino(), m2.mtime(), m2.mtime_nsec()),
        (m1.ino(), m1.mtime(), m1.mtime_nsec())
    );
    assert_eq!(only_library(&a.cache()), lib);

    // Truncated (a copy cut short): replaced by a new file, whole again.
    let f = std::fs::OpenOptions::new().write(true).open(&lib).unwrap();
    f.set_len(bytes.len() as u64 / 2).unwrap();
    drop(f);
    let o = a.record_cat("t3.jsonl");
    assert_traced(&o, &a.path("t3.jsonl"));
    let m3 = std::fs::symlink_metadata(&lib).unwrap();
    assert_ne!(
        m3.ino(),
        m1.ino(),
        "replaced by rename, not rewritten in place"
    );
    assert_eq!(std::fs::read(&lib).unwrap(), bytes);

    // The same length with other bytes: replaced too.
    let mut other = bytes.clone();
    let mid = other.len() / 2;
    other[mid] ^= 0xff;
    std::fs::write(&lib, &other).unwrap();
    let (p, err) = a.print_path(&mut a.cmd());
    assert_eq!(p, lib);
    assert!(err.contains("written to the cache"), "{err}");
    assert_eq!(std::fs::read(&lib).unwrap(), bytes);

    // A symlink planted at its name: not followed (its target is left as it was), replaced.
    let victim = a.path("victim");
    std::fs::write(&victim, b"not to be touched").unwrap();
    std::fs::remove_file(&lib).unwrap();
    std::os::unix::fs::symlink(&victim, &lib).unwrap();
    let o = a.record_cat("t4.jsonl");
    assert_traced(&o, &a.path("t4.jsonl"));
    assert_eq!(std::fs::read(&victim).unwrap(), b"not to be touched");
    assert!(std::fs::symlink_metadata(&lib)
        .unwrap()
        .file_type()
        .is_file());
    assert_eq!(std::fs::read(&lib).unwrap(), bytes);
    // Even a symlink to a good copy of the library is not used.
    std::fs::write(&victim, &bytes).unwrap();
    std::fs::remove_file(&lib).unwrap();
    std::os::unix::fs::symlink(&victim, &lib).unwrap();
    let (_, err) = a.print_path(&mut a.cmd());
    assert!(err.contains("written to the cache"), "{err}");
    assert!(std::fs::symlink_metadata(&lib)
        .unwrap()
        .file_type()
        .is_file());
    assert_eq!(only_library(&a.cache()), lib);
}

#[test]
fn a_cache_others_can_write_is_refused_by_name() {
    let a = Alone::new();
    std::fs::create_dir_all(a.cache()).unwrap();
    std::fs::set_permissions(a.cache(), std::fs::Permissions::from_mode(0o775)).unwrap();
    let o = output(
        a.cmd()
            .args(["record", "-o", "t.jsonl", "--", "touch", "ran"]),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(a.cache().to_str().unwrap()) && err.contains("not private"),
        "{err}"
    );
    // Refused before anything ran, and nothing written there.
    assert!(!a.path("ran").exists());
    assert!(names(&a.cache()).is_empty());
    let o = output(a.cmd().arg("--print-preload-path"));
    assert_eq!(o.status.code(), Some(2));
    // Private again: used.
    std::fs::set_permissions(a.cache(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let (p, _) = a.print_path(&mut a.cmd());
    assert_eq!(p, only_library(&a.cache()));
}

#[test]
fn a_cache_in_a_directory_others_can_change_is_refused() {
    let a = Alone::new();
    // XDG_CACHE_HOME itself writable by all, not sticky: another user could swap `substrate/`.
    std::fs::create_dir_all(a.cache()).unwrap();
    std::fs::set_permissions(a.cache(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(a.path("xdg"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = output(a.cmd().arg("--print-preload-path"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(a.path("xdg").to_str().unwrap()) && err.contains("others can change"),
        "{err}"
    );
    assert!(names(&a.cache()).is_empty());
    // Sticky (as /tmp is): entries cannot be replaced by others; used.
    std::fs::set_permissions(a.path("xdg"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let (p, _) = a.print_path(&mut a.cmd());
    assert_eq!(p, only_library(&a.cache()));
}

#[test]
fn which_cache_directory() {
    let a = Alone::new();
    // Without XDG_CACHE_HOME, or with a relative one: ~/.cache/substrate.
    for xdg in [None, Some("relative/cache")] {
        let mut c = a.cmd();
        match xdg {
            None => c.env_remove("XDG_CACHE_HOME"),
            Some(x) => c.env("XDG_CACHE_HOME", x),
        };
        let (p, err) = a.print_path(&mut c);
        assert_eq!(
            p.parent().unwrap(),
            a.path("home/.cache/substrate"),
            "{err}"
        );
    }
    assert!(!a.path("relative").exists());
    // Neither HOME nor XDG_CACHE_HOME: the private ring directory ($XDG_RUNTIME_DIR when it is
    // private).
    let run = a.path("run");
    let mut c = a.cmd();
    c.env_remove("HOME").env_remove("XDG_CACHE_HOME");
    let (p, err) = a.print_path(&mut c);
    assert_eq!(p.parent().unwrap(), run, "{err}");
    // One that cannot be created (a file is in the way), or that LD_PRELOAD cannot name (a
    // space): passed over for the private ring directory, and the trace still works.
    std::fs::write(a.path("file"), b"").unwrap();
    std::fs::create_dir(a.path("with space")).unwrap();
    for xdg in ["file", "with space"] {
        std::fs::remove_dir_all(&run).unwrap();
        std::fs::create_dir(&run).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
        let trace = a.path("t.jsonl");
        let _ = std::fs::remove_file(&trace);
        let o = output(
            a.cmd()
                .env("XDG_CACHE_HOME", a.path(xdg))
                .args(["record", "-o", "t.jsonl", "--", "sh", "-c"])
                .arg("cat /etc/hostname >/dev/null"),
        );
        assert_traced(&o, &trace);
        only_library(&run);
    }
    assert!(!a.path("with space/substrate").exists());
}

#[test]
fn on_disk_libraries_and_pinned_paths_come_first() {
    let a = Alone::new();
    // Pinned to a missing file: an error, not the embedded library.
    let o = output(
        a.cmd()
            .args(["record", "--preload", "/nonexistent/lib.so", "--", "true"]),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/lib.so"));
    let o = output(
        a.cmd()
            .env("SUBSTRATE_PRELOAD", "/nonexistent/lib.so")
            .arg("--print-preload-path"),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        !a.cache().exists(),
        "the cache was written for a pinned path"
    );
    // A library next to the binary is used before the embedded one.
    std::fs::copy(&tools().preload, a.path("bin/libringbuf_preload.so")).unwrap();
    let (p, err) = a.print_path(&mut a.cmd());
    assert_eq!(p, a.path("bin/libringbuf_preload.so"));
    assert!(err.contains("found next to substrate-drain"), "{err}");
    assert!(!a.cache().exists());
}

#[test]
fn concurrent_first_runs_never_see_a_half_written_library() {
    let a = Alone::new();
    let children: Vec<_> = (0..8)
        .map(|i| {
            spawn(
                a.cmd()
                    .args(["record", "-o", &format!("c{i}.jsonl"), "--", "sh", "-c"])
                    .arg("cat /etc/hostname >/dev/null"),
            )
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        assert_traced(&o, &a.path(&format!("c{i}.jsonl")));
    }
    only_library(&a.cache());
    // Each wrote it to the cache itself: none gave up and fell back to the ring directory.
    assert!(names(&a.path("run")).iter().all(|n| !n.contains("preload")));
    // Closer together: 32 first runs started at once by one shell, five times over. Each
    // writes a file of its own and renames it into place: all name the cache file.
    let lib = only_library(&a.cache());
    for round in 0..5 {
        std::fs::remove_file(&lib).unwrap();
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg("for i in $(seq 32); do \"$0\" --print-preload-path & done; wait")
            .arg(a.path("bin/substrate-drain"));
        for (k, v) in a.cmd().get_envs() {
            match v {
                Some(v) => sh.env(k, v),
                None => sh.env_remove(k),
            };
        }
        let o = output(&mut sh);
        let out = String::from_utf8_lossy(&o.stdout);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(out.lines().count(), 32, "round {round}: {err}");
        assert!(
            out.lines().all(|l| Path::new(l) == lib),
            "round {round}: {out}{err}"
        );
        assert_eq!(only_library(&a.cache()), lib);
    }
}

#[test]
fn programs_loading_the_library_while_it_is_rewritten_always_get_it_whole() {
    let a = Alone::new();
    let (lib, _) = a.print_path(&mut a.cmd());
    let done = std::sync::atomic::AtomicBool::new(false);
    let n = 300;
    let (o, rewrites) = std::thread::scope(|s| {
        // Over and over: make the file one the cache must replace (writable by others; still a
        // good library for the loader) and have it replaced.
        let writer = s.spawn(|| {
            let mut rewrites = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o666)).unwrap();
                let (_, err) = a.print_path(&mut a.cmd());
                // (`record` itself may have replaced it first, when it started.)
                rewrites += usize::from(err.contains("written to the cache"));
            }
            rewrites
        });
        // Meanwhile N programs load it, each one exec'd with LD_PRELOAD naming the cache file.
        let o = output(
            a.cmd()
                .args(["record", "-o", "r.jsonl", "--", "sh", "-c"])
                .arg(format!(
                    "i=0; while [ $i -lt {n} ]; do cat /etc/hostname >/dev/null; i=$((i+1)); done"
                )),
        );
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (o, writer.join().unwrap())
    });
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("cannot be preloaded"), "{err}");
    assert!(
        rewrites >= 5,
        "only {rewrites} rewrites while the programs ran"
    );
    let opens = std::fs::read_to_string(a.path("r.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["event_type"] == "file_open" && l["path"] == "/etc/hostname")
        .count();
    assert_eq!(opens, n, "{err}");
    assert_eq!(only_library(&a.cache()), lib);
}
