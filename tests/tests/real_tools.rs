//! Real tools as whole process trees, traced: they behave as without the library, and the
//! programs the trace says were started (pid and exact argv) are exactly those `strace -f`
//! saw being exec'd, in the same run.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use tests::harness::{record_straced, Run, Straced};

/// The programs started according to the trace vs strace's successful `execve`s, as (pid,
/// argv) of the call: `exec` lines of the calling pid, `spawn` lines of the child pid. strace
/// shows the call's argv; for a script, the new image's own argv differs (the interpreter
/// comes first), so the calls are compared, not the images. The root command's own exec is
/// done by the untraced drain and left out. Untraced (static, setuid) targets are excluded.
fn assert_same_execs(s: &Straced, cmd: &[&str], what: &str) {
    let r = &s.run;
    assert!(
        r.out.status.success(),
        "{what}: exit {:?}\nstderr: {}",
        r.out.status,
        String::from_utf8_lossy(&r.out.stderr)
    );
    let lost: u64 = r
        .of("lost")
        .iter()
        .map(|l| l["count"].as_u64().unwrap())
        .sum();
    assert_eq!(lost, 0, "{what}: records lost or dropped:\n{}", r.dump());
    let root = r.of("process_start")[0];
    let root_call = (
        root["pid"].as_i64().unwrap(),
        cmd.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
    );
    let mut ours: BTreeSet<(i64, Vec<String>)> = BTreeSet::new();
    let mut untraced = BTreeSet::new();
    for l in &r.lines {
        let started = match l["event_type"].as_str() {
            Some("exec") => l["pid"].as_i64(),
            Some("spawn") => l["child_pid"].as_i64(),
            _ => continue,
        };
        if l.get("errno").is_some() {
            continue;
        }
        let call = (started.unwrap(), Run::argv(l));
        if l["untraced"] == true {
            untraced.insert(call);
        } else {
            ours.insert(call);
        }
    }
    let theirs: BTreeSet<(i64, Vec<String>)> = s
        .execs
        .iter()
        .filter(|c| **c != root_call && !untraced.contains(*c))
        .cloned()
        .collect();
    let missing: Vec<_> = theirs.difference(&ours).collect();
    let extra: Vec<_> = ours.difference(&theirs).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{what}: programs started differ from strace\nmissing from trace: {missing:#?}\nnot in strace: {extra:#?}");
    assert!(!ours.is_empty(), "{what}: a tree, not a single process");
    // Every image the library saw start, except the root, is joined to a parent image that is
    // in the trace, and each traced exec call produced one new image in the same pid.
    let starts = r.of("process_start");
    let spans: BTreeSet<&str> = starts
        .iter()
        .map(|l| l["span_id"].as_str().unwrap())
        .collect();
    for l in starts.iter().skip(1) {
        let p = l["parent_image"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no parent image: {l}"));
        assert!(
            spans.contains(p),
            "{what}: parent image of {l} not in the trace"
        );
    }
    for (pid, _) in &ours {
        assert!(
            starts
                .iter()
                .any(|l| l["pid"] == *pid && l["via"] == "exec"),
            "{what}: no image started in pid {pid}"
        );
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn shell_pipelines() {
    let d = tmp();
    let cmd = ["sh", "-c", "ls / | grep -c . | cat > n.txt; echo $(uname) >> n.txt; for i in 1 2 3; do /bin/true $i; done; cat n.txt"];
    let s = record_straced(d.path(), &cmd, &[]);
    assert_same_execs(&s, &cmd, "sh -c");
    let out = String::from_utf8_lossy(&s.run.out.stdout).into_owned();
    assert!(out.ends_with("Linux\n"), "{out}");
}

fn write(p: &Path, s: &str) {
    std::fs::write(p, s).unwrap();
}

#[test]
fn make_j2_of_a_small_c_project() {
    let d = tmp();
    let mut objs = String::new();
    for i in 0..8 {
        write(
            &d.path().join(format!("f{i}.c")),
            &format!("int f{i}(void) {{ return {i}; }}\n"),
        );
        objs.push_str(&format!(" f{i}.o"));
    }
    write(
        &d.path().join("main.c"),
        "int f0(void);\nint main(void) { return f0(); }\n",
    );
    write(
        &d.path().join("Makefile"),
        &format!("app: main.o{objs}\n\tcc -o $@ $^\n%.o: %.c\n\tcc -O2 -c $< -o $@\n"),
    );
    let s = record_straced(d.path(), &["make", "-j2"], &[]);
    assert_same_execs(&s, &["make", "-j2"], "make -j2");
    assert!(d.path().join("app").exists());
    let r = &s.run;
    let ccs = r.starts_with_argv(&["cc", "-O2", "-c", "f3.c", "-o", "f3.o"]);
    assert_eq!(ccs.len(), 1, "{}", r.dump());
    // The compiler's output file is in the trace, with its absolute path.
    let abs = d.path().canonicalize().unwrap().join("f3.o");
    assert!(
        r.of("file_open")
            .iter()
            .any(|o| o["abs_path"] == abs.to_str().unwrap() && o["access"] != "read"),
        "f3.o written"
    );
}

#[test]
fn git_init_add_commit_status() {
    if !have("git") {
        panic!("git is required (installed by .ci/run)");
    }
    let d = tmp();
    std::fs::create_dir_all(d.path().join("repo")).unwrap();
    write(&d.path().join("repo/a.txt"), "hello\n");
    let home = d.path().to_str().unwrap().to_string();
    let env = [
        ("HOME", home.as_str()),
        ("GIT_AUTHOR_NAME", "t"),
        ("GIT_AUTHOR_EMAIL", "t@e"),
        ("GIT_COMMITTER_NAME", "t"),
        ("GIT_COMMITTER_EMAIL", "t@e"),
    ];
    let cmd = ["sh", "-c", "cd repo && git init -q . && git add a.txt && git commit -qm first && git status --short && git log --oneline | wc -l"];
    let s = record_straced(d.path(), &cmd, &env);
    assert_same_execs(&s, &cmd, "git");
    assert_eq!(String::from_utf8_lossy(&s.run.out.stdout).trim(), "1");
    assert!(
        s.run.of("file_rename").iter().any(|l| l["new_path"]
            .as_str()
            .is_some_and(|p| p.ends_with(".git/index"))),
        "git's index rename is recorded"
    );
}

#[test]
fn python_subprocess() {
    let d = tmp();
    let cmd = ["python3", "-c", "import subprocess as s; s.run(['echo','one']); print(s.check_output('echo two | cat', shell=True).decode().strip())"];
    let s = record_straced(d.path(), &cmd, &[]);
    assert_same_execs(&s, &cmd, "python3 subprocess");
    assert_eq!(String::from_utf8_lossy(&s.run.out.stdout), "one\ntwo\n");
}

#[test]
fn node_child_process() {
    if !have("node") {
        panic!("node is required (installed by .ci/run)");
    }
    let d = tmp();
    let cmd = ["node", "-e", "const c=require('child_process'); process.stdout.write(c.execSync('echo one').toString()); c.spawnSync('true'); console.log(c.execFileSync('echo',['two']).toString().trim())"];
    let s = record_straced(d.path(), &cmd, &[]);
    assert_same_execs(&s, &cmd, "node child_process");
    assert_eq!(String::from_utf8_lossy(&s.run.out.stdout), "one\ntwo\n");
}

#[test]
fn cargo_build_of_a_tiny_crate() {
    let d = tmp();
    std::fs::create_dir_all(d.path().join("src")).unwrap();
    write(&d.path().join("Cargo.toml"), "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\nbuild = \"build.rs\"\n");
    write(
        &d.path().join("build.rs"),
        "fn main() { println!(\"cargo:rerun-if-changed=build.rs\"); }\n",
    );
    write(
        &d.path().join("src/main.rs"),
        "fn main() { println!(\"tiny\"); }\n",
    );
    let target = d.path().join("target");
    let s = record_straced(
        d.path(),
        &["cargo", "build", "--offline", "-q"],
        &[
            ("CARGO_TARGET_DIR", target.to_str().unwrap()),
            ("CARGO_BUILD_JOBS", "2"),
        ],
    );
    assert_same_execs(&s, &["cargo", "build", "--offline", "-q"], "cargo build");
    assert!(target.join("debug/tiny").exists());
    let r = &s.run;
    assert!(
        r.of("process_start")
            .iter()
            .any(|l| Run::argv(l).first().is_some_and(|a| a.ends_with("rustc"))),
        "rustc traced"
    );
    assert!(
        r.of("process_start").iter().any(|l| l["exe"]
            .as_str()
            .is_some_and(|e| e.contains("build-script-build"))),
        "the build script traced"
    );
}
