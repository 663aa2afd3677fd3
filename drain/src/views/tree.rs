//! `substrate-drain tree`: the process tree, one line per process image, children under their
//! parent image (`parent_image`), in start order: program and arguments (shortened), pid,
//! duration, exit status, counts of file and network events, and the children that were not
//! traced.

use std::collections::HashMap;
use std::fmt::Write;

use super::Ordered;
use crate::event::Event;

/// One process image.
#[derive(Debug, Default, Clone)]
pub struct Node {
    /// Its span.
    pub span: String,
    /// The image that started it.
    pub parent: Option<String>,
    /// Pid.
    pub pid: i64,
    /// Program (argv\[0\] base name).
    pub program: String,
    /// Arguments, joined.
    pub args: String,
    /// Start and exit times, ns since the epoch.
    pub start: Option<i64>,
    /// See [`Node::start`].
    pub end: Option<i64>,
    /// `exit N`, `signal N`, `exec` (its pid went on as another image), or `running` (no
    /// end in the trace).
    pub status: Option<String>,
    /// File events.
    pub files: u64,
    /// Network and DNS events.
    pub net: u64,
    /// Children that will not be traced: `path (reason)`.
    pub untraced: Vec<String>,
    /// Order of appearance.
    seq: usize,
}

/// The part of the tree counted apart on each thread that parses (a [`super::Work`]): each
/// image's file and network events. It keeps for the calling thread the events
/// [`Ordered::add_ordered`] needs: starts, exits and untraced children of images, and the
/// first event of each run of one image (the first event of every image is one of them).
#[derive(Default)]
pub struct Counter {
    per_image: super::PerImage,
    /// The image of the event before in this block (`None` at a block's start).
    last: Option<String>,
}

impl Counter {
    /// Whether [`Ordered::add_ordered`] needs `ev` whatever came before it.
    fn needs_order(ev: &Event) -> bool {
        match &*ev.event_type {
            "process_start" | "process_exit" => true,
            "exec" | "spawn" => ev.untraced == Some(true),
            _ => false,
        }
    }
}

impl super::Work for Counter {
    fn block(&mut self) {
        self.last = None;
    }

    fn event(&mut self, ev: &Event<'_>, _: super::Line<'_>, _: &mut Vec<u8>) -> bool {
        self.per_image.count(ev);
        let span = ev.span_id.as_deref().unwrap_or_default();
        let new_run = self.last.as_deref() != Some(span);
        if new_run {
            let last = self.last.get_or_insert_with(String::new);
            last.clear();
            last.push_str(span);
        }
        new_run || Counter::needs_order(ev)
    }
}

/// Builds the tree from events: [`Builder::add`] each one in order, or count them apart with
/// [`Counter`]s
/// ([`super::build`]).
#[derive(Default)]
pub struct Builder {
    nodes: HashMap<String, Node>,
    counted: super::PerImage,
}

impl Builder {
    /// Account one event.
    pub fn add(&mut self, ev: &Event) {
        self.counted.count(ev);
        self.add_ordered(ev);
    }

    /// The images and their children (each list in start order), roots first.
    pub fn finish(mut self) -> (Vec<Node>, HashMap<String, Vec<Node>>) {
        for (span, (files, net)) in std::mem::take(&mut self.counted).into_counts() {
            if let Some(n) = self.nodes.get_mut(&span) {
                n.files += files;
                n.net += net;
            }
        }
        let mut all: Vec<Node> = self.nodes.into_values().collect();
        all.sort_by_key(|n| (n.start.unwrap_or(i64::MAX), n.seq));
        let known: std::collections::HashSet<String> = all.iter().map(|n| n.span.clone()).collect();
        let mut roots = vec![];
        let mut children: HashMap<String, Vec<Node>> = HashMap::new();
        for n in all {
            match n.parent.clone().filter(|p| known.contains(p)) {
                Some(p) => children.entry(p).or_default().push(n),
                None => roots.push(n),
            }
        }
        (roots, children)
    }
}

impl Ordered for Builder {
    type Work = Counter;

    /// Add what a [`Counter`] counted.
    fn merge(&mut self, counter: Counter) {
        self.counted.merge(counter.per_image);
    }

    /// Account an event a [`Counter`] kept, in order (the counter counted its file and
    /// network events).
    fn add_ordered(&mut self, ev: &Event) {
        if ev.span_id.is_none() {
            return; // lost
        }
        let t = &*ev.event_type;
        if t == "process_start" {
            // The image that exec'd this one ended there (same pid, replaced).
            if let Some(p) = ev
                .parent_image
                .as_deref()
                .and_then(|p| self.nodes.get_mut(p))
            {
                if p.pid == ev.pid.unwrap_or(0) && p.end.is_none() {
                    p.end = Some(ev.ts_unix_ns);
                    p.status = Some("exec".into());
                }
            }
        }
        let seq = self.nodes.len();
        let span = ev.span_id.as_deref().unwrap_or_default();
        if !self.nodes.contains_key(span) {
            let node = Node {
                span: span.to_string(),
                seq,
                pid: ev.pid.unwrap_or(0),
                program: "?".into(),
                ..Default::default()
            };
            self.nodes.insert(span.to_string(), node);
        }
        let Some(n) = self.nodes.get_mut(span) else {
            return;
        };
        match t {
            "process_start" => {
                n.parent = ev.parent_image.as_deref().map(str::to_string);
                n.pid = ev.pid.unwrap_or(0);
                n.program = super::program(ev);
                // A forked copy runs its parent's program with its parent's argv: say so
                // rather than repeat the line.
                n.args = if ev.via.as_deref() == Some("fork") {
                    format!("{} (fork)", n.program)
                } else {
                    ev.argv.as_ref().map(|a| a.join(" ")).unwrap_or_default()
                };
                n.start = Some(ev.ts_unix_ns);
            }
            "process_exit" => {
                n.end = Some(ev.ts_unix_ns);
                n.status = Some(match (ev.signal, ev.exit_code) {
                    (Some(s), _) => format!("signal {s}"),
                    (None, Some(c)) => format!("exit {c}"),
                    _ => "exit ?".into(),
                });
            }
            "exec" | "spawn" if ev.untraced == Some(true) => n.untraced.push(format!(
                "{} ({})",
                ev.path.as_deref().unwrap_or_default(),
                ev.untraced_reason.as_deref().unwrap_or_default()
            )),
            _ => {}
        }
        n.start.get_or_insert(ev.ts_unix_ns);
    }
}

fn line(o: &mut String, prefix: &str, n: &Node, width: usize) {
    let dur = match (n.start, n.end) {
        (Some(s), Some(e)) => super::duration(e - s),
        _ => "-".into(),
    };
    let status = n.status.clone().unwrap_or_else(|| "running".into());
    let mut counts = String::new();
    if n.files > 0 {
        let _ = write!(counts, "  files {}", n.files);
    }
    if n.net > 0 {
        let _ = write!(counts, "  net {}", n.net);
    }
    let args = if n.args.is_empty() {
        n.program.clone()
    } else {
        n.args.clone()
    };
    let _ = writeln!(
        o,
        "{prefix}{}  [{}] {dur} {status}{counts}",
        super::shorten(&args, width.saturating_sub(prefix.chars().count()).max(20)),
        n.pid
    );
}

/// The tree as text, arguments cut to fit `width` columns.
pub fn text(roots: &[Node], children: &HashMap<String, Vec<Node>>, width: usize) -> String {
    let mut o = String::new();
    // Iterative, so that a deep tree cannot overflow the stack: (node, indent, last flags).
    let mut stack: Vec<(&Node, String, String)> = roots
        .iter()
        .rev()
        .map(|n| (n, String::new(), String::new()))
        .collect();
    while let Some((n, head, cont)) = stack.pop() {
        line(&mut o, &head, n, width);
        for u in &n.untraced {
            let _ = writeln!(o, "{cont}   (untraced child: {u})");
        }
        if let Some(kids) = children.get(&n.span) {
            for (i, k) in kids.iter().enumerate().rev() {
                let last = i + 1 == kids.len();
                let (h, c) = if last {
                    ("└─ ", "   ")
                } else {
                    ("├─ ", "│  ")
                };
                stack.push((k, format!("{cont}{h}"), format!("{cont}{c}")));
            }
        }
    }
    o
}
