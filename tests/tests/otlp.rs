//! `export --format otlp` of a real recorded tree to a receiver that decodes each request with
//! the official OpenTelemetry protobuf definitions (`tests/py/otlp_receiver.py`, PyPI
//! `opentelemetry-proto`; `.ci/run` installs it): one span per process image with the trace's
//! ids, parents, times, attributes and events; `TRACEPARENT`; retries after 503 delivering
//! every span exactly once; an endpoint that refuses connections or a request.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::harness::{record_with, tools};

const SCRIPT: &str = "cat /etc/hostname > copy; cat /nonexistent 2>/dev/null; \
                      mkdir -p d; cat copy > d/x; rm copy; /bin/true; exit 3";

/// The substrate span the recorded root runs under (`SHIM_PARENT_SPAN`).
const ENCLOSING: &str = "spn_01a2377a-d108-72b4-b00a-9939c9bdfbbc";

/// The W3C trace context of the `TRACEPARENT` test.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Event types exported as span events.
fn is_span_event(t: &str) -> bool {
    t.starts_with("file_")
        || t.starts_with("net_")
        || matches!(t, "dns_lookup" | "chdir" | "exec" | "spawn" | "fork")
}

/// Record SCRIPT in `dir` (ring kept): the trace file, the ring and the trace's lines.
fn recorded(dir: &Path) -> (PathBuf, PathBuf, Vec<Value>) {
    let ring = dir.join("r.ring");
    let run = record_with(
        dir,
        &["--keep-ring", "--ring", ring.to_str().unwrap()],
        &["sh", "-c", SCRIPT],
        &[("SHIM_PARENT_SPAN", ENCLOSING)],
    );
    assert_eq!(run.out.status.code(), Some(3), "{}", run.dump());
    let trace = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .expect("the trace file");
    (trace, ring, run.lines)
}

/// The receiver, killed when dropped (it also exits by itself after a minute).
struct Receiver {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Receiver {
    fn start(dir: &Path, extra: &[&str]) -> Receiver {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/otlp_receiver.py");
        let out = dir.join("received.jsonl");
        let err = dir.join("receiver.err");
        let mut child = Command::new("python3")
            .arg(script)
            .arg("--out")
            .arg(&out)
            .args(["--lifetime", "60"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("run python3");
        let mut first = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut first);
        let port = first.trim().parse().unwrap_or_else(|_| {
            let _ = child.wait();
            panic!(
                "the OTLP receiver did not start (it needs PyPI opentelemetry-proto: \
                 `pip install opentelemetry-proto`; .ci/run installs it): {}",
                std::fs::read_to_string(&err).unwrap_or_default()
            )
        });
        Receiver { child, port, out }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request it decoded, in order.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `substrate-drain export --format otlp ARGS INPUT` with no OTEL_* or trace context of the
/// test's own environment, then `env`.
fn export(input: &Path, args: &[&str], env: &[(&str, &str)]) -> (Output, Duration) {
    let mut c = Command::new(&tools().drain);
    c.args(["export", "--format", "otlp"]).args(args).arg(input);
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") || k == "TRACEPARENT" || k == "TRACESTATE" {
            c.env_remove(k);
        }
    }
    c.envs(env.iter().copied());
    let t = Instant::now();
    let o = c.output().unwrap();
    (o, t.elapsed())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Spans of the requests the receiver accepted, with their resource.
fn accepted_spans(requests: &[Value]) -> Vec<(Value, Value)> {
    let mut out = vec![];
    for r in requests.iter().filter(|r| r["answer"] == 200) {
        for rs in r["resource_spans"].as_array().unwrap() {
            for s in rs["spans"].as_array().unwrap() {
                out.push((s.clone(), rs["resource"].clone()));
            }
        }
    }
    out
}

/// The OTLP span id (hex) of a substrate span: the UUID's last 8 bytes.
fn hex8(span: &Value) -> String {
    let s = span.as_str().unwrap().replace('-', "");
    s[s.len() - 16..].to_string()
}

fn starts(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|l| l["event_type"] == "process_start")
        .collect()
}

#[test]
fn every_image_is_a_span_with_the_traces_ids_parents_attributes_and_events() {
    let dir = tempfile::tempdir().unwrap();
    let (trace, _ring, lines) = recorded(dir.path());
    let rx = Receiver::start(dir.path(), &[]);
    let (o, _) = export(
        &trace,
        &["--endpoint", &rx.endpoint(), "--batch-size", "4"],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let requests = rx.requests();
    let starts = starts(&lines);
    assert!(starts.len() >= 10, "a real tree: {}", starts.len());
    // Batches of 4, each once, posted to /v1/traces as protobuf.
    assert_eq!(requests.len(), starts.len().div_ceil(4));
    for r in &requests {
        assert_eq!(r["path"], "/v1/traces");
        assert_eq!(r["content_type"], "application/x-protobuf");
        assert_eq!(r["answer"], 200);
    }
    let summary = stderr(&o);
    assert_eq!(summary.lines().count(), 1, "{summary}");
    assert!(
        summary.starts_with(&format!(
            "substrate-drain: exported {} spans, ",
            starts.len()
        )) && summary.contains(&format!("in {} batches", requests.len())),
        "{summary}"
    );

    let spans = accepted_spans(&requests);
    assert_eq!(spans.len(), starts.len());
    let by_id: HashMap<String, &Value> = spans
        .iter()
        .map(|(s, _)| (s["span_id"].as_str().unwrap().to_string(), s))
        .collect();
    assert_eq!(by_id.len(), spans.len(), "span ids are distinct");
    let session = starts[0]["session_id"].as_str().unwrap().replace('-', "");
    for (s, resource) in &spans {
        assert_eq!(s["trace_id"], session.as_str(), "trace id = session id");
        assert_eq!(s["kind"], 1, "INTERNAL");
        assert_eq!(resource["service.name"], "substrate");
        assert_eq!(resource["substrate.session_id"], starts[0]["session_id"]);
        assert_eq!(resource["substrate.ring_id"], starts[0]["ring_id"]);
    }
    let exits: HashMap<&str, &Value> = lines
        .iter()
        .filter(|l| l["event_type"] == "process_exit")
        .map(|l| (l["span_id"].as_str().unwrap(), l))
        .collect();
    for l in &starts {
        let sid = l["span_id"].as_str().unwrap();
        let s = by_id
            .get(&hex8(&l["span_id"]))
            .unwrap_or_else(|| panic!("no span for {sid}"));
        let a = &s["attributes"];
        // Parent: the parent image's span; the root's, the enclosing substrate span.
        let parent = if l["parent_image"].is_null() {
            hex8(&Value::from(ENCLOSING))
        } else {
            hex8(&l["parent_image"])
        };
        assert_eq!(s["parent_span_id"], parent.as_str(), "{sid}");
        assert_eq!(a["process.pid"], l["pid"]);
        assert_eq!(a["process.parent_pid"], l["ppid"]);
        assert_eq!(a["process.command_args"], l["argv"]);
        assert_eq!(a["process.working_directory"], l["cwd"]);
        assert_eq!(a["process.executable.path"], l["exe"]);
        let exe = l["exe"].as_str().unwrap();
        assert_eq!(
            a["process.executable.name"],
            exe.rsplit('/').next().unwrap()
        );
        assert_eq!(a["substrate.span_id"], sid);
        assert_eq!(a["substrate.via"], l["via"]);
        let argv0 = l["argv"][0].as_str().unwrap();
        assert_eq!(s["name"], argv0.rsplit('/').next().unwrap());
        assert_eq!(s["start"], l["ts_unix_ns"]);
        match exits.get(sid) {
            Some(e) => {
                assert_eq!(s["end"], e["ts_unix_ns"]);
                assert_eq!(a["process.exit.code"], e["exit_code"]);
                let failed = e["exit_code"] != 0;
                assert_eq!(s["status"]["code"], if failed { 2 } else { 0 }, "{sid}");
                if failed {
                    assert_eq!(
                        s["status"]["message"],
                        format!("exit code {}", e["exit_code"])
                    );
                }
            }
            None => assert!(s["end"].as_u64() >= s["start"].as_u64()),
        }
        // Its file, exec and fork events, in order, with their fields.
        let want: Vec<&Value> = lines
            .iter()
            .filter(|e| {
                e["span_id"] == l["span_id"] && is_span_event(e["event_type"].as_str().unwrap())
            })
            .collect();
        let got = s["events"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{sid}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g["name"], w["event_type"]);
            assert_eq!(g["time"], w["ts_unix_ns"]);
            for k in [
                "path",
                "abs_path",
                "flags",
                "fd",
                "errno",
                "op",
                "child_pid",
            ] {
                assert_eq!(g["attributes"].get(k), w.get(k), "{k} of {w}");
            }
        }
    }
    // The root failed with exit 3; cat /nonexistent's open failed with ENOENT.
    let root = starts.iter().find(|l| l["parent_image"].is_null()).unwrap();
    let r = by_id[&hex8(&root["span_id"])];
    assert_eq!(r["status"]["message"], "exit code 3");
    let failed_open = spans
        .iter()
        .flat_map(|(s, _)| s["events"].as_array().unwrap())
        .find(|e| e["attributes"]["path"] == "/nonexistent")
        .expect("the failed open");
    assert_eq!(failed_open["attributes"]["errno"], 2);
}

#[test]
fn traceparent_gives_the_trace_id_and_the_roots_parent() {
    let dir = tempfile::tempdir().unwrap();
    let (_trace, ring, lines) = recorded(dir.path());
    let rx = Receiver::start(dir.path(), &[]);
    // From the ring this time.
    let (o, _) = export(
        &ring,
        &["--endpoint", &format!("{}/", rx.endpoint())],
        &[("TRACEPARENT", TRACEPARENT), ("OTEL_SERVICE_NAME", "build")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let spans = accepted_spans(&rx.requests());
    let starts = starts(&lines);
    assert_eq!(spans.len(), starts.len());
    for (s, resource) in &spans {
        assert_eq!(s["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s["flags"].as_u64().unwrap() & 0xff, 1);
        assert_eq!(resource["service.name"], "build");
    }
    for l in &starts {
        let s = &spans
            .iter()
            .find(|(s, _)| s["span_id"] == hex8(&l["span_id"]).as_str())
            .unwrap()
            .0;
        let want = if l["parent_image"].is_null() {
            "00f067aa0ba902b7".to_string()
        } else {
            hex8(&l["parent_image"])
        };
        assert_eq!(s["parent_span_id"], want.as_str());
    }
}

#[test]
fn after_two_503s_every_span_arrives_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (trace, _ring, lines) = recorded(dir.path());
    // Requests 2 and 3 get 503 (the first with Retry-After: 0, the second without).
    let rx = Receiver::start(dir.path(), &["--fail-from", "2", "--fail", "2"]);
    let (o, _) = export(
        &trace,
        &[
            "--endpoint",
            &rx.endpoint(),
            "--batch-size",
            "3",
            "--retry-max-time",
            "2",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("; 2 retries"), "{}", stderr(&o));
    let requests = rx.requests();
    let answers: Vec<&Value> = requests.iter().map(|r| &r["answer"]).collect();
    assert_eq!(answers[..4], [200, 503, 503, 200], "{answers:?}");
    // The batch that failed was resent whole; the one before it never again.
    let ids = |r: &Value| -> Vec<String> {
        r["resource_spans"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|rs| rs["spans"].as_array().unwrap())
            .map(|s| s["span_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&requests[1]), ids(&requests[3]));
    assert_eq!(ids(&requests[2]), ids(&requests[3]));
    assert_ne!(ids(&requests[0]), ids(&requests[1]));
    let delivered: Vec<String> = accepted_spans(&requests)
        .iter()
        .map(|(s, _)| s["span_id"].as_str().unwrap().to_string())
        .collect();
    let want: HashSet<String> = starts(&lines).iter().map(|l| hex8(&l["span_id"])).collect();
    assert_eq!(delivered.len(), want.len(), "each exactly once");
    assert_eq!(delivered.into_iter().collect::<HashSet<_>>(), want);
}

#[test]
fn an_endpoint_that_refuses_connections_gives_up_in_bounded_time_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (trace, _ring, _lines) = recorded(dir.path());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (o, took) = export(
        &trace,
        &[
            "--endpoint",
            &format!("http://127.0.0.1:{port}"),
            "--retry-max-time",
            "2",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "substrate-drain: OTLP endpoint http://127.0.0.1:{port}/v1/traces: connection refused (5 attempts)\n"
        )
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_request_the_endpoint_refuses_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (trace, _ring, _lines) = recorded(dir.path());
    let rx = Receiver::start(
        dir.path(),
        &["--fail-from", "1", "--fail", "1", "--fail-status", "400"],
    );
    let (o, _) = export(&trace, &["--endpoint", &rx.endpoint()], &[]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("/v1/traces: HTTP 400 Bad Request: bad request"),
        "{e}"
    );
    assert_eq!(rx.requests().len(), 1);
    // And options that make no sense are refused before anything is sent.
    let (o, _) = export(&trace, &["--endpoint", "ftp://example.invalid"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not an http:// or https:// URL"),
        "{}",
        stderr(&o)
    );
}

/// A CA and a certificate for `localhost` and 127.0.0.1 signed by it (with the `openssl`
/// command; `.ci/run` installs it): (ca.pem, server cert, server key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl (.ci/run installs it)");
        assert!(o.status.success(), "openssl {args:?}: {}", stderr(&o));
    };
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("ca.cnf"),
        "[req]\ndistinguished_name=dn\n[dn]\n[ca]\nbasicConstraints=critical,CA:TRUE\n\
         keyUsage=critical,keyCertSign,cRLSign\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=substrate test CA",
        "-config",
        "ca.cnf",
        "-extensions",
        "ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (dir.join("ca.pem"), dir.join("srv.pem"), dir.join("srv.key"))
}

#[test]
fn https_with_a_trusted_certificate_delivers_and_an_untrusted_one_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (trace, _ring, lines) = recorded(dir.path());
    let (ca, cert, key) = certificates(dir.path());
    let rx = Receiver::start(
        dir.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let url = format!("https://localhost:{}", rx.port);
    // Not in the trust store: refused on the first attempt, one line, nothing delivered.
    let (o, took) = export(
        &trace,
        &["--endpoint", &url],
        &[
            ("SSL_CERT_FILE", "/nonexistent"),
            ("SSL_CERT_DIR", "/nonexistent"),
        ],
    );
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("TLS"), "{e}");
    // Not retried (a retry would wait 1 s, then 2, then 4).
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(rx.requests().is_empty());
    // Its CA named by SSL_CERT_FILE: every image arrives, over HTTPS.
    let ca = ca.to_str().unwrap();
    let (o, _) = export(&trace, &["--endpoint", &url], &[("SSL_CERT_FILE", ca)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let spans = accepted_spans(&rx.requests());
    assert_eq!(spans.len(), starts(&lines).len(), "{}", stderr(&o));
}
