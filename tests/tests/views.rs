//! `summary`, `tree`, `show` and `export --format chrome` on real traces, from a trace file
//! (shared with lines that are not telemetry) and from the ring itself.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tests::harness::{drain_ok, tools};

const SCRIPT: &str = "cat /etc/hostname > copy; cat /nonexistent 2>/dev/null; \
                      mkdir -p d; cat copy > d/x; rm copy; /bin/true; exit 3";

/// Record SCRIPT in `dir`; the trace (with a substrate line in front) and the kept ring.
fn recorded(dir: &Path) -> (PathBuf, PathBuf, Vec<Value>) {
    let trace = dir.join("trace.jsonl");
    let ring = dir.join("r.ring");
    std::fs::write(
        &trace,
        "{\"component\":\"substrate\",\"event_type\":\"command\"}\n",
    )
    .unwrap();
    let o = Command::new(&tools().drain)
        .args(["record", "--keep-ring", "--ring"])
        .arg(&ring)
        .arg("-o")
        .arg(&trace)
        .args(["--", "sh", "-c", SCRIPT])
        .current_dir(dir)
        .env_remove("SUBSTRATE_PARENT_IMAGE")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let lines = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (trace, ring, lines)
}

fn run(args: &[&str], input: &Path) -> String {
    String::from_utf8(drain_ok(args, input)).unwrap()
}

fn count(lines: &[Value], t: &str) -> usize {
    lines.iter().filter(|l| l["event_type"] == t).count()
}

#[test]
fn summary_counts_what_the_trace_holds_from_a_file_or_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let (trace, ring, lines) = recorded(dir.path());
    let from_file: Value = serde_json::from_str(&run(&["summary", "--json"], &trace)).unwrap();
    let from_ring: Value = serde_json::from_str(&run(&["summary", "--json"], &ring)).unwrap();
    assert_eq!(from_file["skipped"], 1, "the substrate line");
    assert_eq!(from_ring["skipped"], 0);
    for s in [&from_file, &from_ring] {
        assert_eq!(s["events"], lines.len());
        assert_eq!(s["processes"], count(&lines, "process_start"));
        assert_eq!(s["by_type"]["file_open"], count(&lines, "file_open"));
        let copy = dir.path().join("copy");
        let copy = copy.to_str().unwrap();
        assert_eq!(s["files_written"][copy], 1);
        assert_eq!(s["files_created"][copy], 1);
        assert_eq!(s["files_deleted"][copy], 1);
        assert!(s["files_read"]["/etc/hostname"].as_u64().unwrap() >= 1);
        let failed: Vec<&str> = s["failed_processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            failed
                .iter()
                .any(|f| f.starts_with("sh ") && f.ends_with("exit 3")),
            "{failed:?}"
        );
        assert!(
            failed
                .iter()
                .any(|f| f.starts_with("cat ") && f.ends_with("exit 1")),
            "{failed:?}"
        );
        assert!(s["root_wall_ns"].as_i64().unwrap() > 0);
    }
    let text = run(&["summary"], &trace);
    assert!(
        text.contains("files written") && text.contains("processes that failed"),
        "{text}"
    );
}

#[test]
fn tree_has_one_line_per_image_under_its_parent() {
    let dir = tempfile::tempdir().unwrap();
    let (trace, _ring, lines) = recorded(dir.path());
    let text = run(&["tree", "--width", "200"], &trace);
    assert_eq!(
        text.lines().count(),
        count(&lines, "process_start"),
        "{text}"
    );
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("sh -c ") && first.contains("exit 3"),
        "{first}"
    );
    // Each program under its forked shell, which ended by exec.
    for p in [
        "cat /etc/hostname",
        "cat /nonexistent",
        "mkdir -p d",
        "rm copy",
        "/bin/true",
    ] {
        let l = text
            .lines()
            .find(|l| {
                l.trim_start_matches(['│', '├', '└', '─', ' '])
                    .starts_with(p)
            })
            .unwrap_or_else(|| panic!("{p}: {text}"));
        assert!(l.starts_with("│  └─ ") || l.starts_with("   └─ "), "{l}");
    }
    assert!(
        text.lines().filter(|l| l.contains(" exec")).count() >= 5,
        "{text}"
    );
}

#[test]
fn show_decodes_flags_and_filters_by_class_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let (trace, _ring, lines) = recorded(dir.path());
    let all = run(&["show"], &trace);
    assert_eq!(all.lines().count(), lines.len());
    let files = run(
        &["show", "--events", "file", "--exclude-path", "/proc"],
        &trace,
    );
    assert!(
        files.contains("O_WRONLY|O_CREAT|O_TRUNC, 0666) = "),
        "{files}"
    );
    assert!(
        files.contains("mkdir(") && files.contains("unlink("),
        "{files}"
    );
    assert!(
        !files.contains("/proc/") && !files.contains(" start ["),
        "{files}"
    );
    assert!(
        files.contains("\"/nonexistent\", O_RDONLY) = -1 No such file or directory (2)"),
        "{files}"
    );
    let o = Command::new(&tools().drain)
        .args(["show", "--events", "bogus"])
        .arg(&trace)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn chrome_export_follows_the_trace_event_format() {
    let dir = tempfile::tempdir().unwrap();
    let (trace, _ring, lines) = recorded(dir.path());
    let out = dir.path().join("trace.json");
    run(
        &["export", "--format", "chrome", "-o", out.to_str().unwrap()],
        &trace,
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().unwrap();
    let mut by_ph: HashMap<&str, usize> = HashMap::new();
    let mut named = HashSet::new();
    let mut flows: HashMap<u64, Vec<&str>> = HashMap::new();
    for e in events {
        let ph = e["ph"].as_str().unwrap();
        assert!(["X", "i", "M", "s", "f"].contains(&ph), "{e}");
        *by_ph.entry(ph).or_default() += 1;
        assert!(e["pid"].is_i64() && e["tid"].is_i64(), "{e}");
        if ph != "M" {
            assert!(e["ts"].as_f64().unwrap() >= 0.0, "{e}");
            assert!(e["name"].is_string() && e["cat"].is_string(), "{e}");
        }
        match ph {
            "X" => assert!(e["dur"].as_f64().unwrap() >= 0.0, "{e}"),
            "i" => assert_eq!(e["s"], "t"),
            "M" if e["name"] == "process_name" => {
                named.insert(e["pid"].as_i64().unwrap());
            }
            "s" | "f" => flows.entry(e["id"].as_u64().unwrap()).or_default().push(ph),
            _ => {}
        }
    }
    assert_eq!(by_ph["X"], count(&lines, "process_start"));
    let instants = lines
        .iter()
        .filter(|l| {
            let t = l["event_type"].as_str().unwrap();
            t.starts_with("file_") || t.starts_with("net_") || t == "dns_lookup"
        })
        .count();
    assert_eq!(by_ph["i"], instants);
    let pids: HashSet<i64> = lines.iter().filter_map(|l| l["pid"].as_i64()).collect();
    assert_eq!(named, pids, "every process track is named");
    assert_eq!(
        flows.len(),
        by_ph["X"] - 1,
        "a flow to every image but the root"
    );
    assert!(flows.values().all(|v| v == &["s", "f"]));
}

/// A trace of many blocks (read by two threads, in 256 KiB ranges) and its ring (decoded on one
/// thread while another parses): `summary` of either counts exactly what the lines hold, as
/// counted here line by line with `serde_json`.
#[test]
fn summary_of_a_large_trace_counts_every_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    let ring = dir.path().join("r.ring");
    let script = "import os\n\
                  for i in range(25000):\n\
                  \x20   p = '/etc/hostname' if i % 3 else '/nonexistent/%d' % (i % 97)\n\
                  \x20   try: os.close(os.open(p, os.O_RDONLY))\n\
                  \x20   except OSError: pass\n";
    let o = Command::new(&tools().drain)
        .args(["record", "--keep-ring", "--size", "256M", "--ring"])
        .arg(&ring)
        .arg("-o")
        .arg(&trace)
        .args(["--", "python3", "-c", script])
        .current_dir(dir.path())
        .env_remove("SUBSTRATE_PARENT_IMAGE")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(
        text.len() > 4 << 20,
        "large enough to be read in parallel: {}",
        text.len()
    );
    let mut by_type: HashMap<String, u64> = HashMap::new();
    let mut failed: HashMap<String, u64> = HashMap::new();
    let mut lines = 0u64;
    for l in text.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        lines += 1;
        let t = v["event_type"].as_str().unwrap().to_string();
        if t == "file_open" {
            if let Some(e) = v["errno"].as_i64() {
                let p = v["abs_path"].as_str().or(v["path"].as_str()).unwrap();
                *failed.entry(format!("{p} (errno {e})")).or_default() += 1;
            }
        }
        *by_type.entry(t).or_default() += 1;
    }
    let from_file: Value = serde_json::from_str(&run(&["summary", "--json"], &trace)).unwrap();
    let from_ring: Value = serde_json::from_str(&run(&["summary", "--json"], &ring)).unwrap();
    assert_eq!(from_file, from_ring, "a trace and its ring summarize alike");
    assert_eq!(from_file["events"], lines);
    assert_eq!(from_file["skipped"], 0);
    let got: HashMap<String, u64> = serde_json::from_value(from_file["by_type"].clone()).unwrap();
    assert_eq!(got, by_type);
    let got: HashMap<String, u64> =
        serde_json::from_value(from_file["failed_opens"].clone()).unwrap();
    assert_eq!(got, failed);
    assert!(failed.values().sum::<u64>() > 8000, "{failed:?}");

    // Counted apart on the parsing threads and merged (the command), or event by event in
    // order (the library's `Builder::add`): the same summary, and the same report page.
    let mut serial = drain::views::summary::Builder::default();
    let mut page = drain::views::report::Builder::new(Default::default());
    let mut tree = drain::views::tree::Builder::default();
    let input = drain::views::for_each_event(&trace, |ev| {
        serial.add(ev);
        page.add(ev);
        tree.add(ev);
    })
    .unwrap();
    let (roots, children) = tree.finish();
    let tree = drain::views::tree::text(&roots, &children, 100);
    assert_eq!(run(&["tree", "--width", "100"], &trace), tree);
    let serial = serde_json::to_value(serial.finish(input.skipped)).unwrap();
    assert_eq!(serial, from_file, "merged counts equal counts in order");
    let name = trace.to_string_lossy();
    let page = page.finish(input.skipped, &name);
    assert_eq!(run(&["report", "-o", "-"], &trace), page);

    // The Chrome export renders instants on the parsing threads, copying the members of
    // lines in the drain's form; the library's Writer::add writes each event in order.
    let mut w = drain::views::chrome::Writer::new(Vec::new()).unwrap();
    drain::views::for_each_event(&trace, |ev| w.add(ev).unwrap()).unwrap();
    let serial = String::from_utf8(w.finish().unwrap()).unwrap();
    for input in [&trace, &ring] {
        let exported = run(&["export", "--format", "chrome", "-o", "-"], input);
        assert_eq!(exported, serial, "{}", input.display());
    }

    // `show` of a trace file writes each line but its program on the parsing threads; the
    // library's `show::line` writes each event whole, in order, with the programs seen so far.
    let mut programs: HashMap<String, String> = HashMap::new();
    let mut t0 = None;
    let mut want = String::new();
    drain::views::for_each_event(&trace, |ev| {
        let span = ev.span_id.as_deref().unwrap_or_default();
        if ev.event_type == "process_start" {
            programs.insert(span.to_string(), drain::views::program(ev));
        }
        let t0 = *t0.get_or_insert(ev.ts_unix_ns);
        let prog = programs.get(span).map_or("?", String::as_str);
        want.push_str(&drain::views::show::line(ev, t0, prog));
        want.push('\n');
    })
    .unwrap();
    assert!(
        want.contains(" = -1 No such file or directory (2)"),
        "failed opens shown"
    );
    for input in [&trace, &ring] {
        assert_eq!(run(&["show"], input), want, "{}", input.display());
    }
}
