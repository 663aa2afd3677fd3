//! The scenarios of `../shared/design/interception.md`, each run traced through the real
//! `substrate-drain record` and the real preload library, with the records checked exactly.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use tests::harness::{compile, record, record_with, Run};

/// The scenario program (tests/c/scenarios.c) and a scratch directory, built once.
fn sc() -> &'static (PathBuf, PathBuf) {
    static S: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let bin = compile(&dir, "scenarios.c", "scenarios", &["-O2"]);
        (bin, dir)
    })
}

fn run(args: &[&str]) -> Run {
    let (bin, dir) = sc();
    let mut cmd = vec![bin.to_str().unwrap()];
    cmd.extend_from_slice(args);
    record(dir, &cmd)
}

fn ok(r: &Run) {
    assert!(
        r.out.status.success(),
        "record failed: {:?}\nstderr: {}\ntrace:\n{}",
        r.out.status,
        String::from_utf8_lossy(&r.out.stderr),
        r.dump()
    );
}

/// The single exec or spawn record whose argv is `argv`.
fn one_start_record<'a>(r: &'a Run, argv: &[&str]) -> &'a Value {
    let recs: Vec<&Value> = r
        .lines
        .iter()
        .filter(|l| {
            (l["event_type"] == "exec" || l["event_type"] == "spawn") && Run::argv(l) == argv
        })
        .collect();
    assert_eq!(
        recs.len(),
        1,
        "expected one exec/spawn of {argv:?}, trace:\n{}",
        r.dump()
    );
    recs[0]
}

#[test]
fn every_process_start_function_records_exactly_one_start_with_the_exact_argv() {
    for f in [
        "execve",
        "execv",
        "execvp",
        "execvpe",
        "execl",
        "execlp",
        "execle",
        "fexecve",
        "execveat",
        "posix_spawn",
        "posix_spawnp",
    ] {
        let r = run(&["exec", f, "TAG"]);
        ok(&r);
        assert!(
            r.stdout().contains("TAG"),
            "{f}: program output changed: {}",
            r.stdout()
        );
        let rec = one_start_record(&r, &["echo", "TAG"]);
        assert_eq!(rec["op"], f, "{f}: {}", r.dump());
        assert!(rec.get("errno").is_none(), "{f} recorded as failed: {rec}");
        let echo = r.starts_with_argv(&["echo", "TAG"]);
        assert_eq!(echo.len(), 1, "{f}: echo traced once: {}", r.dump());
        let root = &r.of("process_start")[0];
        assert!(
            r.descends(echo[0], root),
            "{f}: echo joined to the program's span: {}",
            r.dump()
        );
    }
}

#[test]
fn system_and_popen_run_the_shell_with_the_session_environment() {
    for f in ["system", "popen"] {
        let r = run(&["exec", f, "TAG"]);
        ok(&r);
        assert!(r.stdout().contains("TAG"), "{f}: {}", r.stdout());
        let rec = one_start_record(&r, &["sh", "-c", "/bin/echo TAG"]);
        assert_eq!(rec["op"], f);
        assert!(rec["child_pid"].as_i64().unwrap() > 0);
        let sh = r.starts_with_argv(&["sh", "-c", "/bin/echo TAG"]);
        assert_eq!(sh.len(), 1, "{f}: the shell is traced: {}", r.dump());
        assert_eq!(sh[0]["parent_image"], r.of("process_start")[0]["span_id"]);
    }
    let r = run(&["exec", "popen", "TAG"]);
    assert!(
        r.stdout().contains("popen read TAG") && r.stdout().contains("pclose 0"),
        "{}",
        r.stdout()
    );
}

#[test]
fn execl_family_takes_any_number_of_arguments_and_execle_keeps_its_envp() {
    let r = run(&["execl-0"]);
    ok(&r);
    let e = r.of("exec");
    assert_eq!(e.len(), 1, "{}", r.dump());
    assert_eq!(Run::argv(e[0]), Vec::<String>::new());

    let r = run(&["execl-1"]);
    one_start_record(&r, &["echo"]);

    let mut thirty = vec!["echo".to_string()];
    thirty.extend((1..30).map(|i| format!("a{i}")));
    let thirty: Vec<&str> = thirty.iter().map(|s| s.as_str()).collect();
    for m in ["execl-30", "execlp-30"] {
        let r = run(&[m]);
        ok(&r);
        one_start_record(&r, &thirty);
        assert_eq!(r.stdout().trim(), thirty[1..].join(" "));
    }

    let r = run(&["execle-env"]);
    ok(&r);
    let out = r.stdout();
    assert!(
        out.lines().any(|l| l == "FOO=bar"),
        "execle's envp reached the child: {out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("LD_PRELOAD=") && l.contains("libringbuf_preload.so")),
        "{out}"
    );
    assert_eq!(
        r.starts_with_argv(&["env"]).len(),
        1,
        "env traced: {}",
        r.dump()
    );
}

#[test]
fn execvp_searches_path_like_libc_and_runs_scripts_without_shebang() {
    let (bin, dir) = sc();
    let d = dir.join("pathsearch");
    let (a, b) = (d.join("a"), d.join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(a.join("mytool"), "#!/bin/sh\necho WRONG\n").unwrap(); // not executable
    std::fs::write(b.join("mytool"), "echo RIGHT \"$@\"\n").unwrap(); // no shebang line
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(b.join("mytool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}:/usr/bin:/bin", a.display(), b.display());
    let r = record_with(
        dir,
        &[],
        &[bin.to_str().unwrap(), "execvp", "mytool", "x"],
        &[("PATH", &path)],
    );
    ok(&r);
    assert_eq!(r.stdout().trim(), "RIGHT x");
    let e = one_start_record(&r, &["mytool", "x"]);
    assert_eq!(e["path"], "mytool");
    assert!(e.get("errno").is_none());
}

/// The program's own output without the library, for comparison.
fn plain(args: &[&str]) -> String {
    let (bin, _) = sc();
    let o = std::process::Command::new(bin).args(args).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_failed_exec_keeps_its_errno_and_is_recorded_as_failed() {
    let (_, dir) = sc();
    let noexec = dir.join("noexec");
    std::fs::write(&noexec, "data").unwrap();
    for (target, errno) in [
        ("/nonexistent/prog", libc::ENOENT),
        (noexec.to_str().unwrap(), libc::EACCES),
    ] {
        let r = run(&["exec-fail", target]);
        ok(&r);
        assert_eq!(
            r.stdout(),
            plain(&["exec-fail", target]),
            "same output and errno as without the library"
        );
        assert_eq!(r.stdout().trim(), format!("execve -1 errno {errno}"));
        let e = one_start_record(&r, &["x"]);
        assert_eq!(e["errno"], errno, "{}", r.dump());
        assert_eq!(e["path"], target);
    }
}

#[test]
fn children_stay_traced_when_the_environment_is_stripped() {
    let (_, dir) = sc();
    // env -i: the program clears the environment itself before exec.
    let r = record(dir, &["env", "-i", "/bin/sh", "-c", "/bin/echo TAG"]);
    ok(&r);
    let echo = r.starts_with_argv(&["/bin/echo", "TAG"]);
    assert_eq!(echo.len(), 1, "env -i: grandchild traced: {}", r.dump());
    assert!(r.descends(echo[0], r.of("process_start")[0]));
    for mode in ["clearenv", "unset-system", "unset-popen", "custom-envp"] {
        let r = run(&[mode]);
        ok(&r);
        assert!(r.stdout().contains("TAG"), "{mode}: {}", r.stdout());
        let echo = r.starts_with_argv(&["/bin/echo", "TAG"]);
        assert_eq!(echo.len(), 1, "{mode}: grandchild traced: {}", r.dump());
        assert!(
            r.descends(echo[0], r.of("process_start")[0]),
            "{mode}: joined: {}",
            r.dump()
        );
    }
    let r = run(&["custom-envp"]);
    assert!(
        r.stdout().contains("libringbuf_preload.so"),
        "custom envp got LD_PRELOAD: {}",
        r.stdout()
    );
}

#[test]
fn another_preload_library_keeps_its_place() {
    let (_, dir) = sc();
    let other = compile(
        dir,
        "other_preload.c",
        "libother.so",
        &["-shared", "-fPIC", "-O2"],
    );
    let preload = other.display().to_string();
    // sh execs env through both libraries' execve hooks; env prints what the child got.
    let r = record_with(
        dir,
        &[],
        &["sh", "-c", "env | grep ^LD_PRELOAD="],
        &[("LD_PRELOAD", &preload)],
    );
    ok(&r);
    let line = r.stdout().trim().to_string();
    let list: Vec<&str> = line.trim_start_matches("LD_PRELOAD=").split(':').collect();
    assert_eq!(list.len(), 2, "both libraries, once each: {line}");
    assert!(list[0].ends_with("libringbuf_preload.so"), "{line}");
    assert_eq!(
        list[1], preload,
        "the other library keeps its place: {line}"
    );
    assert_eq!(r.starts_with_argv(&["env"]).len(), 1, "{}", r.dump());
    assert_eq!(
        r.starts_with_argv(&["grep", "^LD_PRELOAD="]).len(),
        1,
        "{}",
        r.dump()
    );
}

#[test]
fn static_and_setuid_targets_are_marked_untraced() {
    let (bin, dir) = sc();
    let st = compile(dir, "static_hello.c", "static_hello", &["-static", "-O2"]);
    // Without a supervisor (with one, the static child is followed: `static_programs.rs`).
    let r = tests::harness::record_with(
        dir,
        &["--no-supervise"],
        &[bin.to_str().unwrap(), "execvp", st.to_str().unwrap()],
        &[],
    );
    ok(&r);
    assert!(r.stdout().contains("static TAG"));
    let e = r.of("exec");
    assert_eq!(e.len(), 1, "{}", r.dump());
    assert_eq!(e[0]["untraced"], true, "{}", r.dump());
    assert_eq!(e[0]["untraced_reason"], "static");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("setuid case needs root to chown a binary to another user; checked static only");
        return;
    }
    let suid = dir.join("suid_echo");
    std::fs::copy("/bin/echo", &suid).unwrap();
    let ok_chown = std::process::Command::new("chown")
        .arg("nobody")
        .arg(&suid)
        .status()
        .unwrap()
        .success();
    assert!(ok_chown);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let r = record(
        dir,
        &[
            bin.to_str().unwrap(),
            "execvp",
            suid.to_str().unwrap(),
            "TAG",
        ],
    );
    ok(&r);
    let e = r.of("exec");
    assert_eq!(e[0]["untraced_reason"], "setuid", "{}", r.dump());
    // Never followed with ptrace: under it the kernel would drop the program's privileges.
    assert!(e[0].get("supervised").is_none(), "{}", r.dump());
    assert!(
        r.starts_with_argv(&[suid.to_str().unwrap(), "TAG"])
            .is_empty(),
        "a secure-mode child writes nothing"
    );
}

#[test]
fn fork_in_threaded_programs_and_hooks_in_signal_handlers_never_hang_or_mix_up() {
    let r = run(&["threads-fork", "16", "20"]);
    ok(&r);
    assert_eq!(r.stdout().trim(), "done");
    let forks = r.of("fork");
    assert_eq!(forks.len(), 320, "{} fork records", forks.len());
    let trues = r.starts_with_argv(&["true"]);
    assert_eq!(trues.len(), 320, "every /bin/true traced");
    // Every forked child's start names the right parent pid and the parent's span.
    let root = r.of("process_start")[0].clone();
    for s in r.of("process_start").iter().filter(|s| s["via"] == "fork") {
        assert_eq!(s["ppid"], root["pid"]);
        assert_eq!(s["parent_image"], root["span_id"]);
    }
    for t in &trues {
        assert!(r.descends(t, &root));
    }
    let dropped: u64 = r
        .of("lost")
        .iter()
        .map(|l| l["count"].as_u64().unwrap())
        .sum();
    assert_eq!(dropped, 0, "nothing lost: {}", r.dump());

    let r = run(&["signal-open"]);
    ok(&r);
    assert_eq!(r.stdout().trim(), "done");
    let opens = r.of("file_open");
    assert!(
        opens.iter().filter(|o| o["path"] == "/etc/passwd").count() == 20000,
        "every main-thread open recorded"
    );
    assert!(
        opens.iter().any(|o| o["path"] == "/etc/hostname"),
        "opens inside the signal handler recorded"
    );
    assert!(
        opens.iter().all(|o| o["fd"].as_i64().unwrap_or(-1) >= 0),
        "no open failed"
    );
}

#[test]
fn vfork_children_exec_or_exit_and_the_parent_stack_survives() {
    let r = run(&["vfork-exec"]);
    ok(&r);
    assert!(
        r.stdout().contains("status 0 sentinel 42"),
        "{}",
        r.stdout()
    );
    assert_eq!(
        r.starts_with_argv(&["echo", "TAG"]).len(),
        1,
        "{}",
        r.dump()
    );
    assert_eq!(r.of("fork")[0]["op"], "vfork");
    let r = run(&["vfork-exit"]);
    ok(&r);
    assert!(
        r.stdout().contains("status 7 sentinel 42"),
        "{}",
        r.stdout()
    );
    let exits: Vec<_> = r
        .of("process_exit")
        .into_iter()
        .filter(|e| e["exit_code"] == 7)
        .collect();
    assert_eq!(exits.len(), 1, "{}", r.dump());
    assert_eq!(exits[0]["how"], "_exit");
}

#[test]
fn clone3_children_keep_their_own_pid_and_parent() {
    let r = run(&["clone3"]);
    ok(&r);
    let out = r.stdout();
    if out.contains("unsupported") {
        eprintln!("clone3 not available here: {out}");
        return;
    }
    let child: i64 = out
        .lines()
        .find_map(|l| l.strip_prefix("child "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let e = one_start_record(&r, &["echo", "TAG"]);
    assert_eq!(
        e["pid"],
        child,
        "the exec is attributed to the clone3 child: {}",
        r.dump()
    );
    let echo = r.starts_with_argv(&["echo", "TAG"]);
    assert_eq!(echo[0]["pid"], child);
    assert!(r.descends(echo[0], r.of("process_start")[0]));
}

fn file_line<'a>(r: &'a Run, ty: &str, path: &str) -> &'a Value {
    r.lines
        .iter()
        .find(|l| l["event_type"] == ty && l["path"] == path)
        .unwrap_or_else(|| panic!("no {ty} of {path}:\n{}", r.dump()))
}

#[test]
fn file_calls_are_recorded_with_flags_modes_errno_and_absolute_paths() {
    let (_, dir) = sc();
    let d = dir.join("files");
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let ds = d.to_str().unwrap();
    let r = run(&["files", ds]);
    ok(&r);
    // The same output as without the library, but for the random name mkstemp made.
    let keep = |s: String| {
        s.lines()
            .filter(|l| !l.starts_with("mkstemp "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        keep(r.stdout()),
        keep(plain_in_fresh(&["files"], &dir.join("files-plain"))),
        "same behaviour as without the library"
    );
    let tmp = file_line(&r, "file_open", ds);
    assert_eq!(tmp["mode"], 0o600);
    assert_eq!(
        tmp["flags"].as_i64().unwrap() as i32 & libc::O_TMPFILE,
        libc::O_TMPFILE
    );
    let x = file_line(&r, "file_open", "x");
    assert_eq!(x["op"], "fopen");
    assert_eq!(x["access"], "write");
    assert_eq!(x["abs_path"], format!("{ds}/x"));
    let missing = file_line(&r, "file_open", "/nonexistent/y");
    assert_eq!(missing["errno"], libc::ENOENT);
    assert!(missing.get("fd").is_none());
    let rel = file_line(&r, "file_open", "rel");
    assert_eq!(
        rel["abs_path"],
        format!("{ds}/sub/rel"),
        "openat(dirfd) after chdir"
    );
    assert_eq!(rel["mode"], 0o640);
    let bad = r
        .lines
        .iter()
        .find(|l| l["event_type"] == "file_open" && l["dirfd"] == -5)
        .expect("openat(-5)");
    assert_eq!(bad["errno"], libc::EBADF);
    assert!(r.stdout().contains("openat -5 -1 errno 9"));
    let ren = file_line(&r, "file_rename", "x");
    assert_eq!(ren["new_path"], "x2");
    assert_eq!(ren["abs_new_path"], format!("{ds}/x2"));
    assert_eq!(file_line(&r, "file_mkdir", "sub")["mode"], 0o750);
    assert_eq!(file_line(&r, "file_link", "x2")["new_path"], "x3");
    assert_eq!(file_line(&r, "file_symlink", "x4")["target"], "x2");
    let tr = file_line(&r, "file_truncate", "x2");
    assert_eq!(
        (tr["length"].as_i64(), tr["result"].as_i64()),
        (Some(5), Some(0)),
        "{tr}"
    );
    assert_eq!(
        file_line(&r, "file_unlink", "x3")["abs_path"],
        format!("{ds}/x3")
    );
    assert_eq!(
        file_line(&r, "file_unlink", "rel")["abs_path"],
        format!("{ds}/sub/rel")
    );
    assert_eq!(file_line(&r, "file_rmdir", "sub")["result"], 0);
    let c = file_line(&r, "file_open", "c");
    assert_eq!(
        (c["op"].as_str(), c["mode"].as_i64()),
        (Some("creat"), Some(0o600))
    );
    assert_eq!(file_line(&r, "chdir", ds)["abs_path"], ds);
    let made = r
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix("mkstemp "))
        .unwrap()
        .to_string();
    let m = file_line(&r, "file_open", &made);
    assert_eq!(
        (m["op"].as_str(), m["mode"].as_i64()),
        (Some("mkstemp"), Some(0o600))
    );
    assert_eq!(m["abs_path"], format!("{ds}/{made}"));
    let t = r
        .lines
        .iter()
        .find(|l| l["op"] == "tmpfile")
        .expect("tmpfile recorded");
    assert!(t.get("abs_path").is_none() && t["fd"].as_i64().unwrap() >= 0);
    assert_eq!(file_line(&r, "file_open", ".")["op"], "opendir");
    let listed: i64 = r
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix("scandir "))
        .unwrap()
        .parse()
        .unwrap();
    let sc = r
        .lines
        .iter()
        .find(|l| l["op"] == "scandir")
        .expect("scandir recorded");
    assert_eq!(
        (sc["path"].as_str(), sc["result"].as_i64()),
        (Some("."), Some(listed))
    );
    assert_eq!(sc["abs_path"], ds);
}

fn plain_in_fresh(args: &[&str], d: &Path) -> String {
    let _ = std::fs::remove_dir_all(d);
    std::fs::create_dir_all(d).unwrap();
    let mut a = args.to_vec();
    a.push(d.to_str().unwrap());
    plain(&a)
}

#[test]
fn fortified_builds_are_recorded() {
    let (_, dir) = sc();
    let bin = compile(
        dir,
        "scenarios.c",
        "scenarios_fortify",
        &["-O2", "-D_FORTIFY_SOURCE=2"],
    );
    let syms = std::process::Command::new("nm")
        .arg("-D")
        .arg(&bin)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&syms.stdout).contains("__open_2"),
        "the build calls __open_2"
    );
    let r = record(dir, &[bin.to_str().unwrap(), "fortify"]);
    ok(&r);
    let o = file_line(&r, "file_open", "/etc/hostname");
    assert!(o["fd"].as_i64().unwrap() >= 0);
}

#[test]
fn errno_is_zero_at_main_and_kept_by_every_hook() {
    let r = run(&["errno"]);
    ok(&r);
    assert_eq!(r.stdout(), plain(&["errno"]));
    assert_eq!(
        r.stdout(),
        "errno at main 0\nafter open 1234\nafter failed open 2\nafter fork 77 child 0\n"
    );
}

#[test]
fn recording_goes_on_after_the_program_closes_every_descriptor() {
    let r = run(&["closefrom"]);
    ok(&r);
    file_line(&r, "file_open", "/etc/hostname");
}

#[test]
fn a_ring_too_small_drops_and_counts_and_the_program_runs_on() {
    let (bin, dir) = sc();
    let r = record_with(
        dir,
        &["--size", "128K"],
        &[bin.to_str().unwrap(), "opens", "200000"],
        &[],
    );
    assert!(
        r.out.status.success(),
        "{}",
        String::from_utf8_lossy(&r.out.stderr)
    );
    // The drain keeps up or not; either every record is there, or its drop is reported. The
    // program writes one process_start, its objects, 200,000 opens and one process_exit; any of
    // them may be the one dropped.
    let objects = objects_at_start();
    let events = r.lines.iter().filter(|l| l["event_type"] != "lost").count() as u64;
    let dropped: u64 = r
        .of("lost")
        .iter()
        .filter(|l| l["reason"] == "ring_full")
        .map(|l| l["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        events + dropped,
        200_002 + objects,
        "every record is written or counted as dropped"
    );
    let summary = String::from_utf8_lossy(&r.out.stderr);
    assert!(summary.contains(&format!("{dropped} dropped")), "{summary}");
}

/// How many `object_load` lines the scenario program's image has when it does nothing (the
/// objects the loader maps before `main`).
fn objects_at_start() -> u64 {
    let r = run(&["nothing"]);
    ok(&r);
    r.of("object_load").len() as u64
}

#[test]
fn the_library_records_nothing_of_its_own_work() {
    let r = run(&["nothing"]);
    ok(&r);
    // The process's shared objects (object_load), right after its start, and nothing of the
    // library's own work (mapping the ring, reading /proc).
    let kinds: Vec<&str> = r
        .lines
        .iter()
        .map(|l| l["event_type"].as_str().unwrap())
        .filter(|&t| t != "object_load")
        .collect();
    assert_eq!(kinds, ["process_start", "process_exit"], "{}", r.dump());
    let objects = r.of("object_load");
    assert!(
        objects.iter().all(|l| l["at_start"] == true),
        "{}",
        r.dump()
    );
    assert!(
        objects
            .iter()
            .any(|l| l["path"].as_str().unwrap().ends_with("/libc.so.6")),
        "{}",
        r.dump()
    );
    let s = &r.lines[0];
    assert_eq!(s["via"], "exec");
    assert!(s["parent_image"].is_null());
    assert!(s["parent_span"].is_null());
    assert!(s["span_id"].as_str().unwrap().starts_with("spn_"));
    let end = r.lines.last().unwrap();
    assert_eq!(end["how"], "return");
    assert_eq!(end["exit_code"], 0);
}

#[test]
fn exit_status_is_passed_through_and_recorded() {
    let r = run(&["exit-code", "42"]);
    assert_eq!(r.out.status.code(), Some(42));
    let e = r.of("process_exit");
    assert_eq!(
        (e[0]["how"].as_str(), e[0]["exit_code"].as_i64()),
        (Some("exit"), Some(42))
    );
}

#[test]
fn a_child_killed_by_a_signal_gets_its_end_recorded_by_the_parent_that_reaps_it() {
    let (_, dir) = sc();
    let r = record(dir, &["sh", "-c", "sh -c 'kill -KILL $$'; echo after $?"]);
    ok(&r);
    assert_eq!(r.stdout(), "after 137\n");
    let inner = r.starts_with_argv(&["sh", "-c", "kill -KILL $$"]);
    assert_eq!(inner.len(), 1, "{}", r.dump());
    let ends: Vec<_> = r
        .of("process_exit")
        .into_iter()
        .filter(|e| e["span_id"] == inner[0]["span_id"])
        .collect();
    assert_eq!(ends.len(), 1, "one end for the killed shell: {}", r.dump());
    assert_eq!(
        (ends[0]["how"].as_str(), ends[0]["signal"].as_i64()),
        (Some("signal"), Some(9))
    );
    assert_eq!(ends[0]["pid"], inner[0]["pid"]);
    assert!(ends[0].get("exit_code").is_none());
}

#[test]
fn calls_from_constructors_that_run_before_the_librarys_own_are_recorded() {
    let (_, dir) = sc();
    compile(
        dir,
        "early_ctor.c",
        "libearly.so",
        &["-shared", "-fPIC", "-O2"],
    );
    let rpath = format!("-Wl,-rpath,{}", dir.display());
    let ldir = format!("-L{}", dir.display());
    let bin = compile(
        dir,
        "early_main.c",
        "early_main",
        &["-O2", &ldir, "-learly", &rpath],
    );
    let r = record(dir, &[bin.to_str().unwrap(), "arg one", "two"]);
    ok(&r);
    assert_eq!(r.stdout(), "main arg one\n");
    let start = &r.of("process_start")[0];
    assert_eq!(
        Run::argv(start),
        [bin.to_str().unwrap(), "arg one", "two"],
        "argv read early is exact"
    );
    let open = file_line(&r, "file_open", "/etc/hostname");
    assert_eq!(open["span_id"], start["span_id"]);
    assert_eq!(r.of("process_start").len(), 1, "started once: {}", r.dump());
}
