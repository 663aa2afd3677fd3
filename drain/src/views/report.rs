//! `substrate-drain report`: one self-contained HTML page of a trace.
//!
//! - the timeline: one row per process image (program and pid), indented under the image that
//!   started it (`parent_image`), a bar from its start to its end on one time axis, coloured by
//!   how it ended (exit 0, exit non-zero, killed by a signal, replaced by an exec, no end in
//!   the trace), supervised images outlined, children that were not traced marked where they
//!   were started; each row's hover title has the arguments, working directory, executable,
//!   duration and status. The picture is inline SVG written here: it shows without scripts;
//! - the lists of [`super::summary`] (counts by type and program, files written, created,
//!   deleted, read and changed, shared objects, failed opens and execs, network endpoints, DNS
//!   names) as tables, and the processes that failed.
//!
//! The page loads nothing: styles and the one small script (a filter box) are inline, and its
//! Content-Security-Policy forbids every fetch and any other script. Every string from the
//! trace is escaped (the trace is hostile input), control characters and bidirectional
//! overrides shown as escapes. The size is bounded whatever the trace: the timeline holds the
//! first [`Options::max_images`] images started (the page says how many more there were), each
//! table [`Options::top`] rows, and each string a few hundred characters. Only those images are
//! kept in memory; the rest costs a count.

use std::collections::HashMap;
use std::fmt::{self, Write};

use super::Ordered;
use crate::event::Event;

use super::summary::{self, Summary};

/// Bounds of a report.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Rows of each table.
    pub top: usize,
    /// Process images on the timeline (the first ones started).
    pub max_images: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            top: 50,
            max_images: 5000,
        }
    }
}

/// Characters kept of an image's arguments (hover title).
const ARGS_CHARS: usize = 600;
/// Characters kept of a path (working directory, executable, table entries).
const PATH_CHARS: usize = 300;
/// Characters kept of a program name (labels are cut further to fit).
const PROGRAM_CHARS: usize = 120;
/// Untraced children marked on one row.
const MARKS_PER_IMAGE: usize = 5;

/// How an image ended.
#[derive(Debug, Clone)]
enum End {
    Exit(i64),
    /// `process_exit` without a code.
    Unknown,
    Signal(i64),
    /// Its pid went on as this program.
    Exec(String),
}

#[derive(Debug)]
struct Image {
    span: String,
    parent: Option<String>,
    pid: i64,
    ppid: Option<i64>,
    program: String,
    fork: bool,
    args: String,
    cwd: Option<String>,
    exe: Option<String>,
    supervised: bool,
    redacted: bool,
    start: i64,
    end: Option<(i64, End)>,
    files: u64,
    net: u64,
    /// `(time, path (reason))` of children that were not traced.
    untraced: Vec<(i64, String)>,
    untraced_more: u64,
}

/// The part of a report counted apart on each thread that parses (a [`super::Work`]):
/// the summary's counts, each image's file and network events, the last time. It keeps for
/// the calling thread the events [`Ordered::add_ordered`] needs.
#[derive(Default)]
pub struct Counter {
    summary: summary::Counter,
    per_image: super::PerImage,
    last: Option<i64>,
    /// No event of this block seen yet (the first of each is kept: the first of the file is
    /// one of them).
    block_start: bool,
}

impl Counter {
    /// Count one event.
    pub fn count(&mut self, ev: &Event) {
        self.summary.count(ev);
        self.per_image.count(ev);
        let t = ev.ts_unix_ns;
        self.last = Some(self.last.map_or(t, |l| l.max(t)));
    }

    fn merge(&mut self, other: Counter) {
        self.summary.merge(other.summary);
        self.per_image.merge(other.per_image);
        self.last = self.last.max(other.last);
    }

    /// Whether [`Ordered::add_ordered`] needs `ev`.
    fn needs_order(&self, ev: &Event) -> bool {
        summary::Counter::needs_order(ev)
            || matches!(&*ev.event_type, "exec" | "spawn") && ev.untraced == Some(true)
    }
}

impl super::Work for Counter {
    fn block(&mut self) {
        self.block_start = true;
    }

    fn event(&mut self, ev: &Event<'_>, _: super::Line<'_>, _: &mut Vec<u8>) -> bool {
        self.count(ev);
        std::mem::take(&mut self.block_start) || self.needs_order(ev)
    }

    fn finish(&mut self) {
        self.summary.flush();
    }
}

/// Builds a report from events: [`Builder::add`] each one in order, or count them apart
/// with [`Counter`]s ([`super::build`]).
#[derive(Default)]
pub struct Builder {
    opts: Options,
    summary: summary::Builder,
    counted: Counter,
    images: Vec<Image>,
    index: HashMap<String, usize>,
    /// Images started beyond `max_images`.
    left_out: u64,
    first: Option<(i64, String)>,
    last: Option<i64>,
}

impl Builder {
    /// A builder with these bounds.
    pub fn new(opts: Options) -> Self {
        Builder {
            opts,
            ..Default::default()
        }
    }

    /// Account one event.
    pub fn add(&mut self, ev: &Event) {
        self.counted.count(ev);
        self.add_ordered(ev);
    }

    fn start(&mut self, span: &str, ev: &Event) {
        let program = super::shorten(&super::program(ev), PROGRAM_CHARS);
        let pid = ev.pid.unwrap_or(0);
        // The image that exec'd this one ended there (same pid, replaced).
        if let Some(p) = ev.parent_image.as_deref().and_then(|p| self.index.get(p)) {
            let p = &mut self.images[*p];
            if p.pid == pid && p.end.is_none() {
                p.end = Some((ev.ts_unix_ns, End::Exec(program.clone())));
            }
        }
        if self.index.contains_key(span) {
            return; // a repeated start: keep the first
        }
        if self.images.len() >= self.opts.max_images {
            self.left_out += 1;
            return;
        }
        let args = ev
            .argv
            .as_ref()
            .map(|a| super::shorten(&a.join(" "), ARGS_CHARS))
            .unwrap_or_default();
        self.index.insert(span.to_string(), self.images.len());
        self.images.push(Image {
            span: span.to_string(),
            parent: ev.parent_image.as_deref().map(str::to_string),
            pid,
            ppid: ev.ppid,
            program,
            fork: ev.via.as_deref() == Some("fork"),
            args,
            cwd: ev.cwd.as_deref().map(|c| super::shorten(c, PATH_CHARS)),
            exe: ev.exe.as_deref().map(|c| super::shorten(c, PATH_CHARS)),
            supervised: ev.supervised == Some(true),
            redacted: ev.redacted == Some(true),
            start: ev.ts_unix_ns,
            end: None,
            files: 0,
            net: 0,
            untraced: vec![],
            untraced_more: 0,
        });
    }

    /// The page; `skipped` lines that were not telemetry, `name` the input's name (its title).
    pub fn finish(mut self, skipped: u64, name: &str) -> String {
        let counted = std::mem::take(&mut self.counted);
        for (span, (files, net)) in counted.per_image.into_counts() {
            if let Some(&k) = self.index.get(&span) {
                self.images[k].files += files;
                self.images[k].net += net;
            }
        }
        self.last = counted.last;
        let mut summary = std::mem::take(&mut self.summary);
        summary.merge(counted.summary);
        let s = summary.finish(skipped);
        let mut o = String::with_capacity(64 << 10);
        head(&mut o, name);
        let _ = write!(
            o,
            "<h1>substrate trace report: {}</h1>\n<p class=\"meta\">",
            Esc(name)
        );
        overview(&mut o, &s);
        if let Some((_, ts)) = &self.first {
            let _ = write!(o, "<br>first event at {}", Esc(ts));
        }
        o.push_str("</p>\n<h2>Process timeline</h2>\n");
        timeline(&mut o, &self);
        tables(&mut o, &s, self.opts.top);
        let _ = write!(
            o,
            "<script>{SCRIPT}</script>\n<noscript><p class=\"note\">(The filter box needs \
             JavaScript; the picture and tables do not.)</p></noscript>\n</body>\n</html>\n"
        );
        o
    }
}

impl Ordered for Builder {
    type Work = Counter;

    /// Add what a [`Counter`] counted.
    fn merge(&mut self, counter: Counter) {
        self.counted.merge(counter);
    }

    /// Account an event a [`Counter`] kept, in order (the counter counted the rest of it).
    fn add_ordered(&mut self, ev: &Event) {
        if summary::Counter::needs_order(ev) {
            self.summary.add_ordered(ev);
        }
        let t = ev.ts_unix_ns;
        if self.first.is_none() {
            self.first = Some((t, ev.ts.to_string()));
        }
        let Some(span) = ev.span_id.as_deref() else {
            return; // lost
        };
        if ev.event_type == "process_start" {
            self.start(span, ev);
            return;
        }
        let Some(&k) = self.index.get(span) else {
            return;
        };
        let img = &mut self.images[k];
        match &*ev.event_type {
            "process_exit" => {
                let how = match (ev.signal, ev.exit_code) {
                    (Some(s), _) => End::Signal(s),
                    (None, Some(c)) => End::Exit(c),
                    _ => End::Unknown,
                };
                img.end = Some((t, how));
            }
            "exec" | "spawn" if ev.untraced == Some(true) => {
                if img.untraced.len() < MARKS_PER_IMAGE {
                    let what = format!(
                        "{} ({})",
                        super::shorten(ev.path.as_deref().unwrap_or(""), PATH_CHARS),
                        super::shorten(ev.untraced_reason.as_deref().unwrap_or("?"), 80)
                    );
                    img.untraced.push((t, what));
                } else {
                    img.untraced_more += 1;
                }
            }
            _ => {}
        }
    }
}

/// The page's only script: shows the filter box and dims the rows it does not match. It takes
/// nothing from the trace but the DOM's escaped attributes. Its hash is in the page's CSP.
const SCRIPT: &str = "(function(){var f=document.getElementById('filter'),m=document.getElementById('matches'),rows=document.querySelectorAll('#timeline g.row');document.body.setAttribute('data-rows',String(rows.length));if(!f)return;f.hidden=false;f.addEventListener('input',function(){var q=f.value.trim().toLowerCase(),n=0;rows.forEach(function(r){var hit=!q||(r.getAttribute('data-program')||'').toLowerCase().indexOf(q)>=0||r.getAttribute('data-pid')===q;r.classList.toggle('dim',!hit);if(hit)n++;});m.textContent=q?n+' of '+rows.length+' rows match':'';});console.log('substrate report: '+rows.length+' rows');})();";

/// `sha256` of [`SCRIPT`], base64 (checked by `tests/tests/report.rs` and by the browser,
/// which refuses to run the script otherwise).
const SCRIPT_SHA256: &str = "Wh5eHFNfw4zDqbibuzex9nFS6METvw6nwUvjfP9bDfw=";

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:16px 24px;color:#1d2330;background:#fff}
h1{font-size:20px;margin:0 0 6px}h2{font-size:17px;margin:22px 0 6px}
.meta{color:#3b4252;margin:0}.note{color:#6b5000;background:#fff6d5;padding:4px 8px;display:inline-block}
.legend span{display:inline-block;margin-right:14px;white-space:nowrap}
.sw{display:inline-block;width:22px;height:11px;margin-right:5px;vertical-align:-1px}
.tl{overflow-x:auto;border:1px solid #d5dae1}
svg text{font:12px monospace;fill:#1d2330}svg .tick{font:11px monospace;fill:#555}
.grid{stroke:#e3e6ea;stroke-width:1}.stripe{fill:#f5f7fa}
.bar{shape-rendering:crispEdges}
.ok .bar,.sw.ok{fill:#2f9a57;background:#2f9a57}.fail .bar,.sw.fail{fill:#d33c3c;background:#d33c3c}
.sig .bar,.sw.sig{fill:#8a3fb0;background:#8a3fb0}.exec .bar,.sw.exec{fill:#6f93b8;background:#6f93b8}
.run .bar,.sw.run{fill:#a9aeb5;background:#a9aeb5}
.sup .bar{stroke:#111;stroke-width:1.5;stroke-dasharray:4 2}.sw.sup{border:1.5px dashed #111;width:19px;height:8px}
.mk,.sw.mk{fill:#f08c00;background:#f08c00}
g.dim{opacity:.15}
.tables{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
table{border-collapse:collapse;font-size:13px;min-width:220px;max-width:660px}
caption{text-align:left;font-weight:600;padding:2px 0;white-space:nowrap}
td{border-top:1px solid #e3e6ea;padding:1px 6px;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums;color:#3b4252}
td.k{font-family:monospace;word-break:break-all}
tr.more td{color:#6b7280;font-style:italic}
#filter{font:13px monospace;width:280px;padding:2px 4px}";

fn head(o: &mut String, name: &str) {
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'sha256-{SCRIPT_SHA256}'; base-uri 'none'; \
         form-action 'none'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>substrate report: {}</title>\n<style>\n{STYLE}\n</style>\n</head>\n<body>\n",
        Esc(name)
    );
}

fn overview(o: &mut String, s: &Summary) {
    let wall = s.root_wall_ns.map_or("unknown".into(), super::duration);
    let _ = write!(
        o,
        "{} events, {} process images, {} untraced children, {} records lost; root wall time {}",
        s.events,
        s.processes,
        s.untraced,
        s.lost,
        Esc(&wall)
    );
    if s.skipped > 0 {
        let _ = write!(o, " ({} lines that are not telemetry skipped)", s.skipped);
    }
}

// The timeline's geometry, in CSS pixels (fixed, so that rows and bars are whole pixels; the
// width fits a 1366-pixel window beside the page's margins).
const WIDTH: f64 = 1300.0;
const LABEL_W: f64 = 340.0;
const RIGHT_PAD: f64 = 24.0;
const AXIS_H: usize = 26;
const ROW_H: usize = 18;
const BAR_H: usize = 12;
const INDENT: usize = 10;
const MAX_INDENT_LEVELS: usize = 20;
/// Width of a character of the labels (12px monospace), to cut them to the label column.
const CHAR_W: f64 = 7.3;

/// The images in depth-first tree order, children in start order, with their depth.
fn tree_order(images: &[Image]) -> Vec<(usize, usize)> {
    let mut kids: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut roots = vec![];
    for (k, i) in images.iter().enumerate() {
        match i.parent.as_deref() {
            Some(p) if p != i.span => kids.entry(p).or_default().push(k),
            _ => roots.push(k),
        }
    }
    let known: std::collections::HashSet<&str> = images.iter().map(|i| i.span.as_str()).collect();
    // Children whose parent is not on the timeline are roots.
    for (p, ks) in &kids {
        if !known.contains(p) {
            roots.extend(ks.iter().copied());
        }
    }
    let by_start = |v: &mut Vec<usize>| v.sort_by_key(|k| (images[*k].start, *k));
    by_start(&mut roots);
    for v in kids.values_mut() {
        by_start(v);
    }
    let mut order = Vec::with_capacity(images.len());
    let mut seen = vec![false; images.len()];
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|k| (*k, 0)).collect();
    while let Some((k, d)) = stack.pop() {
        if std::mem::replace(&mut seen[k], true) {
            continue;
        }
        order.push((k, d));
        if let Some(c) = kids.get(images[k].span.as_str()) {
            stack.extend(c.iter().rev().map(|c| (*c, d + 1)));
        }
    }
    // A cycle of parents (hostile input) leaves images unreached: show them at the top level.
    order.extend((0..images.len()).filter(|k| !seen[*k]).map(|k| (k, 0)));
    order
}

fn status(i: &Image) -> (&'static str, String) {
    match &i.end {
        Some((_, End::Exit(0))) => ("ok", "exit 0".into()),
        Some((_, End::Exit(c))) => ("fail", format!("exit {c}")),
        Some((_, End::Signal(s))) => ("sig", format!("killed by signal {s}")),
        Some((_, End::Exec(p))) => ("exec", format!("replaced by exec of {p}")),
        Some((_, End::Unknown)) => ("run", "exited, status unknown".into()),
        None => (
            "run",
            "no exit in the trace (running at its end, or the exit was lost)".into(),
        ),
    }
}

fn timeline(o: &mut String, b: &Builder) {
    let images = &b.images;
    if images.is_empty() {
        o.push_str("<p>No process image starts in this trace.</p>\n");
        return;
    }
    let t0 = images
        .iter()
        .map(|i| i.start)
        .min()
        .unwrap_or(0)
        .min(b.first.as_ref().map_or(i64::MAX, |f| f.0));
    let t1 = images
        .iter()
        .filter_map(|i| i.end.as_ref().map(|e| e.0))
        .chain(b.last)
        .max()
        .unwrap_or(t0)
        .max(t0.saturating_add(1));
    // In f64: times of a hostile trace may be anything.
    let span = t1 as f64 - t0 as f64;
    let x1 = WIDTH - RIGHT_PAD;
    let x = |t: i64| LABEL_W + ((t as f64 - t0 as f64) / span).clamp(0.0, 1.0) * (x1 - LABEL_W);
    let order = tree_order(images);
    let height = AXIS_H + order.len() * ROW_H + 4;

    o.push_str("<p class=\"legend\">");
    for (c, what) in [
        ("ok", "exit 0"),
        ("fail", "exit non-zero"),
        ("sig", "killed by a signal"),
        ("exec", "replaced by exec (same pid)"),
        ("run", "no exit in the trace"),
        ("sup", "followed by the supervisor"),
        ("mk", "untraced child started"),
    ] {
        let _ = write!(o, "<span><i class=\"sw {c}\"></i>{what}</span>");
    }
    o.push_str(
        "</p>\n<p><input id=\"filter\" hidden placeholder=\"filter: program or pid\"> \
         <span id=\"matches\"></span></p>\n",
    );
    if b.left_out > 0 {
        let _ = writeln!(
            o,
            "<p class=\"note\">The timeline shows the first {} process images started; {} more \
             are not shown (the tables count them all).</p>",
            images.len(),
            b.left_out
        );
    }
    let _ = writeln!(
        o,
        "<div class=\"tl\"><svg id=\"timeline\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"process timeline\">"
    );
    for r in (0..order.len()).step_by(2) {
        let _ = writeln!(
            o,
            "<rect class=\"stripe\" x=\"0\" y=\"{}\" width=\"{WIDTH}\" height=\"{ROW_H}\"/>",
            AXIS_H + r * ROW_H
        );
    }
    // Ticks: 1, 2 or 5 times a power of ten nanoseconds, about ten across.
    let mut step = 1i64;
    while span / step as f64 > 10.0 && step < i64::MAX / 10 {
        step = match step.to_string().as_bytes().first() {
            Some(b'1') => step * 2,
            Some(b'2') => step / 2 * 5,
            _ => step * 2,
        };
    }
    let mut t = 0i64;
    while t as f64 <= span {
        let tx = x(t0.saturating_add(t));
        let label = if t == 0 {
            "0".into()
        } else {
            super::duration(t)
        };
        // A label that would run off the right edge ends at its line instead.
        let (lx, anchor) = if tx + 2.0 + label.len() as f64 * CHAR_W > WIDTH {
            (tx - 2.0, "end")
        } else {
            (tx + 2.0, "start")
        };
        let _ = writeln!(
            o,
            "<line class=\"grid\" x1=\"{tx:.1}\" y1=\"{}\" x2=\"{tx:.1}\" y2=\"{height}\"/>\
             <text class=\"tick\" x=\"{lx:.1}\" y=\"16\" text-anchor=\"{anchor}\">{}</text>",
            AXIS_H - 6,
            Esc(&label)
        );
        t = match t.checked_add(step) {
            Some(t) => t,
            None => break,
        };
    }
    for (r, &(k, depth)) in order.iter().enumerate() {
        let i = &images[k];
        let y = AXIS_H + r * ROW_H;
        let (class, status) = status(i);
        let end = i.end.as_ref().map_or(t1, |e| e.0).max(i.start);
        let (bx0, bx1) = (x(i.start), x(end));
        let sup = if i.supervised { " sup" } else { "" };
        let _ = write!(
            o,
            "<g class=\"row {class}{sup}\" data-pid=\"{}\" data-program=\"{}\"><title>",
            i.pid,
            Esc(&i.program)
        );
        title(o, i, t0, end, &status);
        let indent = depth.min(MAX_INDENT_LEVELS) * INDENT;
        let label = if i.fork {
            format!("{} (fork) {}", i.program, i.pid)
        } else {
            format!("{} {}", i.program, i.pid)
        };
        let room = ((LABEL_W - 12.0 - indent as f64) / CHAR_W).max(4.0) as usize;
        let _ = write!(
            o,
            "</title><text x=\"{}\" y=\"{}\">{}</text>\
             <rect class=\"bar\" x=\"{bx0:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{BAR_H}\"/>",
            6 + indent,
            y + 13,
            Esc(&super::shorten(&label, room)),
            y + (ROW_H - BAR_H) / 2,
            (bx1 - bx0).max(2.0)
        );
        for (t, what) in &i.untraced {
            let _ = write!(
                o,
                "<path class=\"mk\" d=\"M{:.1} {}l5 6l-5 6l-5-6z\"><title>untraced child: {}\
                 </title></path>",
                x(*t),
                y + 3,
                Esc(what)
            );
        }
        o.push_str("</g>\n");
    }
    o.push_str("</svg></div>\n");
}

/// A row's hover title: arguments, place, times, status, counts.
fn title(o: &mut String, i: &Image, t0: i64, end: i64, status: &str) {
    let args = if i.args.is_empty() {
        &i.program
    } else {
        &i.args
    };
    let _ = write!(o, "{}", Esc(args));
    if i.fork {
        o.push_str(" (forked copy)");
    }
    let _ = write!(o, "\npid {}", i.pid);
    if let Some(p) = i.ppid {
        let _ = write!(o, ", parent pid {p}");
    }
    if let Some(c) = &i.cwd {
        let _ = write!(o, "\ncwd {}", Esc(c));
    }
    if let Some(e) = &i.exe {
        let _ = write!(o, "\nexe {}", Esc(e));
    }
    let ran = if i.end.is_some() {
        super::duration(end.saturating_sub(i.start))
    } else {
        format!("at least {}", super::duration(end.saturating_sub(i.start)))
    };
    let _ = write!(
        o,
        "\nstarted at +{}, ran {}\n{}",
        super::duration(i.start.saturating_sub(t0)),
        ran,
        Esc(status)
    );
    if i.supervised {
        o.push_str("\nfollowed by the supervisor (a program the preload cannot enter)");
    }
    if i.redacted {
        o.push_str("\nsecret-looking arguments [REDACTED]");
    }
    if i.files > 0 || i.net > 0 {
        let _ = write!(o, "\nfile events {}, network events {}", i.files, i.net);
    }
    for (_, u) in &i.untraced {
        let _ = write!(o, "\nuntraced child: {}", Esc(u));
    }
    if i.untraced_more > 0 {
        let _ = write!(o, "\n… and {} more untraced children", i.untraced_more);
    }
}

fn table<'a>(
    o: &mut String,
    title: &str,
    total: usize,
    rows: impl Iterator<Item = (String, &'a str)>,
    shown: usize,
) {
    if total == 0 {
        return;
    }
    let _ = writeln!(o, "<table><caption>{} ({total})</caption>", Esc(title));
    for (n, k) in rows {
        let _ = writeln!(
            o,
            "<tr><td class=\"n\">{}</td><td class=\"k\">{}</td></tr>",
            Esc(&n),
            Esc(&super::shorten(k, PATH_CHARS))
        );
    }
    if total > shown {
        let _ = writeln!(
            o,
            "<tr class=\"more\"><td></td><td>… and {} more</td></tr>",
            total - shown
        );
    }
    o.push_str("</table>\n");
}

fn tables(o: &mut String, s: &Summary, top: usize) {
    let lists = summary::lists(s);
    let list = |o: &mut String, title: &str| {
        if let Some((t, m)) = lists.iter().find(|(t, _)| *t == title) {
            let rows = summary::top(m, top);
            let shown = rows.len();
            table(
                o,
                t,
                m.len(),
                rows.into_iter().map(|(k, v)| (v.to_string(), k.as_str())),
                shown,
            );
        }
    };
    let groups: [(&str, &[&str]); 5] = [
        ("Events", &["events by type", "events by program"]),
        (
            "Files",
            &[
                "files read",
                "files written",
                "files created (O_CREAT)",
                "files deleted",
                "files changed (size, mode, owner, times, xattrs)",
            ],
        ),
        ("Failures", &["failed execs", "failed opens"]),
        ("Network", &["network endpoints", "DNS names"]),
        ("Shared objects", &["shared objects loaded (images)"]),
    ];
    for (h, titles) in groups {
        let _ = write!(o, "<h2>{h}</h2>\n<div class=\"tables\">\n");
        if h == "Failures" {
            let shown = s.failed_processes.len().min(top);
            table(
                o,
                "processes that exited non-zero or were killed",
                s.failed_processes.len(),
                s.failed_processes
                    .iter()
                    .take(top)
                    .map(|p| (String::new(), p.as_str())),
                shown,
            );
        }
        for t in titles.iter() {
            list(o, t);
        }
        if titles
            .iter()
            .all(|t| lists.iter().any(|(lt, m)| lt == t && m.is_empty()))
            && (h != "Failures" || s.failed_processes.is_empty())
        {
            o.push_str("<p>None.</p>\n");
        }
        o.push_str("</div>\n");
    }
    // Whatever other list the summary has.
    let placed: Vec<&str> = groups.iter().flat_map(|(_, t)| t.iter().copied()).collect();
    let rest: Vec<&str> = lists
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| !placed.contains(t))
        .collect();
    if !rest.is_empty() {
        o.push_str("<h2>More</h2>\n<div class=\"tables\">\n");
        for t in rest {
            list(o, t);
        }
        o.push_str("</div>\n");
    }
}

/// A string from the trace, escaped for HTML text and attribute values: `& < > " '` as
/// entities, control characters (but tab and newline) and bidirectional controls as `\xHH` or
/// `\u{HHHH}`, so that they can neither break the markup nor disguise the text.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(k) = rest.find(|c: char| special(c)) {
            f.write_str(&rest[..k])?;
            let c = rest[k..].chars().next().unwrap_or('\0');
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                c if (c as u32) < 0x80 => write!(f, "\\x{:02x}", c as u32)?,
                c => write!(f, "\\u{{{:04x}}}", c as u32)?,
            }
            rest = &rest[k + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

fn special(c: char) -> bool {
    matches!(c, '&' | '<' | '>' | '"' | '\'')
        || (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(line: &str) -> Event<'static> {
        let base = r#""ts":"2026-01-01T00:00:00Z","session_id":null,"parent_span":null,"component":"telemetry","tid":1,"pos":0,"ring_id":"r""#;
        Event::parse(&format!("{{{base},{line}}}"))
            .unwrap()
            .into_owned()
    }

    #[test]
    fn escapes_markup_quotes_and_controls() {
        let s = "<script>alert('x')</script> \"a\" & b\u{7}\u{0}\r\u{85}\u{202e}\ttab\nline é";
        let e = Esc(s).to_string();
        assert_eq!(
            e,
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &quot;a&quot; &amp; b\\x07\\x00\\x0d\
             \\u{0085}\\u{202e}\ttab\nline é"
        );
        assert!(!e.contains('<') && !e.contains('"') && !e.contains('\''));
    }

    #[test]
    fn hostile_strings_never_reach_the_page_raw() {
        let mut b = Builder::new(Options::default());
        let evil = r#"<script>alert(1)</script><img src=x onerror=alert(2)>"#;
        let argv = serde_json::to_string(&[evil, "\"><svg onload=alert(3)>"]).unwrap();
        b.add(&ev(&format!(
            r#""ts_unix_ns":10,"event_type":"process_start","span_id":"s1","parent_image":null,"pid":7,"argv":{argv},"cwd":"</title><script>x</script>","exe":"/bin/x""#
        )));
        b.add(&ev(
            r#""ts_unix_ns":20,"event_type":"file_open","span_id":"s1","pid":7,"path":"<b>bold</b>","flags":0"#,
        ));
        b.add(&ev(
            r#""ts_unix_ns":30,"event_type":"process_exit","span_id":"s1","pid":7,"exit_code":3"#,
        ));
        let page = b.finish(0, "<trace>");
        assert_eq!(page.matches("<script>").count(), 1, "only the page's own");
        for raw in ["<img", "<svg onload", "<b>", "</title><script>", "<trace>"] {
            assert!(!page.contains(raw), "{raw} in the page");
        }
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("&lt;b&gt;bold&lt;/b&gt;"));
        assert_eq!(page.matches("<g class=\"row fail\"").count(), 1);
    }

    #[test]
    fn a_huge_trace_gives_a_bounded_page() {
        let opts = Options {
            top: 10,
            max_images: 100,
        };
        let mut b = Builder::new(opts);
        // Strings as long as a record allows would do the same, slower.
        let long = "x".repeat(5000);
        let n = 3000;
        for k in 0..n {
            let parent = if k == 0 {
                "null".to_string()
            } else {
                format!("\"s{}\"", k / 2)
            };
            b.add(&ev(&format!(
                r#""ts_unix_ns":{k},"event_type":"process_start","span_id":"s{k}","parent_image":{parent},"pid":{k},"argv":["p{k}{long}","{long}"],"cwd":"/{long}""#
            )));
            b.add(&ev(&format!(
                r#""ts_unix_ns":{k},"event_type":"file_open","span_id":"s{k}","pid":{k},"path":"/f{k}/{long}","flags":0"#
            )));
            b.add(&ev(&format!(
                r#""ts_unix_ns":{},"event_type":"process_exit","span_id":"s{k}","pid":{k},"exit_code":0"#,
                k + 10
            )));
        }
        let page = b.finish(0, "big");
        assert_eq!(page.matches("<g class=\"row").count(), 100);
        assert!(page.contains(&format!("{} more are not shown", n - 100)));
        assert!(page.contains(&format!("files read ({n})")));
        assert!(page.contains(&format!("… and {} more", n - 10)));
        // 100 rows and 10-row tables of strings cut to a few hundred characters.
        assert!(page.len() < 400_000, "{} bytes", page.len());
    }

    #[test]
    fn parent_cycles_and_missing_parents_still_give_every_row() {
        let mut b = Builder::new(Options::default());
        for (s, p) in [("a", "b"), ("b", "a"), ("c", "gone"), ("d", "d")] {
            b.add(&ev(&format!(
                r#""ts_unix_ns":1,"event_type":"process_start","span_id":"{s}","parent_image":"{p}","pid":2,"argv":["{s}"]"#
            )));
        }
        let order = tree_order(&b.images);
        let mut ks: Vec<usize> = order.iter().map(|(k, _)| *k).collect();
        ks.sort();
        assert_eq!(ks, [0, 1, 2, 3]);
        let page = b.finish(0, "t");
        assert_eq!(page.matches("<g class=\"row").count(), 4);
    }
}
