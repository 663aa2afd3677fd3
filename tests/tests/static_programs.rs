//! No dark subtrees: programs the preload cannot enter (a `gcc -static` C program, a Go
//! program built with `CGO_ENABLED=0`) are followed by the supervisor that `record` starts.
//! Every process of their trees appears with its argv, exit status and parent link, dynamic
//! programs below them are traced by the preload again as one tree, their output is
//! byte-identical to an untraced run, and killing the supervisor mid-run harms nothing.
//! Helper programs: `tests/c/static_tree.c`, `tests/c/spawn_static.c`,
//! `tests/go/static_tree.go`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::harness::{compile, record_with, tools, Run};

struct Helpers {
    dir: PathBuf,
    c_static: PathBuf,
    c_noexec: PathBuf,
    spawner: PathBuf,
    go: PathBuf,
}

/// The helper programs, built once.
fn helpers() -> &'static Helpers {
    static S: OnceLock<Helpers> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let c_static = compile(&dir, "static_tree.c", "static_tree", &["-O1", "-static"]);
        let c_noexec = dir.join("static_noexec");
        std::fs::copy(&c_static, &c_noexec).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&c_noexec, std::fs::Permissions::from_mode(0o644)).unwrap();
        let spawner = compile(&dir, "spawn_static.c", "spawn_static", &["-O1"]);
        let go = dir.join("go_tree");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("go/static_tree.go");
        let o = Command::new("go")
            .arg("build")
            .arg("-o")
            .arg(&go)
            .arg(&src)
            .env("CGO_ENABLED", "0")
            .env("GOCACHE", dir.join("gocache"))
            .env("GOPATH", dir.join("gopath"))
            .env("HOME", &dir)
            .env("GOFLAGS", "-mod=mod")
            .env("GO111MODULE", "off")
            .output()
            .expect("run `go build` (Debian: golang-go; .ci/run installs it)");
        assert!(
            o.status.success(),
            "go build: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Helpers {
            dir,
            c_static,
            c_noexec,
            spawner,
            go,
        }
    })
}

fn plain(cmd: &[&str]) -> std::process::Output {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .current_dir(&helpers().dir)
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap()
}

/// The process images started by exec with exactly `argv`; there must be one.
fn one<'a>(r: &'a Run, argv: &[&str]) -> &'a Value {
    let s = r.starts_with_argv(argv);
    assert_eq!(s.len(), 1, "one image of {argv:?}:\n{}", r.dump());
    s[0]
}

/// The `process_exit` line of image `start`.
fn exit_of<'a>(r: &'a Run, start: &Value) -> &'a Value {
    let e: Vec<&Value> = r
        .of("process_exit")
        .into_iter()
        .filter(|l| l["span_id"] == start["span_id"])
        .collect();
    assert_eq!(e.len(), 1, "one exit of {start}:\n{}", r.dump());
    e[0]
}

/// Every image has exactly one `process_start` and at most one `process_exit`.
fn no_duplicates(r: &Run) {
    let mut seen = std::collections::HashMap::new();
    for l in r.of("process_start") {
        *seen.entry(l["span_id"].to_string()).or_insert(0) += 1;
    }
    assert!(seen.values().all(|&n| n == 1), "{}", r.dump());
    let mut ends = std::collections::HashMap::new();
    for l in r.of("process_exit") {
        *ends.entry(l["span_id"].to_string()).or_insert(0) += 1;
    }
    assert!(ends.values().all(|&n| n == 1), "{}", r.dump());
}

#[test]
fn a_static_c_root_and_its_whole_tree_are_followed() {
    let h = helpers();
    let bin = h.c_static.to_str().unwrap();
    let untraced = plain(&[bin]);
    let r = record_with(&h.dir, &[], &[bin], &[]);
    assert_eq!(r.out.status.code(), Some(5), "{}", r.dump());
    assert_eq!(
        r.out.stdout, untraced.stdout,
        "output differs from an untraced run"
    );
    no_duplicates(&r);

    let root = one(&r, &[bin]);
    assert_eq!(root["supervised"], true);
    assert!(
        root["parent_image"].is_null(),
        "the root has no parent image"
    );
    assert_eq!(exit_of(&r, root)["exit_code"], 5);

    // The dynamic child is the preload's again, joined under the static parent.
    let echo = one(&r, &["/bin/echo", "dynamic", "child"]);
    assert!(echo.get("supervised").is_none(), "{echo}");
    assert!(r.descends(echo, root), "echo below the root:\n{}", r.dump());
    assert_eq!(exit_of(&r, echo)["exit_code"], 0);
    assert_eq!(echo["event_type"], "process_start");

    let leaf = one(&r, &[bin, "leaf"]);
    assert_eq!(leaf["supervised"], true);
    assert!(r.descends(leaf, root));
    assert_eq!(exit_of(&r, leaf)["exit_code"], 7);

    // Four forks of the root: two exec'd, one _exited 3, one killed by SIGTERM.
    let forks: Vec<&Value> = r
        .of("fork")
        .into_iter()
        .filter(|l| l["span_id"] == root["span_id"])
        .collect();
    assert_eq!(forks.len(), 4, "{}", r.dump());
    let copies: Vec<&Value> = r
        .of("process_start")
        .into_iter()
        .filter(|l| l["via"] == "fork" && l["parent_image"] == root["span_id"])
        .collect();
    assert_eq!(copies.len(), 4, "{}", r.dump());
    let mut codes: Vec<String> = copies
        .iter()
        .filter_map(|c| {
            r.of("process_exit")
                .into_iter()
                .find(|l| l["span_id"] == c["span_id"])
                .map(|e| format!("{}/{}", e["exit_code"], e["signal"]))
        })
        .collect();
    codes.sort();
    assert_eq!(codes, ["3/null", "null/15"], "{}", r.dump());
    for c in &copies {
        assert_eq!(Run::argv(c), [bin], "a fork keeps its parent's argv");
        let f = forks.iter().find(|f| f["child_pid"] == c["pid"]);
        assert!(f.is_some(), "each copy's fork line:\n{}", r.dump());
    }
}

#[test]
fn a_static_program_below_a_traced_shell_joins_the_tree() {
    let h = helpers();
    let bin = h.c_static.to_str().unwrap();
    let script = format!("{bin} leaf; echo after");
    let r = record_with(&h.dir, &[], &["sh", "-c", &script], &[]);
    assert_eq!(r.out.status.code(), Some(0));
    assert_eq!(r.stdout(), "leaf\nafter\n");
    let sh = one(&r, &["sh", "-c", &script]);
    let exec = r
        .of("exec")
        .into_iter()
        .find(|l| Run::argv(l) == [bin, "leaf"])
        .unwrap_or_else(|| panic!("{}", r.dump()));
    assert_eq!(exec["supervised"], true, "{exec}");
    assert_eq!(exec["supervised_reason"], "static");
    assert!(exec.get("untraced").is_none());
    let leaf = one(&r, &[bin, "leaf"]);
    assert_eq!(leaf["supervised"], true);
    assert!(r.descends(leaf, sh));
    assert_eq!(exit_of(&r, leaf)["exit_code"], 7);
    no_duplicates(&r);
}

#[test]
fn a_go_program_and_its_children_are_followed() {
    let h = helpers();
    let go = h.go.to_str().unwrap();
    let untraced = plain(&[go]);
    let r = record_with(&h.dir, &[], &[go], &[]);
    assert_eq!(r.out.status.code(), Some(6), "{}", r.dump());
    assert_eq!(
        r.out.stdout, untraced.stdout,
        "output differs from an untraced run"
    );
    assert_eq!(r.stdout(), "from go\ngo leaf\nleaf exit 4\n");
    no_duplicates(&r);
    let root = one(&r, &[go]);
    assert_eq!(root["supervised"], true);
    assert_eq!(exit_of(&r, root)["exit_code"], 6);
    let echo = one(&r, &["/bin/echo", "from", "go"]);
    assert!(r.descends(echo, root), "{}", r.dump());
    assert!(echo.get("supervised").is_none());
    assert_eq!(exit_of(&r, echo)["exit_code"], 0);
    let leaf = one(&r, &[go, "leaf"]);
    assert!(r.descends(leaf, root));
    assert_eq!(leaf["supervised"], true);
    assert_eq!(exit_of(&r, leaf)["exit_code"], 4);
    // Go's runtime threads are not processes.
    let images = r.of("process_start").len();
    assert_eq!(
        images,
        5,
        "root, two forked copies, echo, leaf:\n{}",
        r.dump()
    );
}

#[test]
fn a_spawned_static_child_and_a_failed_static_exec() {
    let h = helpers();
    let (spawner, st, noexec) = (
        h.spawner.to_str().unwrap(),
        h.c_static.to_str().unwrap(),
        h.c_noexec.to_str().unwrap(),
    );
    let r = record_with(&h.dir, &[], &[spawner, st, noexec], &[]);
    assert_eq!(r.out.status.code(), Some(0), "{}", r.dump());
    assert_eq!(r.stdout(), "leaf\nspawned: 7\nexec: Permission denied\n");
    no_duplicates(&r);
    let root = one(&r, &[spawner, st, noexec]);
    let spawn = r.of("spawn");
    assert_eq!(spawn.len(), 1, "{}", r.dump());
    assert_eq!(spawn[0]["supervised"], true);
    let leaf = one(&r, &[st, "leaf"]);
    assert_eq!(leaf["supervised"], true);
    assert_eq!(leaf["pid"], spawn[0]["child_pid"]);
    assert!(r.descends(leaf, root));
    assert_eq!(exit_of(&r, leaf)["exit_code"], 7);
    // The failed exec: recorded with its errno, and the program goes on as the preload's.
    let exec = r
        .of("exec")
        .into_iter()
        .find(|l| Run::argv(l) == [noexec, "leaf"])
        .unwrap_or_else(|| panic!("{}", r.dump()));
    assert_eq!(exec["errno"], libc::EACCES, "{exec}");
    let opens: Vec<&Value> = r
        .of("file_open")
        .into_iter()
        .filter(|l| l["path"] == "/etc/hostname" && l["span_id"] == root["span_id"])
        .collect();
    assert_eq!(opens.len(), 1, "{}", r.dump());
    assert_eq!(exit_of(&r, root)["exit_code"], 0);
    assert!(exit_of(&r, root).get("supervised").is_none());
}

#[test]
fn without_a_supervisor_a_static_root_is_named_on_stderr() {
    let h = helpers();
    let bin = h.c_static.to_str().unwrap();
    let r = record_with(&h.dir, &["--no-supervise"], &[bin, "leaf"], &[]);
    assert_eq!(r.out.status.code(), Some(7));
    let err = String::from_utf8_lossy(&r.out.stderr);
    let line: Vec<&str> = err.lines().filter(|l| l.contains("static")).collect();
    assert_eq!(line.len(), 1, "one line says why: {err}");
    assert!(line[0].contains(bin), "{err}");
    assert!(r.of("process_start").is_empty());
}

/// The pid of `record`'s supervisor child.
fn supervisor_of(record: u32) -> Option<i32> {
    let kids = std::fs::read_to_string(format!("/proc/{record}/task/{record}/children")).ok()?;
    kids.split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == b"supervise"))
        })
}

#[test]
fn killing_the_supervisor_mid_run_harms_no_program() {
    let h = helpers();
    let bin = h.c_static.to_str().unwrap();
    let trace = h.dir.join("killed.jsonl");
    let _ = std::fs::remove_file(&trace);
    let t = tools();
    let child = Command::new(&t.drain)
        .arg("record")
        .arg("-o")
        .arg(&trace)
        .arg("--preload")
        .arg(&t.preload)
        .args(["--", bin, "slow", "20"])
        .env_remove("LD_PRELOAD")
        .env_remove("SUBSTRATE_RING")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the supervisor has followed a few children, then kill it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let sup = loop {
        let lines = std::fs::read_to_string(&trace).unwrap_or_default();
        let execs = lines.matches("\"/bin/true\"").count();
        if let (true, Some(s)) = (execs >= 3, supervisor_of(child.id())) {
            break s;
        }
        assert!(Instant::now() < deadline, "no progress: {lines}");
        std::thread::sleep(Duration::from_millis(20));
    };
    // SAFETY: killing a process of this test.
    unsafe { libc::kill(sup, libc::SIGKILL) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "slow done\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(9), "the program ran on unharmed");
    // Every /bin/true still ran traced by the preload, and each exited 0.
    let lines: Vec<Value> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let trues: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event_type"] == "process_start" && l["argv"][0] == "/bin/true")
        .collect();
    assert_eq!(
        trues.len(),
        20,
        "every /bin/true is still traced by the preload"
    );
}

/// The thread's tracer, from `/proc`.
fn tracer_of_this_thread() -> i32 {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    std::fs::read_to_string(format!("/proc/self/task/{tid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[test]
fn a_standalone_supervisor_follows_only_who_asks_for_itself() {
    use format::supervise::{op, request};
    let h = helpers();
    let ring_path = h.dir.join("standalone.ring");
    let _ = std::fs::remove_file(&ring_path);
    tests::harness::create_ring(&ring_path, &[]);
    let ring = format::Ring::open(&ring_path).unwrap();
    let header = *ring.header();
    let t = tools();
    let mut sup = Command::new(&t.drain)
        .arg("supervise")
        .arg(&ring_path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // SAFETY: plain id queries.
    let (pid, tid) = unsafe { (libc::getpid() as u32, libc::gettid() as u32) };
    // Asking for another process is refused (pid 1 is not the caller).
    let deadline = Instant::now() + Duration::from_secs(10);
    let f = loop {
        assert!(request(&header, op::EXEC, 1, 1, [1; 16]).is_none());
        if let Some(f) = request(&header, op::EXEC, pid, tid, [1; 16]) {
            break f;
        }
        assert!(Instant::now() < deadline, "the supervisor never listened");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(tracer_of_this_thread(), sup.id() as i32, "seized");
    f.done(pid, tid);
    assert_eq!(tracer_of_this_thread(), 0, "released");
    // One supervisor per ring.
    let second = Command::new(&t.drain)
        .arg("supervise")
        .arg(&ring_path)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&second.stderr).contains("already has a supervisor"));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(sup.id() as i32, libc::SIGTERM) };
    assert!(sup.wait().unwrap().success());
    // No supervisor: nothing to ask, nothing waits.
    let t0 = Instant::now();
    assert!(request(&header, op::EXEC, pid, tid, [1; 16]).is_none());
    assert!(t0.elapsed() < Duration::from_secs(1));
}

#[test]
fn static_full_records_the_file_opens_of_static_programs() {
    let h = helpers();
    let bin = h.c_static.to_str().unwrap();
    let untraced = plain(&[bin]);
    let r = record_with(&h.dir, &["--static", "full"], &[bin], &[]);
    assert_eq!(r.out.status.code(), Some(5), "{}", r.dump());
    assert_eq!(r.out.stdout, untraced.stdout);
    let root = one(&r, &[bin]);
    let opens: Vec<&Value> = r
        .of("file_open")
        .into_iter()
        .filter(|l| l["span_id"] == root["span_id"] && l["path"] == "/etc/hostname")
        .collect();
    assert_eq!(opens.len(), 1, "{}", r.dump());
    assert!(opens[0]["fd"].as_i64().unwrap() >= 0, "{}", opens[0]);
    // Without it, the same run has no opens of the static image.
    let r = record_with(&h.dir, &[], &[bin], &[]);
    let root = one(&r, &[bin]);
    assert!(r
        .of("file_open")
        .iter()
        .all(|l| l["span_id"] != root["span_id"]));
}
