//! Substrate's correlation variables stay substrate's: `SHIM_PARENT_SPAN` and `SHIM_SESSION_ID`
//! reach every process exactly as the program left them, each line's `parent_span` and
//! `session_id` are what its process received, and the process tree is joined by
//! `parent_image` (the preload's own `SUBSTRATE_PARENT_IMAGE`) through nested spans and
//! stripped environments alike. Helper program: `tests/c/spans.c`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use format::ids;
use serde_json::Value;
use tests::harness::{compile, record_with, Run};

/// The helper program and a scratch directory, built once.
fn helper() -> &'static (PathBuf, PathBuf) {
    static S: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let bin = compile(&dir, "spans.c", "spans", &["-O2"]);
        (bin, dir)
    })
}

/// The variables every `getenv` call of these tests prints.
const NAMES: [&str; 4] = [
    "SHIM_PARENT_SPAN",
    "SHIM_SESSION_ID",
    "SHIM_OTHER",
    "SUBSTRATE_PARENT_IMAGE",
];

/// `spans getenv TAG NAMES…` as argv words.
fn getenv_cmd(bin: &Path, tag: &str) -> Vec<String> {
    let mut v = vec![bin.display().to_string(), "getenv".into(), tag.into()];
    v.extend(NAMES.iter().map(|s| s.to_string()));
    v
}

/// Percent-decode (the helper's encoding of values).
fn dec(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// What one `getenv` process printed: its pid and each variable (`None`: unset).
#[derive(Debug)]
struct Seen {
    pid: i64,
    vars: HashMap<String, Option<Vec<u8>>>,
}

impl Seen {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.vars[name].as_deref()
    }
}

/// Every `getenv` line of the run's output, by tag.
fn seen(r: &Run) -> HashMap<String, Seen> {
    let mut m = HashMap::new();
    for line in r.stdout().lines().filter(|l| l.starts_with("T-")) {
        let mut w = line.split(' ');
        let tag = w.next().unwrap().to_string();
        let pid = w.next().unwrap().parse().unwrap();
        let mut vars = HashMap::new();
        for t in w {
            match t.split_once('=') {
                Some((k, v)) => vars.insert(k.to_string(), Some(dec(v))),
                None => vars.insert(t.trim_end_matches('!').to_string(), None),
            };
        }
        assert!(
            m.insert(tag.clone(), Seen { pid, vars }).is_none(),
            "{tag} twice"
        );
    }
    m
}

/// A value as the trace writes it (drain/SCHEMA.md, bytes that are not UTF-8): itself when
/// UTF-8, else with `\` doubled and each invalid byte as `\xHH`; and whether it was escaped.
fn lossless(b: &[u8]) -> (String, bool) {
    match std::str::from_utf8(b) {
        Ok(s) => (s.to_string(), false),
        Err(_) => {
            let mut out = String::new();
            for c in b.utf8_chunks() {
                out.push_str(&c.valid().replace('\\', "\\\\"));
                for x in c.invalid() {
                    out.push_str(&format!("\\x{x:02x}"));
                }
            }
            (out, true)
        }
    }
}

/// The JSON a verbatim id field should hold for `v` (`None`: null), cut at 128 bytes.
fn id_json(v: Option<&[u8]>) -> Value {
    match v {
        None => Value::Null,
        Some(b) => Value::String(lossless(&b[..b.len().min(128)]).0),
    }
}

fn ok(r: &Run) {
    assert!(
        r.out.status.success(),
        "record failed: {:?}\nstdout: {}\nstderr: {}\ntrace:\n{}",
        r.out.status,
        r.stdout(),
        String::from_utf8_lossy(&r.out.stderr),
        r.dump()
    );
}

/// The `process_start` of the exec'd `getenv` process with pid `pid`.
fn start_of(r: &Run, pid: i64) -> &Value {
    let s: Vec<&Value> = r
        .of("process_start")
        .into_iter()
        .filter(|l| {
            l["pid"] == pid
                && l["via"] == "exec"
                && Run::argv(l).get(1).is_some_and(|a| a == "getenv")
        })
        .collect();
    assert_eq!(s.len(), 1, "one start of getenv pid {pid}:\n{}", r.dump());
    s[0]
}

/// Every line of the image `span`.
fn lines_of<'a>(r: &'a Run, span: &Value) -> Vec<&'a Value> {
    r.lines.iter().filter(|l| &l["span_id"] == span).collect()
}

/// The trace agrees with what the `getenv` process printed: its lines carry the
/// `SHIM_PARENT_SPAN` and `SHIM_SESSION_ID` it saw (the ring's session id when it saw none), its
/// `parent_image` is the `SUBSTRATE_PARENT_IMAGE` it was given, and that chain reaches the root.
fn trace_matches(r: &Run, s: &Seen, ring_session: &str, what: &str) {
    let start = start_of(r, s.pid);
    let root = r.of("process_start")[0];
    assert!(
        root["parent_image"].is_null(),
        "{what}: root has no parent image"
    );
    assert!(
        r.descends(start, root),
        "{what}: joined to the root:\n{}",
        r.dump()
    );
    let image = s
        .get("SUBSTRATE_PARENT_IMAGE")
        .expect("our variable is always there");
    assert_eq!(
        start["parent_image"].as_str().unwrap().as_bytes(),
        image,
        "{what}: parent_image is what the process was given"
    );
    let want_span = id_json(s.get("SHIM_PARENT_SPAN"));
    let want_session = match s.get("SHIM_SESSION_ID") {
        Some(v) => id_json(Some(v)),
        None => Value::String(ring_session.to_string()),
    };
    let lines = lines_of(r, &start["span_id"]);
    assert!(lines.len() >= 2, "{what}: start and exit at least");
    for l in lines {
        assert_eq!(l["parent_span"], want_span, "{what}: parent_span of {l}");
        assert_eq!(l["session_id"], want_session, "{what}: session_id of {l}");
        let mut escaped = vec![];
        for (k, v) in [
            ("session_id", s.get("SHIM_SESSION_ID")),
            ("parent_span", s.get("SHIM_PARENT_SPAN")),
        ] {
            if v.is_some_and(|v| lossless(&v[..v.len().min(128)]).1) {
                escaped.push(k);
            }
        }
        for k in &escaped {
            assert!(
                l["escaped"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|e| e == k)),
                "{what}: {k} named in escaped: {l}"
            );
        }
    }
    let long = |v: Option<&[u8]>| v.is_some_and(|v| v.len() > 128);
    if long(s.get("SHIM_PARENT_SPAN")) || long(s.get("SHIM_SESSION_ID")) {
        assert_eq!(start["truncated"], true, "{what}: a cut value is flagged");
    }
}

/// A substrate session id and span ids, as substrate forms them.
fn new_ids() -> (String, String, String) {
    (
        format!("ses_{}", ids::uuid_string(&ids::new_uuid_v7())),
        ids::span_string(&ids::new_uuid_v7()),
        ids::span_string(&ids::new_uuid_v7()),
    )
}

#[test]
fn nested_substrate_spans_reach_every_process_verbatim_and_images_stay_joined() {
    let (bin, dir) = helper();
    let (sid, a, b) = new_ids();
    let bin_s = bin.display().to_string();
    let get = |tag: &str| getenv_cmd(bin, tag).join(" ");
    // Inside span A, make runs two recipes: one command, and a shim opening span B around a
    // shell running two commands.
    let mk = dir.join(format!("nested-{}.mk", std::process::id()));
    std::fs::write(
        &mk,
        format!(
            "all: one two\none:\n\t@{}\ntwo:\n\t@$(SPANS) shim-spawn $(SPAN_B) - sh -c '{}; {}'\n",
            get("T-a-make"),
            get("T-b-first"),
            get("T-b-second"),
        ),
    )
    .unwrap();
    let script = format!(
        "{}; {bin_s} shim {a} {sid} make -s -f {} all SPANS={bin_s} SPAN_B={b}",
        get("T-outside"),
        mk.display()
    );
    let r = record_with(dir, &[], &["sh", "-c", &script], &[]);
    ok(&r);
    let seen = seen(&r);
    assert_eq!(seen.len(), 4, "{}", r.stdout());

    // What the processes really got.
    let outside = &seen["T-outside"];
    assert_eq!(outside.get("SHIM_PARENT_SPAN"), None);
    let ring_session = String::from_utf8(outside.get("SHIM_SESSION_ID").unwrap().to_vec()).unwrap();
    assert!(
        ids::parse_uuid(ring_session.as_bytes()).is_some(),
        "record sets a bare session id when the caller has none: {ring_session}"
    );
    for (tag, span) in [("T-a-make", &a), ("T-b-first", &b), ("T-b-second", &b)] {
        let s = &seen[tag];
        assert_eq!(s.get("SHIM_PARENT_SPAN"), Some(span.as_bytes()), "{tag}");
        assert_eq!(
            s.get("SHIM_SESSION_ID"),
            Some(sid.as_bytes()),
            "{tag}: the shim's session id arrives unchanged"
        );
        assert_eq!(s.get("SHIM_OTHER"), None, "{tag}");
    }
    for (tag, s) in &seen {
        trace_matches(&r, s, &ring_session, tag);
    }

    // Every line: parent_span is the nearest enclosing substrate span (null outside), session_id
    // the shim's from span A down, and every image joins the root through parent_image.
    let starts: HashMap<String, &Value> = r
        .of("process_start")
        .into_iter()
        .map(|l| (l["span_id"].as_str().unwrap().to_string(), l))
        .collect();
    let root = r.of("process_start")[0];
    let is_shim = |l: &Value| Run::argv(l).get(1).is_some_and(|m| m.starts_with("shim"));
    // (parent_span, session_id) an image must carry, from its ancestry.
    fn expect(
        span: &str,
        starts: &HashMap<String, &Value>,
        is_shim: &dyn Fn(&Value) -> bool,
        ring_session: &str,
    ) -> (Value, Value) {
        let l = starts[span];
        let Some(p) = l["parent_image"].as_str() else {
            return (Value::Null, Value::String(ring_session.into()));
        };
        let parent = starts
            .get(p)
            .unwrap_or_else(|| panic!("parent image {p} of {l} is in the trace"));
        let inherited = expect(p, starts, is_shim, ring_session);
        if l["via"] == "exec" && is_shim(parent) {
            let argv = Run::argv(parent);
            let session = if argv[3] == "-" {
                inherited.1
            } else {
                Value::String(argv[3].clone())
            };
            (Value::String(argv[2].clone()), session)
        } else {
            inherited
        }
    }
    let mut under = HashMap::<String, usize>::new();
    for l in &r.lines {
        let span = l["span_id"].as_str().unwrap();
        let (want_span, want_session) = expect(span, &starts, &is_shim, &ring_session);
        assert_eq!(
            l["parent_span"],
            want_span,
            "parent_span of {l}\n{}",
            r.dump()
        );
        assert_eq!(l["session_id"], want_session, "session_id of {l}");
        *under.entry(want_span.to_string()).or_default() += 1;
    }
    for s in starts.values().filter(|s| s["span_id"] != root["span_id"]) {
        assert!(r.descends(s, root), "{s} joined to the root\n{}", r.dump());
    }
    assert!(root["parent_image"].is_null() && root["parent_span"].is_null());
    // All three regions have lines: outside, span A (make, the shim of B), span B.
    for k in ["null".to_string(), format!("\"{a}\""), format!("\"{b}\"")] {
        assert!(
            under.get(&k).is_some_and(|&n| n > 0),
            "lines under {k}: {under:?}"
        );
    }
    // The shim opening span B runs inside span A.
    let shim_b: Vec<&&Value> = starts
        .values()
        .filter(|l| l["via"] == "exec" && Run::argv(l).get(1).is_some_and(|m| m == "shim-spawn"))
        .collect();
    assert_eq!(shim_b.len(), 1);
    assert_eq!(shim_b[0]["parent_span"], a.as_str());
}

#[test]
fn shim_variables_pass_through_stripped_and_custom_environments_untouched() {
    let (bin, dir) = helper();
    let b = bin.display().to_string();
    let uuid = ids::uuid_string(&ids::new_uuid_v7());
    // The caller's values: a session id in substrate's ses_ form, a malformed span.
    let sid = format!("ses_{uuid}");
    let bad_span = "spn_not-a-uuid \"quoted\" \\";
    let other = "kept";
    let long: String = "L".repeat(300);
    let inherited = [
        ("SHIM_PARENT_SPAN", Some(bad_span.as_bytes().to_vec())),
        ("SHIM_SESSION_ID", Some(sid.as_bytes().to_vec())),
        ("SHIM_OTHER", Some(other.as_bytes().to_vec())),
    ];
    type Want = [(&'static str, Option<Vec<u8>>); 3];
    let none: Want = [
        ("SHIM_PARENT_SPAN", None),
        ("SHIM_SESSION_ID", None),
        ("SHIM_OTHER", None),
    ];
    let get = |tag: &str| getenv_cmd(bin, tag);
    let words = |v: &[&str], tail: Vec<String>| -> Vec<String> {
        v.iter().map(|s| s.to_string()).chain(tail).collect()
    };
    let cases: Vec<(&str, Vec<String>, Want)> = vec![
        (
            "inherited",
            vec!["sh".into(), "-c".into(), get("T-x").join(" ")],
            inherited.clone(),
        ),
        ("env -i", words(&["env", "-i"], get("T-x")), none.clone()),
        (
            "env -i with values",
            words(
                &["env", "-i", "SHIM_PARENT_SPAN=garbage", "SHIM_SESSION_ID="],
                get("T-x"),
            ),
            [
                ("SHIM_PARENT_SPAN", Some(b"garbage".to_vec())),
                ("SHIM_SESSION_ID", Some(b"".to_vec())),
                ("SHIM_OTHER", None),
            ],
        ),
        (
            "execve, custom envp with non-UTF-8 values",
            words(
                &[
                    b.as_str(),
                    "exec-env",
                    "PATH=/usr/bin:/bin",
                    "SHIM_PARENT_SPAN=%ff%fe%20x\\",
                    "SHIM_SESSION_ID=ses_%c3(",
                    "--",
                ],
                get("T-x"),
            ),
            [
                ("SHIM_PARENT_SPAN", Some(b"\xff\xfe x\\".to_vec())),
                ("SHIM_SESSION_ID", Some(b"ses_\xc3(".to_vec())),
                ("SHIM_OTHER", None),
            ],
        ),
        (
            "execve, custom envp without them",
            words(
                &[b.as_str(), "exec-env", "PATH=/usr/bin:/bin", "--"],
                get("T-x"),
            ),
            none.clone(),
        ),
        (
            "clearenv",
            words(&[b.as_str(), "clearenv", "--"], get("T-x")),
            none.clone(),
        ),
        (
            "clearenv, then a long value",
            words(
                &[
                    b.as_str(),
                    "clearenv",
                    format!("SHIM_PARENT_SPAN={long}").as_str(),
                    "--",
                ],
                get("T-x"),
            ),
            [
                ("SHIM_PARENT_SPAN", Some(long.as_bytes().to_vec())),
                ("SHIM_SESSION_ID", None),
                ("SHIM_OTHER", None),
            ],
        ),
        (
            "execvp after unsetenv",
            words(
                &[b.as_str(), "execvp", "SHIM_SESSION_ID!", "--"],
                get("T-x"),
            ),
            [
                ("SHIM_PARENT_SPAN", Some(bad_span.as_bytes().to_vec())),
                ("SHIM_SESSION_ID", None),
                ("SHIM_OTHER", Some(other.as_bytes().to_vec())),
            ],
        ),
        (
            "system",
            vec![
                b.clone(),
                "system".into(),
                "--".into(),
                get("T-x").join(" "),
            ],
            inherited.clone(),
        ),
        (
            "popen after setenv",
            vec![
                b.clone(),
                "popen".into(),
                "SHIM_PARENT_SPAN=spn_set-by-the-program".into(),
                "SHIM_OTHER!".into(),
                "--".into(),
                get("T-x").join(" "),
            ],
            [
                ("SHIM_PARENT_SPAN", Some(b"spn_set-by-the-program".to_vec())),
                ("SHIM_SESSION_ID", Some(sid.as_bytes().to_vec())),
                ("SHIM_OTHER", None),
            ],
        ),
    ];
    for (what, cmd, want) in cases {
        let cmd: Vec<&str> = cmd.iter().map(|s| s.as_str()).collect();
        let r = record_with(
            dir,
            &[],
            &cmd,
            &[
                ("SHIM_PARENT_SPAN", bad_span),
                ("SHIM_SESSION_ID", &sid),
                ("SHIM_OTHER", other),
            ],
        );
        ok(&r);
        let seen = seen(&r);
        let s = seen
            .get("T-x")
            .unwrap_or_else(|| panic!("{what}: no output: {}", r.stdout()));
        for (name, v) in &want {
            assert_eq!(
                s.get(name),
                v.as_deref(),
                "{what}: {name} in the child's environment"
            );
        }
        assert!(
            s.get("SUBSTRATE_PARENT_IMAGE")
                .is_some_and(|v| v.starts_with(b"spn_")),
            "{what}: the preload's own variable is kept"
        );
        // The caller's values reach the root unchanged (record sets no session id over one),
        // and the ring's session id is the UUID of the caller's ses_ id.
        let root = r.of("process_start")[0];
        assert_eq!(root["parent_span"], bad_span, "{what}");
        assert_eq!(root["session_id"], sid.as_str(), "{what}");
        trace_matches(&r, s, &uuid, what);
    }
}
