//! `object_load`: every shared object of every process image, once per image — those the
//! loader maps before `main` (libc, libm, the loader itself) and those loaded later with
//! `dlopen` (a plugin built here, Python extension modules), in a single-threaded and a
//! multi-threaded process, across fork, exec, `_exit` from a signal handler; and the README's
//! "every file this build read" one-liner.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;
use tests::harness::{compile, record, tools, Run};

/// The objects program and its two plugins, built once in a directory kept for the run.
struct Progs {
    dir: PathBuf,
    bin: PathBuf,
    plugin: PathBuf,
    plugin2: PathBuf,
}

fn progs() -> &'static Progs {
    static P: OnceLock<(tempfile::TempDir, Progs)> = OnceLock::new();
    &P.get_or_init(|| {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().to_path_buf();
        let so = ["-shared", "-fPIC", "-O2"];
        let plugin = compile(&dir, "plugin.c", "libplugin.so", &so);
        let plugin2 = compile(&dir, "plugin.c", "libplugin2.so", &so);
        let bin = compile(&dir, "objects.c", "objects", &["-O2", "-lm", "-ldl"]);
        std::fs::write(dir.join("data.txt"), "data\n").unwrap();
        (
            t,
            Progs {
                dir,
                bin,
                plugin,
                plugin2,
            },
        )
    })
    .1
}

fn run(args: &[&str]) -> Run {
    let p = progs();
    let mut cmd = vec![p.bin.to_str().unwrap()];
    cmd.extend_from_slice(args);
    let r = record(&p.dir, &cmd);
    assert!(
        r.out.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&r.out.stderr),
        r.dump()
    );
    r
}

/// The `object_load` lines of image `span`, in trace order.
fn objects_of<'a>(r: &'a Run, span: &Value) -> Vec<&'a Value> {
    r.of("object_load")
        .into_iter()
        .filter(|l| &l["span_id"] == span)
        .collect()
}

/// The file name of an `object_load` line.
fn name(l: &Value) -> &str {
    let p = l["path"].as_str().unwrap_or("");
    p.rsplit('/').next().unwrap_or(p)
}

/// No image has two `object_load` lines for one path; every line names a file by an absolute
/// path (`abs_path`) and has a non-zero base.
fn once_per_image(r: &Run) {
    let mut seen = HashSet::new();
    for l in r.of("object_load") {
        let key = (l["span_id"].to_string(), l["path"].to_string());
        assert!(seen.insert(key), "duplicate object line {l}\n{}", r.dump());
        let abs = l["abs_path"].as_str().unwrap_or("");
        assert!(abs.starts_with('/'), "abs_path of {l}");
        assert!(l["base"].as_u64().unwrap_or(0) != 0, "base of {l}");
        assert!(
            !name(l).starts_with("linux-vdso") && !l["path"].as_str().unwrap().is_empty(),
            "neither the vDSO nor the program is an object line: {l}"
        );
    }
}

/// The image of the objects program (exec'd, not a forked copy).
fn program_image(r: &Run) -> &Value {
    let p = progs();
    r.of("process_start")
        .into_iter()
        .find(|l| l["via"] == "exec" && l["exe"] == p.bin.to_str().unwrap())
        .unwrap_or_else(|| panic!("no start of the program: {}", r.dump()))
}

fn names(lines: &[&Value]) -> Vec<String> {
    lines.iter().map(|l| name(l).to_string()).collect()
}

#[test]
fn objects_mapped_at_start_and_by_dlopen_appear_once_each() {
    let p = progs();
    let r = run(&["dlopen", p.plugin.to_str().unwrap()]);
    assert!(r.stdout().contains("libplugin.so 42"), "{}", r.stdout());
    once_per_image(&r);
    let img = program_image(&r);
    let objs = objects_of(&r, &img["span_id"]);
    let n = names(&objs);
    for want in [
        "libc.so.6",
        "libm.so.6",
        "libringbuf_preload.so",
        "libplugin.so",
    ] {
        assert_eq!(
            n.iter().filter(|x| *x == want).count(),
            1,
            "{want} once in {n:?}"
        );
    }
    assert!(
        n.iter().any(|x| x.starts_with("ld-linux")),
        "the dynamic loader: {n:?}"
    );
    assert!(
        !n.iter().any(|x| *x == "objects"),
        "the program is its process_start's exe, not an object: {n:?}"
    );
    for l in &objs {
        let later = name(l) == "libplugin.so";
        assert_eq!(l["at_start"], !later, "{l}");
        assert_eq!(l["pid"], img["pid"]);
    }
    let plugin = objs.iter().find(|l| name(l) == "libplugin.so").unwrap();
    assert_eq!(plugin["abs_path"], p.plugin.to_str().unwrap());
    // The objects of the start come right after the image's process_start, before anything
    // the program does.
    let start_pos = img["pos"].as_u64().unwrap();
    let libm = objs.iter().find(|l| name(l) == "libm.so.6").unwrap();
    let first_other = r
        .lines
        .iter()
        .filter(|l| l["span_id"] == img["span_id"] && l["event_type"] == "file_open")
        .map(|l| l["pos"].as_u64().unwrap())
        .min()
        .unwrap();
    let at = libm["pos"].as_u64().unwrap();
    assert!(start_pos < at && at < first_other, "{}", r.dump());
}

#[test]
fn an_object_unloaded_and_loaded_again_is_one_line() {
    let p = progs();
    let r = run(&["reload", p.plugin.to_str().unwrap()]);
    once_per_image(&r);
    let img = program_image(&r);
    let n = names(&objects_of(&r, &img["span_id"]));
    // dlclose'd before any checkpoint, then loaded again: seen at exit, once.
    assert_eq!(
        n.iter().filter(|x| *x == "libplugin.so").count(),
        1,
        "{n:?}"
    );
}

#[test]
fn a_forked_child_inherits_its_parents_objects_and_adds_its_own() {
    let p = progs();
    let r = run(&[
        "fork",
        p.plugin.to_str().unwrap(),
        p.plugin2.to_str().unwrap(),
    ]);
    once_per_image(&r);
    let img = program_image(&r);
    let parent = names(&objects_of(&r, &img["span_id"]));
    assert!(
        parent.contains(&"libplugin.so".to_string()),
        "what the parent loaded before the fork is its own: {parent:?}"
    );
    assert!(!parent.contains(&"libplugin2.so".to_string()), "{parent:?}");
    let child = r
        .of("process_start")
        .into_iter()
        .find(|l| l["via"] == "fork" && l["parent_image"] == img["span_id"])
        .unwrap_or_else(|| panic!("forked child: {}", r.dump()));
    let objs = objects_of(&r, &child["span_id"]);
    assert_eq!(
        names(&objs),
        ["libplugin2.so"],
        "the child has its parent's objects; only what it loaded itself is its own (and \
         it was seen at _exit)"
    );
    assert_eq!(objs[0]["at_start"], false);
}

#[test]
fn an_exec_records_what_the_image_loaded_before_it_ends() {
    let p = progs();
    let r = run(&["exec", p.plugin.to_str().unwrap()]);
    once_per_image(&r);
    let img = program_image(&r);
    let objs = objects_of(&r, &img["span_id"]);
    let plugin = objs
        .iter()
        .find(|l| name(l) == "libplugin.so")
        .unwrap_or_else(|| panic!("{}", r.dump()));
    let exec = r
        .of("exec")
        .into_iter()
        .find(|l| l["span_id"] == img["span_id"])
        .unwrap();
    assert!(plugin["pos"].as_u64() < exec["pos"].as_u64());
    // The new image has its own list, from its start.
    let t = r.starts_with_argv(&["true"]);
    assert_eq!(t.len(), 1, "{}", r.dump());
    let n = names(&objects_of(&r, &t[0]["span_id"]));
    assert!(n.contains(&"libc.so.6".to_string()), "{n:?}");
    assert!(!n.contains(&"libplugin.so".to_string()), "{n:?}");
}

#[test]
fn a_multithreaded_process_and_an_exit_from_a_signal_handler_are_covered() {
    let p = progs();
    for mode in ["threads", "signal"] {
        let r = run(&[mode, p.plugin.to_str().unwrap()]);
        once_per_image(&r);
        let img = program_image(&r);
        let n = names(&objects_of(&r, &img["span_id"]));
        assert!(
            n.contains(&"libplugin.so".to_string()),
            "{mode}: {n:?}\n{}",
            r.dump()
        );
        let exit = r
            .of("process_exit")
            .into_iter()
            .find(|l| l["span_id"] == img["span_id"])
            .unwrap_or_else(|| panic!("{mode}: {}", r.dump()));
        assert_eq!(
            exit["how"],
            if mode == "threads" { "exit" } else { "_exit" }
        );
    }
}

/// The first `python3` (a real interpreter, not a wrapper script) on this machine.
fn python() -> Option<String> {
    let o = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

#[test]
fn python_extension_modules_appear_in_the_interpreters_image() {
    let Some(py) = python() else {
        eprintln!("python3 is not installed: skipped");
        return;
    };
    // Where _json comes from here: an extension module (a .so), or built in.
    let o = Command::new(&py)
        .args(["-c", "import _json; print(getattr(_json, '__file__', ''))"])
        .output()
        .unwrap();
    let file = String::from_utf8_lossy(&o.stdout).trim().to_string();
    if !file.ends_with(".so") {
        eprintln!("_json is built into this python ({file:?}): skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = record(dir.path(), &[&py, "-c", "import _json; print('ok')"]);
    assert!(r.out.status.success(), "{}", r.dump());
    once_per_image(&r);
    let img = r
        .of("process_start")
        .into_iter()
        .find(|l| l["via"] == "exec" && l["argv"][0] == py.as_str())
        .unwrap_or_else(|| panic!("{}", r.dump()));
    let objs = objects_of(&r, &img["span_id"]);
    let json: Vec<_> = objs.iter().filter(|l| l["path"] == file.as_str()).collect();
    assert_eq!(json.len(), 1, "{file} once: {}", r.dump());
    assert_eq!(json[0]["at_start"], false);
}

/// The "every file this build read" line of the README, as documented.
fn readme_jq_line() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    readme
        .lines()
        .find(|l| l.starts_with("jq -r") && l.contains("object_load"))
        .expect("README has the jq line for the files a build read")
        .to_string()
}

/// What the README's jq line computes, for machines without jq: successful opens for reading,
/// every shared object, every program exec'd.
fn files_read(lines: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = lines
        .iter()
        .filter(|l| l["component"] == "telemetry")
        .filter_map(|l| {
            let path = || l["abs_path"].as_str().or(l["path"].as_str());
            match l["event_type"].as_str()? {
                "object_load" => path(),
                "file_open" if l.get("errno").is_none() && l["access"] != "write" => path(),
                "process_start" if l["via"] == "exec" => l["exe"].as_str(),
                _ => None,
            }
        })
        .map(String::from)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn the_readme_one_liner_lists_every_file_the_run_read() {
    let p = progs();
    let r = run(&["dlopen", p.plugin.to_str().unwrap()]);
    let trace_dir = tempfile::tempdir().unwrap();
    let mut text = String::from("{\"component\":\"substrate\",\"event_type\":\"command\"}\n");
    for l in &r.lines {
        text.push_str(&l.to_string());
        text.push('\n');
    }
    std::fs::write(trace_dir.path().join("trace.jsonl"), text).unwrap();
    let expected = files_read(&r.lines);
    let have_jq = Command::new("jq").arg("--version").output().is_ok();
    let listed: Vec<String> = if have_jq {
        let o = Command::new("sh")
            .args(["-c", &readme_jq_line()])
            .current_dir(trace_dir.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // `sort -u` orders by the locale; compare in byte order.
        let mut v: Vec<String> = String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    } else {
        eprintln!("jq is not installed: checked the same selection in Rust");
        expected.clone()
    };
    assert_eq!(listed, expected, "jq and its description agree");
    let data = p.dir.join("data.txt");
    for want in [
        data.to_str().unwrap(),
        p.plugin.to_str().unwrap(),
        p.bin.to_str().unwrap(),
    ] {
        assert!(listed.iter().any(|l| l == want), "{want} in {listed:?}");
    }
    assert!(
        listed.iter().any(|l| l.ends_with("/libm.so.6")),
        "{listed:?}"
    );
}

#[test]
fn show_renders_object_lines_and_summary_counts_them() {
    let p = progs();
    let r = run(&["dlopen", p.plugin.to_str().unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    let text: String = r.lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&trace, text).unwrap();
    let drain = |args: &[&str]| {
        let o = Command::new(&tools().drain)
            .args(args)
            .arg(&trace)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let show = drain(&["show", "--events", "object"]);
    let plugin = format!("load \"{}\" at 0x", p.plugin.display());
    let line = show
        .lines()
        .find(|l| l.contains(&plugin))
        .unwrap_or_else(|| panic!("{show}"));
    assert!(line.ends_with("(dlopen)"), "{line}");
    assert!(
        show.lines()
            .any(|l| l.contains("/libm.so.6\" at 0x") && l.ends_with("(before main)")),
        "{show}"
    );
    assert_eq!(
        show.lines().count(),
        r.of("object_load").len(),
        "only object lines: {show}"
    );
    let summary: Value = serde_json::from_str(&drain(&["summary", "--json"])).unwrap();
    let objects = &summary["objects_loaded"];
    assert_eq!(objects[p.plugin.to_str().unwrap()], 1, "{summary}");
    assert_eq!(
        summary["by_type"]["object_load"].as_u64(),
        Some(r.of("object_load").len() as u64)
    );
    let text = drain(&["summary"]);
    assert!(text.contains("shared objects loaded (images)"), "{text}");
}
