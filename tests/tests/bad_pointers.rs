//! Programs that pass pointers the kernel refuses (as the test suites of libc, the kernel and
//! language runtimes do on purpose) behave traced exactly as plain: same return value, same
//! `errno`, same way of ending. The trace records each failed call without the memory it could
//! not read (an empty path, no argv, no address, no times, an empty xattr name), flagged
//! `path_unreadable`, `argv_unreadable`, `envp_unreadable`, `addr_unreadable`,
//! `times_unreadable` or `name_unreadable`.
//!
//! And a `SUBSTRATE_RING` that names a FIFO, a character device, a directory or a terminal
//! leaves the library inert: the program starts at once and runs as without it, and a terminal
//! does not become the controlling terminal of a session leader.

use std::collections::BTreeMap;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use tests::harness::{compile, output_within, tools};

/// The line a call must leave: event type, errno, the flag naming what was not read.
type Expect = (&'static str, i64, &'static str);

/// Each call of `tests/c/bad_pointers.c`, with the line it must leave in the trace: event type,
/// errno (0: it succeeded), and the flag saying what was not read. `None`: libc itself crashes
/// on it (plain too), so there is nothing to record, only the same end to compare.
const CALLS: &[(&str, Option<Expect>)] = &[
    ("open", Some(("file_open", 14, "path_unreadable"))),
    ("open_none", Some(("file_open", 14, "path_unreadable"))),
    (
        "open_unterminated",
        Some(("file_open", 14, "path_unreadable")),
    ),
    ("open_creat", Some(("file_open", 14, "path_unreadable"))),
    (
        "open_tmpfile_einval",
        Some(("file_open", 22, "path_unreadable")),
    ),
    ("openat", Some(("file_open", 14, "path_unreadable"))),
    ("openat_badfd", Some(("file_open", 14, "path_unreadable"))),
    ("creat", Some(("file_open", 14, "path_unreadable"))),
    ("fopen", Some(("file_open", 14, "path_unreadable"))),
    ("fopen_none", Some(("file_open", 14, "path_unreadable"))),
    ("fopen_badmode", Some(("file_open", 22, "path_unreadable"))),
    ("unlink", Some(("file_unlink", 14, "path_unreadable"))),
    (
        "unlinkat_badflags",
        Some(("file_unlink", 22, "path_unreadable")),
    ),
    ("rmdir", Some(("file_rmdir", 14, "path_unreadable"))),
    ("mkdir", Some(("file_mkdir", 14, "path_unreadable"))),
    ("mkdirat", Some(("file_mkdir", 14, "path_unreadable"))),
    ("rename_old", Some(("file_rename", 14, "path_unreadable"))),
    ("rename_new", Some(("file_rename", 14, "path_unreadable"))),
    (
        "rename_new_none",
        Some(("file_rename", 14, "path_unreadable")),
    ),
    (
        "renameat2_badflags",
        Some(("file_rename", 22, "path_unreadable")),
    ),
    ("link_new", Some(("file_link", 14, "path_unreadable"))),
    (
        "symlink_target",
        Some(("file_symlink", 14, "path_unreadable")),
    ),
    ("chdir", Some(("chdir", 14, "path_unreadable"))),
    ("chdir_unterminated", Some(("chdir", 14, "path_unreadable"))),
    ("truncate", Some(("file_truncate", 14, "path_unreadable"))),
    (
        "truncate_negative",
        Some(("file_truncate", 22, "path_unreadable")),
    ),
    ("chmod", Some(("file_chmod", 14, "path_unreadable"))),
    (
        "fchmodat_badflags",
        Some(("file_chmod", 22, "path_unreadable")),
    ),
    ("lchmod_none", Some(("file_chmod", 14, "path_unreadable"))),
    ("chown_none", Some(("file_chown", 14, "path_unreadable"))),
    (
        "fchownat_badfd",
        Some(("file_chown", 14, "path_unreadable")),
    ),
    (
        "utimensat_path",
        Some(("file_utime", 14, "path_unreadable")),
    ),
    (
        "utimensat_times",
        Some(("file_utime", 14, "times_unreadable")),
    ),
    // Both times UTIME_OMIT: success, and the path (never read by the kernel) is probed.
    (
        "utimensat_omit_badpath",
        Some(("file_utime", 0, "path_unreadable")),
    ),
    (
        "futimens_times",
        Some(("file_utime", 14, "times_unreadable")),
    ),
    // glibc converts the timevals before the call: SIGSEGV plain and traced (an older glibc
    // passes them to the kernel: EFAULT, recorded with times_unreadable).
    ("utimes_times", None),
    (
        "setxattr_name",
        Some(("file_setxattr", 14, "name_unreadable")),
    ),
    (
        "setxattr_path",
        Some(("file_setxattr", 14, "path_unreadable")),
    ),
    (
        "lremovexattr_unterminated",
        Some(("file_removexattr", 14, "name_unreadable")),
    ),
    (
        "opendir_unterminated",
        Some(("file_open", 14, "path_unreadable")),
    ),
    ("execve_path", Some(("exec", 14, "path_unreadable"))),
    ("execve_path_none", Some(("exec", 14, "path_unreadable"))),
    (
        "execve_path_unterminated",
        Some(("exec", 14, "path_unreadable")),
    ),
    ("execve_argv", Some(("exec", 14, "argv_unreadable"))),
    ("execve_argv_none", Some(("exec", 14, "argv_unreadable"))),
    ("execve_argv_elem", Some(("exec", 14, "argv_unreadable"))),
    (
        "execve_argv_elem_none",
        Some(("exec", 14, "argv_unreadable")),
    ),
    ("execve_envp", Some(("exec", 14, "envp_unreadable"))),
    ("execve_envp_elem", Some(("exec", 14, "envp_unreadable"))),
    (
        "execve_envp_elem_unterminated",
        Some(("exec", 14, "envp_unreadable")),
    ),
    // The kernel finds the missing program before it reads argv: ENOENT, as plain.
    (
        "execve_missing_bad_argv",
        Some(("exec", 2, "argv_unreadable")),
    ),
    ("execv_argv_elem", Some(("exec", 14, "argv_unreadable"))),
    ("execvp_argv", Some(("exec", 14, "argv_unreadable"))),
    ("execvp_argv_elem", Some(("exec", 14, "argv_unreadable"))),
    (
        "execvp_slash_path_elem",
        Some(("exec", 14, "argv_unreadable")),
    ),
    ("execvpe_envp_elem", Some(("exec", 14, "envp_unreadable"))),
    ("execvp_environ_elem", Some(("exec", 14, "envp_unreadable"))),
    ("execl_elem", Some(("exec", 14, "argv_unreadable"))),
    ("execle_envp", Some(("exec", 14, "envp_unreadable"))),
    ("execveat_path", Some(("exec", 14, "path_unreadable"))),
    ("fexecve_argv_elem", Some(("exec", 14, "argv_unreadable"))),
    (
        "posix_spawn_argv_elem",
        Some(("spawn", 14, "argv_unreadable")),
    ),
    ("posix_spawn_path", Some(("spawn", 14, "path_unreadable"))),
    (
        "posix_spawn_envp_elem",
        Some(("spawn", 14, "envp_unreadable")),
    ),
    (
        "posix_spawnp_argv_elem",
        Some(("spawn", 14, "argv_unreadable")),
    ),
    // glibc counts argv in the caller before it spawns: SIGSEGV plain and traced.
    ("posix_spawn_argv", None),
    ("system", Some(("spawn", 14, "argv_unreadable"))),
    // glibc's popen reports a failed spawn as ENOMEM.
    ("popen", Some(("spawn", 12, "argv_unreadable"))),
    ("connect", Some(("net_connect", 14, "addr_unreadable"))),
    ("connect_none", Some(("net_connect", 14, "addr_unreadable"))),
    // The descriptor and the length are checked before the address is read.
    ("connect_badfd", Some(("net_connect", 9, "addr_unreadable"))),
    (
        "connect_toolong",
        Some(("net_connect", 22, "addr_unreadable")),
    ),
    ("bind", Some(("net_bind", 14, "addr_unreadable"))),
    ("bind_notsock", Some(("net_bind", 88, "addr_unreadable"))),
    ("sendto", Some(("net_send", 14, "addr_unreadable"))),
    // A message the kernel refused: whether it named a destination is unknown, not recorded.
    ("sendmsg", None),
    ("sendmsg_badfd", None),
];

/// Strings a line of these runs may hold as a path: the good ones the program passes.
const GOOD_PATHS: &[&str] = &["", ".", "/bin/true", "true", "/bin/sh", "/nonexistent/prog"];

/// Strings a line of these runs may hold as an xattr name.
const GOOD_NAMES: &[&str] = &["", "user.a"];

struct Setup {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let bin = compile(dir.path(), "bad_pointers.c", "bad_pointers", &["-O2"]);
    Setup { dir, bin }
}

/// A command with none of the session's variables, in `dir`.
fn clean(bin: &Path, dir: &Path) -> Command {
    let mut c = Command::new(bin);
    c.current_dir(dir)
        .env_remove("LD_PRELOAD")
        .env_remove("SUBSTRATE_RING")
        .env_remove("SUBSTRATE_PARENT_IMAGE")
        .env_remove("SHIM_PARENT_SPAN")
        .env_remove("SHIM_SESSION_ID");
    c
}

fn traced<'a>(c: &'a mut Command, ring: &Path) -> &'a mut Command {
    c.env("LD_PRELOAD", &tools().preload)
        .env("SUBSTRATE_RING", ring)
}

fn run(c: &mut Command, what: &str) -> Output {
    output_within(c, Duration::from_secs(20)).unwrap_or_else(|| panic!("{what}: still running"))
}

/// How a run ended and what it said: the things that must not differ.
fn outcome(o: &Output) -> (Option<i32>, Option<i32>, String) {
    (
        o.status.code(),
        o.status.signal(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

fn create_ring(ring: &Path) {
    let o = Command::new(&tools().drain)
        .arg("create")
        .arg(ring)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn calls_given_pointers_the_kernel_refuses_behave_as_plain_and_are_recorded_without_them() {
    let s = setup();
    let ring = s.dir.path().join("ring");
    create_ring(&ring);
    for (call, expect) in CALLS {
        let plain = run(clean(&s.bin, s.dir.path()).arg(call), call);
        let tr = run(traced(clean(&s.bin, s.dir.path()).arg(call), &ring), call);
        assert_eq!(
            outcome(&plain),
            outcome(&tr),
            "{call}: plain and traced differ\ntraced stderr: {}",
            String::from_utf8_lossy(&tr.stderr)
        );
        match expect {
            Some(_) => {
                let out = String::from_utf8_lossy(&plain.stdout);
                assert!(
                    out.starts_with(&format!("call={call} ret=")) && plain.status.success(),
                    "{call}: the call did not return plain: {out:?} {:?}",
                    plain.status
                );
            }
            None if call.starts_with("posix_spawn") => {
                assert_eq!(plain.status.signal(), Some(libc::SIGSEGV), "{call}")
            }
            None if *call == "utimes_times" => assert!(
                plain.status.signal() == Some(libc::SIGSEGV) || plain.status.success(),
                "{call}: {:?}",
                plain.status
            ),
            None => assert!(plain.status.success(), "{call}"),
        }
    }

    let o = Command::new(&tools().drain)
        .arg("decode")
        .arg(&ring)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "decode: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("malformed line {l}: {e}")))
        .collect();
    let dump = || {
        lines
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    // Each run's pid, from its process_start (argv: the program, the call).
    let mut pid_of = BTreeMap::new();
    for l in lines.iter().filter(|l| l["event_type"] == "process_start") {
        if let Some(call) = l["argv"].get(1).and_then(|v| v.as_str()) {
            pid_of.insert(call.to_string(), l["pid"].as_i64().unwrap());
        }
    }
    for (call, expect) in CALLS {
        let pid = *pid_of
            .get(*call)
            .unwrap_or_else(|| panic!("{call}: no process_start\n{}", dump()));
        let mine: Vec<&Value> = lines
            .iter()
            .filter(|l| l["pid"] == pid)
            .filter(|l| {
                !["process_start", "process_exit", "object_load"]
                    .contains(&l["event_type"].as_str().unwrap_or(""))
            })
            .filter(|l| !(l["event_type"] == "file_open" && l["path"] == "/bin/true"))
            .collect();
        // Nothing read from a refused pointer: only the program's good strings, never bytes
        // from beyond them, and no path made absolute from an empty one.
        for l in &mine {
            for key in ["path", "new_path", "target"] {
                if let Some(p) = l[key].as_str() {
                    assert!(GOOD_PATHS.contains(&p), "{call}: garbage {key}: {l}");
                }
            }
            if l["path_unreadable"] == true {
                assert!(
                    l.get("abs_path").is_none() && l.get("abs_new_path").is_none(),
                    "{call}: {l}"
                );
            }
            if l["argv_unreadable"] == true {
                assert_eq!(l["argv"], serde_json::json!([]), "{call}: {l}");
            }
            if l["event_type"]
                .as_str()
                .is_some_and(|t| t.starts_with("file_"))
            {
                if let Some(n) = l["name"].as_str() {
                    assert!(GOOD_NAMES.contains(&n), "{call}: garbage name: {l}");
                }
            }
            if l["name_unreadable"] == true {
                assert_eq!(l["name"], "", "{call}: {l}");
            }
            if l["times_unreadable"] == true {
                assert!(
                    l.get("atime").is_none() && l.get("mtime").is_none(),
                    "{call}: {l}"
                );
            }
            if l["addr_unreadable"] == true {
                assert!(
                    l["family"].is_null() && l.get("addr").is_none(),
                    "{call}: {l}"
                );
            }
        }
        let Some((event_type, errno, flag)) = expect else {
            assert!(
                mine.iter().all(|l| l["event_type"] != "spawn"),
                "{call}: {mine:?}"
            );
            continue;
        };
        let rec: Vec<&&Value> = mine
            .iter()
            .filter(|l| l["event_type"] == *event_type)
            .collect();
        assert_eq!(rec.len(), 1, "{call}: one {event_type} line\n{}", dump());
        let l = rec[0];
        if *errno == 0 {
            assert!(l.get("errno").is_none() && l["result"] == 0, "{call}: {l}");
        } else {
            assert_eq!(l["errno"], *errno, "{call}: {l}");
        }
        assert_eq!(l[*flag], true, "{call}: {l}");
    }
}

/// Run `bin devtty` plain and with `SUBSTRATE_RING=ring`, each as a session leader without a
/// controlling terminal (as under `setsid`); both must end at once, the same way.
fn same_as_plain_with_ring(bin: &Path, dir: &Path, ring: &Path, what: &str) {
    let run_one = |with_ring: bool| {
        let mut c = clean(bin, dir);
        c.arg("devtty");
        if with_ring {
            traced(&mut c, ring);
        }
        // SAFETY: setsid is async-signal-safe, as required between fork and exec.
        unsafe {
            c.pre_exec(|| {
                libc::setsid();
                Ok(())
            })
        };
        let t = std::time::Instant::now();
        let o = output_within(&mut c, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{what}: the program did not start"));
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{what}: slow start {:?}",
            t.elapsed()
        );
        o
    };
    let plain = run_one(false);
    let tr = run_one(true);
    assert!(plain.status.success(), "{what}: {plain:?}");
    assert_eq!(outcome(&plain), outcome(&tr), "{what}");
    // No controlling terminal after start: /dev/tty is ENXIO, as plain.
    assert_eq!(
        String::from_utf8_lossy(&tr.stdout),
        "call=devtty ret=-1 errno=6\n",
        "{what}"
    );
}

#[test]
fn a_ring_that_is_a_fifo_a_device_a_directory_or_a_terminal_leaves_the_program_as_plain() {
    let s = setup();
    let fifo = s.dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    same_as_plain_with_ring(&s.bin, s.dir.path(), &fifo, "fifo");
    same_as_plain_with_ring(&s.bin, s.dir.path(), Path::new("/dev/null"), "/dev/null");
    same_as_plain_with_ring(&s.bin, s.dir.path(), s.dir.path(), "directory");

    // A pseudo-terminal, its master held open by the test while the program runs.
    // SAFETY: libc pty calls on a descriptor this test owns; ptsname_r writes into `name`.
    let (master, slave) = unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(m >= 0, "posix_openpt");
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(m, name.as_mut_ptr(), name.len()), 0);
        let name = std::ffi::CStr::from_ptr(name.as_ptr());
        (m, PathBuf::from(name.to_str().unwrap()))
    };
    same_as_plain_with_ring(&s.bin, s.dir.path(), &slave, "terminal");
    // SAFETY: our descriptor.
    unsafe { libc::close(master) };
}
