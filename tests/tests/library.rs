//! The drain as a library, the way `substrate` uses it: a ring created with `format`, a command
//! run under the preload, the ring followed in-process with `drain::follow::Follower`, events
//! received as typed values. And the typed events agree with the lines, field for field, over
//! real traces of every event type.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use drain::event::{Event, EventSink};
use drain::follow::{Follower, Progress, Until};
use format::{CreateOptions, Ring};
use serde_json::Value;
use tests::harness::{compile, tools};

/// Run `cmd` traced into a new ring in `dir` and follow it in-process until every traced
/// process is gone; the events as the callback got them.
fn follow_in_process(dir: &Path, cmd: &[&str]) -> (Vec<Event<'static>>, drain::decode::Stats) {
    let path = dir.join("session.ring");
    let ring = Ring::create(&path, &CreateOptions::default()).unwrap();
    let mut child = Command::new(cmd[0])
        .args(&cmd[1..])
        .current_dir(dir)
        .env("LD_PRELOAD", &tools().preload)
        .env("SUBSTRATE_RING", &path)
        .env(
            "SHIM_PARENT_SPAN",
            "spn_01a2375b-c037-7268-8373-3c9f6bf6d3e4",
        )
        .env_remove("SHIM_SESSION_ID")
        .env_remove("SUBSTRATE_PARENT_IMAGE")
        .spawn()
        .unwrap();
    let mut events = vec![];
    let mut sink = EventSink::new(|e| events.push(e.into_owned()));
    let mut status = None;
    let mut done = |p: &mut Progress<'_>| {
        if status.is_none() {
            status = child.try_wait().unwrap();
        }
        status.is_some() && p.caught_up() && !p.traced_processes_alive()
    };
    let mut f = Follower::new(&ring, drain::decode::Options { redact: true });
    f.run(
        &mut sink,
        Until {
            follow: true,
            done: Some(&mut done),
            busy_wait: Duration::from_millis(200),
            publish: true,
        },
    )
    .unwrap();
    let stats = f.stats().clone();
    let status = match status {
        Some(s) => s,
        None => child.wait().unwrap(),
    };
    assert!(status.success());
    (events, stats)
}

#[test]
fn a_ring_followed_in_process_gives_typed_events_of_the_whole_tree() {
    let dir = tempfile::tempdir().unwrap();
    let (events, stats) = follow_in_process(
        dir.path(),
        &[
            "sh",
            "-c",
            "cat /etc/hostname > copy; ls / > /dev/null; exit 0",
        ],
    );
    fn of<'a>(
        events: &'a [Event<'static>],
        t: &'static str,
    ) -> impl Iterator<Item = &'a Event<'static>> {
        events.iter().filter(move |e| e.event_type == t)
    }
    let of = |t: &'static str| of(&events, t);
    let starts: Vec<String> = of("process_start")
        .filter_map(|e| {
            e.argv
                .as_ref()
                .and_then(|a| a.first().map(|s| s.to_string()))
        })
        .collect();
    for p in ["sh", "cat", "ls"] {
        assert!(starts.iter().any(|s| s == p), "{p} in {starts:?}");
    }
    let copy = of("file_open")
        .find(|e| e.path.as_deref() == Some("copy"))
        .expect("the redirection");
    let abs = dir.path().join("copy");
    assert_eq!(copy.abs_path.as_deref(), abs.to_str());
    assert!(of("file_open").any(|e| e.path.as_deref() == Some("/etc/hostname")));
    // Every image is in the tree and inside the enclosing substrate span.
    let root = of("process_start")
        .find(|e| e.parent_image.is_none())
        .unwrap();
    for e in &events {
        assert_eq!(
            e.parent_span.as_deref(),
            Some("spn_01a2375b-c037-7268-8373-3c9f6bf6d3e4")
        );
        assert_eq!(e.component, "telemetry");
    }
    for s in of("process_start").filter(|e| e.parent_image.is_some()) {
        assert!(events.iter().any(|e| e.span_id == s.parent_image), "{s:?}");
    }
    assert_eq!(root.argv.as_ref().unwrap()[0], "sh");
    assert_eq!(stats.events, events.len() as u64);
    assert_eq!(stats.lost + stats.dropped, 0);
}

#[test]
fn typed_events_read_alike_and_serialize_back_to_the_lines_of_real_traces() {
    let dir = tempfile::tempdir().unwrap();
    let bin = compile(dir.path(), "scenarios.c", "scenarios", &["-O2"]);
    let net = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1); \
               c = socket.socket(); c.connect(s.getsockname()); a, _ = s.accept(); \
               socket.getaddrinfo('localhost', 80)";
    let runs: Vec<Vec<&str>> = vec![
        vec![bin.to_str().unwrap(), "files", dir.path().to_str().unwrap()],
        vec![bin.to_str().unwrap(), "exec-fail"],
        vec![bin.to_str().unwrap(), "exec", "system", "X"],
        vec!["python3", "-c", net],
        // An argv too long for one record: exec and process_start lines are `truncated`.
        vec!["sh", "-c", "/bin/true $(printf '%080000d' 0)"],
        vec!["sh", "-c", "curl --token=abc123 x 2>/dev/null; kill -9 $$"],
    ];
    let mut types = std::collections::BTreeSet::new();
    let mut truncated = 0u64;
    for cmd in runs {
        let trace = dir.path().join("t.jsonl");
        let _ = std::fs::remove_file(&trace);
        let o = Command::new(&tools().drain)
            .arg("record")
            .arg("-o")
            .arg(&trace)
            .arg("--")
            .args(&cmd)
            .current_dir(dir.path())
            .env_remove("SUBSTRATE_PARENT_IMAGE")
            .output()
            .unwrap();
        assert!(!o.stderr.is_empty(), "the summary line");
        for line in std::fs::read_to_string(&trace).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let ev = Event::parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(ev.to_value(), v, "{line}");
            // The crate's own reader and serde's derive read every line alike.
            let derived: Event<'static> = serde_json::from_str(line).unwrap();
            assert_eq!(ev, derived, "{line}");
            types.insert(ev.event_type.to_string());
            truncated += u64::from(ev.truncated == Some(true));
        }
    }
    assert!(truncated > 0, "a truncated line was checked");
    for t in [
        "process_start",
        "process_exit",
        "exec",
        "spawn",
        "fork",
        "file_open",
        "file_rename",
        "file_mkdir",
        "file_symlink",
        "net_bind",
        "net_connect",
        "net_accept",
        "dns_lookup",
    ] {
        assert!(types.contains(t), "{t} not covered: {types:?}");
    }
}

#[test]
fn the_substrate_session_example_traces_a_command_in_process() {
    let example = tests::harness::drain_example("substrate_session");
    let o = Command::new(example)
        .args(["sh", "-c", "ls / > /dev/null"])
        .env("SUBSTRATE_PRELOAD", &tools().preload)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.contains("process_start") && l.contains("ls /")),
        "{out}"
    );
    assert!(out.lines().any(|l| l.contains("process_exit")), "{out}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("exit Some(0)") && err.contains("0 lost, 0 dropped"),
        "{err}"
    );
}
