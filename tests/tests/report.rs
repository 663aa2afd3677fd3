//! `substrate-drain report`: the HTML page of a real trace, with hostile arguments. Parsed with
//! Python's `html.parser` (well-formed, a timeline row per process image, nothing loaded from
//! anywhere, the trace's strings escaped), then opened in headless Chromium (the script runs
//! with no console error, and a screenshot shows a bar for every row).
//!
//! The browser test needs Debian's `chromium` (installed by `.ci/run`); without it, it fails
//! unless `SUBSTRATE_SKIP_BROWSER=1`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use drain::event::Event;
use serde_json::Value;
use tests::harness::{drain_ok, output_within, record_with};

const HOSTILE: &str = "<script>alert(1)</script>";
const HOSTILE_IMG: &str = "\"><img src=//evil.invalid/x onerror=alert(2)>";

/// Record a small tree in `dir` whose arguments try to inject markup; the trace, the kept ring
/// and the trace's events.
fn recorded(dir: &Path) -> (PathBuf, PathBuf, Vec<Event<'static>>) {
    let ring = dir.join("r.ring");
    // echo gets the hostile arguments, and one more made by the shell: a byte that is not
    // UTF-8, a control character and closing tags.
    let script = "cat /etc/hostname >/dev/null; (ls / >/dev/null); \
                  /bin/echo \"$@\" \"$(printf '\\377\\001</svg></g>')\" >/dev/null; exit 3";
    let run = record_with(
        dir,
        &["--keep-ring", "--ring", ring.to_str().unwrap()],
        &["sh", "-c", script, "sh", HOSTILE, HOSTILE_IMG],
        &[],
    );
    assert_eq!(run.out.status.code(), Some(3), "{}", run.dump());
    let trace = dir.join("trace.jsonl");
    let text: String = run.lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&trace, text).unwrap();
    let events = run
        .lines
        .iter()
        .map(|l| serde_json::from_value(l.clone()).unwrap())
        .collect();
    (trace, ring, events)
}

/// `substrate-drain report ARGS INPUT`, its stdout.
fn report(args: &[&OsStr], input: &Path) -> Vec<u8> {
    let mut all: Vec<&OsStr> = vec!["report".as_ref()];
    all.extend_from_slice(args);
    drain_ok(&all, input)
}

/// Reads the page with `html.parser`: every element closed in order (void elements aside),
/// the timeline rows, every attribute, the scripts and their hashes, the CSP.
const PARSE: &str = r#"
import base64, hashlib, json, sys
from html.parser import HTMLParser
VOID = {'area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta', 'source',
        'track', 'wbr'}
class P(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.rows, self.attrs, self.scripts = [], [], [], [], []
        self.csp, self.doctype = None, None
    def handle_decl(self, d):
        self.doctype = d
    def seen(self, tag, attrs):
        a = dict(attrs)
        self.attrs += [[tag, k, v or ''] for k, v in attrs]
        if tag == 'meta' and a.get('http-equiv') == 'Content-Security-Policy':
            self.csp = a.get('content')
        if tag == 'g' and (a.get('class') or '').split()[:1] == ['row']:
            self.rows.append({'pid': a.get('data-pid'), 'program': a.get('data-program'),
                              'class': a.get('class'), 'title': ''})
    def handle_starttag(self, tag, attrs):
        self.seen(tag, attrs)
        if tag not in VOID:
            self.stack.append(tag)
    def handle_startendtag(self, tag, attrs):
        self.seen(tag, attrs)
    def handle_endtag(self, tag):
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()
        else:
            self.errors.append('</%s> closes %s' % (tag, self.stack[-3:]))
    def handle_data(self, d):
        if self.stack[-1:] == ['script']:
            h = base64.b64encode(hashlib.sha256(d.encode()).digest()).decode()
            self.scripts.append(h)
        if self.stack[-2:] == ['g', 'title'] and self.rows:
            self.rows[-1]['title'] += d
p = P()
p.feed(open(sys.argv[1], encoding='utf-8').read())
p.close()
print(json.dumps({'errors': p.errors, 'open': p.stack, 'rows': p.rows, 'attrs': p.attrs,
                  'scripts': p.scripts, 'csp': p.csp, 'doctype': p.doctype}))
"#;

fn parse(page: &Path) -> Value {
    let o = Command::new("python3")
        .args(["-c", PARSE])
        .arg(page)
        .output()
        .expect("run python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `(pid, program)` of every process image, with how many times.
fn images(events: &[Event]) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for e in events.iter().filter(|e| e.event_type == "process_start") {
        let key = (e.pid.unwrap_or(0).to_string(), drain::views::program(e));
        *m.entry(key).or_default() += 1;
    }
    m
}

fn rows(doc: &Value) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for r in doc["rows"].as_array().unwrap() {
        let key = (
            r["pid"].as_str().unwrap_or("").to_string(),
            r["program"].as_str().unwrap_or("").to_string(),
        );
        *m.entry(key).or_default() += 1;
    }
    m
}

#[test]
fn report_has_a_row_per_image_escapes_the_trace_and_loads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (trace, ring, events) = recorded(dir.path());
    let page = dir.path().join("report.html");
    report(&["-o".as_ref(), page.as_os_str()], &trace);
    let html = std::fs::read_to_string(&page).unwrap();
    let doc = parse(&page);

    assert_eq!(doc["doctype"], "DOCTYPE html");
    assert_eq!(doc["errors"], serde_json::json!([]), "misnested tags");
    assert_eq!(doc["open"], serde_json::json!([]), "unclosed tags");

    // One row per process image, by pid and program.
    let want = images(&events);
    assert!(want.values().sum::<usize>() >= 4, "{want:?}");
    assert_eq!(rows(&doc), want);
    let classes: Vec<&str> = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["class"].as_str().unwrap())
        .collect();
    assert_eq!(classes[0], "row fail", "the root exited 3");
    assert!(classes.contains(&"row ok") && classes.contains(&"row exec"));

    // Nothing to load: no URL, no attribute that fetches, no event handler, and a policy
    // that allows only the page's own script, whose hash it names.
    for url in ["http://", "https://", "url(", "@import"] {
        assert!(!html.contains(url), "{url} in the page");
    }
    for a in doc["attrs"].as_array().unwrap() {
        let (tag, name, value) = (&a[0], a[1].as_str().unwrap(), a[2].as_str().unwrap());
        assert!(
            ![
                "src",
                "href",
                "xlink:href",
                "srcset",
                "action",
                "formaction",
                "poster"
            ]
            .contains(&name)
                && !name.starts_with("on"),
            "<{tag} {name}={value:?}>"
        );
        assert!(!value.contains("//"), "<{tag} {name}={value:?}>");
    }
    let csp = doc["csp"].as_str().expect("a Content-Security-Policy");
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    let scripts = doc["scripts"].as_array().unwrap();
    assert_eq!(scripts.len(), 1, "one script, the page's own");
    let hash = scripts[0].as_str().unwrap();
    assert!(
        csp.contains(&format!("'sha256-{hash}'")),
        "the CSP names the script's hash (set SCRIPT_SHA256 in report.rs to {hash}): {csp}"
    );

    // The hostile arguments are text: escaped in the file, whole in the titles.
    assert!(!html.contains(HOSTILE) && !html.contains("<img"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let echo = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["program"] == "echo")
        .expect("a row for echo");
    let title = echo["title"].as_str().unwrap();
    for h in [HOSTILE, HOSTILE_IMG, "\\xff\\x01</svg></g>"] {
        assert!(title.contains(h), "{h:?} not in {title:?}");
    }
    assert!(
        !title.contains('\u{1}'),
        "control characters are shown escaped"
    );

    // From the ring, to standard output: the same rows.
    let from_ring = dir.path().join("ring.html");
    std::fs::write(&from_ring, report(&["-o".as_ref(), "-".as_ref()], &ring)).unwrap();
    assert_eq!(rows(&parse(&from_ring)), want);
}

/// The bar colours of the page's CSS (exit 0, non-zero, signal, exec, no exit).
const BARS: [[u8; 3]; 5] = [
    [0x2f, 0x9a, 0x57],
    [0xd3, 0x3c, 0x3c],
    [0x8a, 0x3f, 0xb0],
    [0x6f, 0x93, 0xb8],
    [0xa9, 0xae, 0xb5],
];
/// Row pitch and bar height of the timeline, in pixels.
const ROW_H: usize = 18;
const BAR_H: usize = 12;

fn chromium() -> Option<PathBuf> {
    if std::env::var_os("SUBSTRATE_SKIP_BROWSER").is_some_and(|v| v == "1") {
        eprintln!("SUBSTRATE_SKIP_BROWSER=1: the browser test is skipped");
        return None;
    }
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    Some(found.unwrap_or_else(|| {
        panic!(
            "chromium is not installed: `apt-get install chromium` (.ci/run does), or set \
             SUBSTRATE_SKIP_BROWSER=1 to skip this test"
        )
    }))
}

/// Headless Chromium on `page` with `args`, kept off the network, within a minute.
fn browse(bin: &Path, profile: &Path, args: &[String], page: &Path) -> std::process::Output {
    let mut c = Command::new(bin);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-pings",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(format!("file://{}", page.display()));
    let o = output_within(&mut c, Duration::from_secs(60)).expect("chromium took over a minute");
    assert!(
        o.status.success(),
        "chromium {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Runs of pixel rows holding a bar colour: `(first row, height)`.
fn bar_bands(png_path: &Path) -> (Vec<(usize, usize)>, usize, f64) {
    let dec = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut rd = dec.read_info().unwrap();
    let mut buf = vec![0; rd.output_buffer_size().unwrap()];
    let info = rd.next_frame(&mut buf).unwrap();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let bpp = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        t => panic!("screenshot colour type {t:?}"),
    };
    let (w, h) = (info.width as usize, info.height as usize);
    let mut counts: std::collections::HashMap<[u8; 3], usize> = Default::default();
    let mut bands: Vec<(usize, usize)> = vec![];
    for y in 0..h {
        let line = &buf[y * info.line_size..][..w * bpp];
        let mut bar = false;
        for px in line.chunks(bpp) {
            let c = [px[0], px[1], px[2]];
            *counts.entry(c).or_default() += 1;
            bar |= BARS.contains(&c);
        }
        if bar {
            match bands.last_mut() {
                Some((y0, n)) if *y0 + *n == y => *n += 1,
                _ => bands.push((y, 1)),
            }
        }
    }
    let dominant = counts.values().max().copied().unwrap_or(0) as f64 / (w * h) as f64;
    (bands, counts.len(), dominant)
}

#[test]
fn chromium_runs_the_page_without_errors_and_draws_every_row() {
    let Some(bin) = chromium() else { return };
    let t = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (trace, _ring, events) = recorded(dir.path());
    let page = dir.path().join("report.html");
    report(&["-o".as_ref(), page.as_os_str()], &trace);
    let n: usize = images(&events).values().sum();
    let profile = dir.path().join("profile");

    // The DOM after the script ran: it marked the body with the rows it found, and logged one
    // line; any error, uncaught exception or refused load would be another console line.
    let o = browse(
        &bin,
        &profile,
        &[
            "--enable-logging=stderr".into(),
            "--v=0".into(),
            "--dump-dom".into(),
        ],
        &page,
    );
    let dom = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        dom.contains(&format!("<body data-rows=\"{n}\">")),
        "the script did not run or did not find {n} rows: {}",
        &dom[..dom.len().min(2000)]
    );
    assert_eq!(dom.matches("<g class=\"row ").count(), n);
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(
        console.len() == 1 && console[0].contains(&format!("\"substrate report: {n} rows\"")),
        "console: {console:#?}"
    );

    // The picture: not blank, and a bar of the timeline's height on each row, one row apart.
    let shot = dir.path().join("shot.png");
    browse(
        &bin,
        &profile,
        &[
            "--window-size=1400,2000".into(),
            format!("--screenshot={}", shot.display()),
        ],
        &page,
    );
    let (bands, colours, dominant) = bar_bands(&shot);
    assert!(
        colours > 50 && dominant < 0.97,
        "blank? {colours} colours, {dominant} one"
    );
    // The legend's swatches come first, then one band per row.
    assert!(bands.len() > n, "{n} rows, bands {bands:?}");
    let rows = &bands[bands.len() - n..];
    assert!(
        rows.iter().all(|(_, h)| *h == BAR_H),
        "bars {BAR_H} pixels high: {rows:?}"
    );
    assert!(
        rows.windows(2).all(|w| w[1].0 - w[0].0 == ROW_H),
        "a bar on every row, {ROW_H} pixels apart: {rows:?}"
    );
    eprintln!("browser test: {:.1}s", t.elapsed().as_secs_f64());
}
