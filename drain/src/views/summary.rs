//! `substrate-drain summary`: what a trace did, in a screenful (or `--json`).
//!
//! Counts by event type and by program; files written, created, deleted, read and changed
//! (size, mode, owner, times, extended attributes: top N with counts); shared objects loaded
//! (with how many images loaded each); failed opens and execs; network endpoints and DNS names; processes that exited
//! non-zero or were killed; untraced children and lost records; the root's wall time.
//! Files count successful calls only; a file "created" is one opened with `O_CREAT` (it may
//! have existed: the trace cannot tell).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::Ordered;
use crate::event::Event;

/// Everything `summary` reports.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Telemetry lines read.
    pub events: u64,
    /// Lines skipped (not telemetry).
    pub skipped: u64,
    /// Lines per event type.
    pub by_type: BTreeMap<String, u64>,
    /// Lines per program.
    pub by_program: BTreeMap<String, u64>,
    /// Process images started.
    pub processes: u64,
    /// Files opened for writing, with how often.
    pub files_written: BTreeMap<String, u64>,
    /// Files opened with `O_CREAT`.
    pub files_created: BTreeMap<String, u64>,
    /// Files unlinked or removed.
    pub files_deleted: BTreeMap<String, u64>,
    /// Files opened for reading.
    pub files_read: BTreeMap<String, u64>,
    /// Files whose size, mode, owner, times or extended attributes were changed, with how
    /// many changes (a change through a descriptor whose path is unknown: `fd N (pid P)`; of
    /// a path that was not read: `(path not read, pid P)`).
    pub files_changed: BTreeMap<String, u64>,
    /// Shared objects loaded (`object_load`), with how many images loaded each.
    pub objects_loaded: BTreeMap<String, u64>,
    /// Failed opens: `path (errno N)` with how often.
    pub failed_opens: BTreeMap<String, u64>,
    /// Failed execs: `path (errno N)` with how often.
    pub failed_execs: BTreeMap<String, u64>,
    /// `addr:port` (or a socket path) connected to.
    pub endpoints: BTreeMap<String, u64>,
    /// Names looked up.
    pub dns_names: BTreeMap<String, u64>,
    /// Images that exited non-zero or were killed: `program (pid N): exit N | signal N`.
    pub failed_processes: Vec<String>,
    /// Children that were not traced (static, setuid, …).
    pub untraced: u64,
    /// Records lost (from `lost` lines).
    pub lost: u64,
    /// Wall time of the root process image, ns (start to exit), when both are in the trace.
    pub root_wall_ns: Option<i64>,
}

const O_WRONLY: i64 = libc::O_WRONLY as i64;
const O_RDWR: i64 = libc::O_RDWR as i64;
const O_CREAT: i64 = libc::O_CREAT as i64;

/// Where [`Builder`] counts each list of [`lists`] (same order) while it reads: hash maps,
/// sorted into the summary's maps once at the end.
#[allow(non_upper_case_globals)]
mod list {
    pub const by_type: usize = 0;
    pub const by_program: usize = 1;
    pub const files_written: usize = 2;
    pub const files_created: usize = 3;
    pub const files_deleted: usize = 4;
    pub const files_read: usize = 5;
    pub const files_changed: usize = 6;
    pub const objects_loaded: usize = 7;
    pub const failed_opens: usize = 8;
    pub const failed_execs: usize = 9;
    pub const endpoints: usize = 10;
    pub const dns_names: usize = 11;
    pub const COUNT: usize = 12;
}

/// Counts by key: in a hash map while counting, then ([`Counts::flush`]) in a list sorted by
/// key, which merges with another in one pass.
#[derive(Default)]
struct Counts {
    map: hashbrown::HashMap<String, u64>,
    /// The last key run-counted ([`Counts::bump_run`]) and its count not yet in `map`.
    last: String,
    pending: u64,
    /// What was flushed: sorted by key, each key once.
    sorted: Vec<(String, u64)>,
}

impl Counts {
    /// Count one `k` (allocating its key only the first time).
    fn bump(&mut self, k: &str) {
        *self.map.entry_ref(k).or_insert(0) += 1;
    }

    /// [`Counts::bump`] for keys that come in runs (event types, images): a run of one key
    /// is counted without hashing.
    fn bump_run(&mut self, k: &str) {
        if self.pending > 0 && self.last == k {
            self.pending += 1;
            return;
        }
        self.settle();
        self.last.clear();
        self.last.push_str(k);
        self.pending = 1;
    }

    /// Count `k` `n` times.
    fn add(&mut self, k: &str, n: u64) {
        *self.map.entry_ref(k).or_insert(0) += n;
    }

    fn settle(&mut self) {
        if self.pending > 0 {
            *self.map.entry_ref(self.last.as_str()).or_insert(0) += self.pending;
            self.pending = 0;
        }
    }

    /// Move what the map holds into the sorted list.
    fn flush(&mut self) {
        self.settle();
        if self.map.is_empty() {
            return;
        }
        let mut counted: Vec<(String, u64)> = self.map.drain().collect();
        sort_by_key(&mut counted);
        self.take_sorted(counted);
    }

    /// Add counts sorted by key, each key once.
    fn take_sorted(&mut self, counted: Vec<(String, u64)>) {
        self.sorted = merge_sorted(std::mem::take(&mut self.sorted), counted);
    }

    /// Add `other`'s counts to these.
    fn merge(&mut self, mut other: Counts) {
        self.flush();
        other.flush();
        self.take_sorted(other.sorted);
    }

    fn into_sorted(mut self) -> BTreeMap<String, u64> {
        self.flush();
        // Already sorted: the map is built in one pass.
        self.sorted.into_iter().collect()
    }
}

/// Sort by key (the keys are distinct), eight bytes at a time: by the first eight bytes of
/// each key as one number, then each run of keys sharing them by the next eight, and so on
/// (an explicit stack, not recursion: keys may be long). Most comparisons are of integers.
///
/// Paths share long prefixes (a build's or a search's directories), so comparing them whole
/// compared those prefixes every time: the sort took a tenth of a summary.
fn sort_by_key<T>(v: &mut Vec<(String, T)>) {
    // The eight bytes of `k` from `depth`, big-endian, padded with zeros: if two keys'
    // numbers differ, they are in the keys' order (a key that ends there is less than one
    // that goes on, as a zero is less than or equal to any byte).
    let word = |k: &[u8], depth: usize| {
        let mut b = [0u8; 8];
        let tail = k.get(depth..).unwrap_or_default();
        let n = tail.len().min(8);
        b[..n].copy_from_slice(&tail[..n]);
        u64::from_be_bytes(b)
    };
    let mut order: Vec<(u64, usize)> = (0..v.len()).map(|i| (0, i)).collect();
    // Runs of `order` whose keys are equal before `depth`, to sort from there.
    let mut runs = vec![(0, order.len(), 0)];
    while let Some((from, to, depth)) = runs.pop() {
        let run = &mut order[from..to];
        let mut longest = 0;
        for e in run.iter_mut() {
            let k = v[e.1].0.as_bytes();
            e.0 = word(k, depth);
            longest = longest.max(k.len());
        }
        if depth >= longest {
            // Every key of the run ends before `depth`, all bytes equal: shorter first.
            run.sort_unstable_by_key(|e| v[e.1].0.len());
            continue;
        }
        run.sort_unstable_by_key(|e| e.0);
        let mut i = 0;
        while i < run.len() {
            let j = i + run[i..].iter().take_while(|e| e.0 == run[i].0).count();
            if j - i > 1 {
                runs.push((from + i, from + j, depth + 8));
            }
            i = j;
        }
    }
    let mut taken: Vec<Option<(String, T)>> = v.drain(..).map(Some).collect();
    v.extend(order.iter().filter_map(|&(_, i)| taken[i].take()));
}

/// Two lists sorted by key (each key once) as one, the counts of a key in both added.
fn merge_sorted(a: Vec<(String, u64)>, b: Vec<(String, u64)>) -> Vec<(String, u64)> {
    if a.is_empty() {
        return b;
    }
    if b.is_empty() {
        return a;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => match x.0.cmp(&y.0) {
                std::cmp::Ordering::Less => a.next(),
                std::cmp::Ordering::Greater => b.next(),
                std::cmp::Ordering::Equal => {
                    let n = y.1;
                    b.next();
                    a.next().map(|(k, m)| (k, m + n))
                }
            },
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        out.extend(next);
    }
    out
}

/// `path (errno N)` into `key` (written directly: it is built for every failed call).
fn with_errno(key: &mut String, path: &str, errno: i64) {
    key.push_str(path);
    key.push_str(" (errno ");
    key.push_str(itoa::Buffer::new().format(errno));
    key.push(')');
}

/// The lists counted by file ([`list::files_written`] to [`list::files_changed`]): one map,
/// so that a file written and created costs one lookup.
const FILE_LISTS: std::ops::RangeInclusive<usize> = list::files_written..=list::files_changed;

/// Counts of one file, one per list of [`FILE_LISTS`].
type FileCounts = [u64; 5];

/// The part of a summary that does not depend on the order of events: counted apart on
/// each thread that parses (a [`super::Work`]), then merged into the [`Builder`]. It keeps
/// for the calling thread only the events the rest needs ([`Counter::needs_order`]).
#[derive(Default)]
pub struct Counter {
    /// The lists but those of [`FILE_LISTS`], which are counted in `files`.
    counts: [Counts; list::COUNT],
    files: hashbrown::HashMap<String, FileCounts>,
    /// Events by image (`by_program` is summed from it at the end: an image's events come
    /// together, so counting them costs no hashing).
    per_span: Counts,
    events: u64,
    processes: u64,
    untraced: u64,
    lost: u64,
    /// A key built for an event (`path (errno N)`), its memory used again.
    key: String,
}

impl Counter {
    /// Whether the [`Builder`] needs `ev` in order ([`Ordered::add_ordered`]): the starts
    /// and exits of images (program names, the root, failed processes).
    pub fn needs_order(ev: &Event) -> bool {
        matches!(&*ev.event_type, "process_start" | "process_exit")
    }

    /// Count one event.
    pub fn count(&mut self, ev: &Event) {
        let c = &mut self.counts;
        let files = &mut self.files;
        let mut file = |list: &[usize], path: &str| {
            let counts = files.entry_ref(path).or_insert([0; 5]);
            for l in list {
                counts[l - list::files_written] += 1;
            }
        };
        self.events += 1;
        c[list::by_type].bump_run(&ev.event_type);
        let span = ev.span_id.as_deref().unwrap_or_default();
        let path = || {
            ev.abs_path
                .as_deref()
                .or(ev.path.as_deref())
                .unwrap_or_default()
        };
        let key = &mut self.key;
        key.clear();
        match &*ev.event_type {
            "lost" => self.lost += ev.count.unwrap_or(0),
            _ => self.per_span.bump_run(span),
        }
        match &*ev.event_type {
            "process_start" => self.processes += 1,
            "file_open" => {
                if let Some(e) = ev.errno {
                    with_errno(key, path(), e);
                    c[list::failed_opens].bump(key);
                } else {
                    let flags = ev.flags.unwrap_or(0);
                    let how = if flags & (O_WRONLY | O_RDWR) != 0 {
                        list::files_written
                    } else {
                        list::files_read
                    };
                    if flags & O_CREAT != 0 {
                        file(&[how, list::files_created], path());
                    } else {
                        file(&[how], path());
                    }
                }
            }
            "object_load" => c[list::objects_loaded].bump(path()),
            "file_unlink" | "file_rmdir" if ev.errno.is_none() => {
                file(&[list::files_deleted], path());
            }
            t if super::show::is_meta(t) && ev.errno.is_none() => {
                let pid = ev.pid.unwrap_or(0);
                match (&ev.abs_path, &ev.path, ev.fd) {
                    (None, None, Some(fd)) => {
                        let _ = write!(key, "fd {fd} (pid {pid})");
                    }
                    _ if ev.path_unreadable == Some(true) => {
                        let _ = write!(key, "(path not read, pid {pid})");
                    }
                    _ => key.push_str(path()),
                }
                file(&[list::files_changed], key);
            }
            "exec" | "spawn" => {
                if let Some(e) = ev.errno {
                    let p = ev.path.as_deref().unwrap_or_default();
                    with_errno(key, p, e);
                    c[list::failed_execs].bump(key);
                }
                self.untraced += u64::from(ev.untraced == Some(true));
            }
            "net_connect" => {
                match (&ev.addr, ev.port) {
                    (Some(a), Some(p)) if a.contains(':') => {
                        let _ = write!(key, "[{a}]:{p}");
                    }
                    (Some(a), Some(p)) => {
                        let _ = write!(key, "{a}:{p}");
                    }
                    (Some(a), None) => key.push_str(a),
                    _ => key.push('?'),
                }
                c[list::endpoints].bump(key);
            }
            "dns_lookup" => c[list::dns_names].bump(ev.name.as_deref().unwrap_or_default()),
            _ => {}
        }
    }

    /// Move the counts into lists sorted by key (what a parsing thread does when it is
    /// done, so that the sorting runs in parallel and merging is one pass).
    pub fn flush(&mut self) {
        for c in &mut self.counts {
            c.flush();
        }
        if self.files.is_empty() {
            return;
        }
        let mut files: Vec<(String, FileCounts)> = self.files.drain().collect();
        sort_by_key(&mut files);
        let mut lists: [Vec<(String, u64)>; 5] = Default::default();
        for (path, n) in files {
            // The path is copied for each list it is in but the last, which takes it.
            let mut places = (0..5).filter(|k| n[*k] > 0).peekable();
            while let Some(k) = places.next() {
                let path = match places.peek() {
                    Some(_) => path.clone(),
                    None => {
                        lists[k].push((path, n[k]));
                        break;
                    }
                };
                lists[k].push((path, n[k]));
            }
        }
        for (l, counted) in FILE_LISTS.zip(lists) {
            self.counts[l].take_sorted(counted);
        }
    }

    /// Add `other`'s counts to these.
    pub fn merge(&mut self, mut other: Counter) {
        self.flush();
        other.flush();
        for (c, o) in self.counts.iter_mut().zip(other.counts) {
            c.merge(o);
        }
        let mut mine = std::mem::take(&mut self.per_span.map);
        let mut theirs = other.per_span;
        theirs.settle();
        self.per_span.settle();
        if mine.len() < theirs.map.len() {
            std::mem::swap(&mut mine, &mut theirs.map);
        }
        for (k, n) in theirs.map {
            *mine.entry(k).or_default() += n;
        }
        self.per_span.map = mine;
        self.events += other.events;
        self.processes += other.processes;
        self.untraced += other.untraced;
        self.lost += other.lost;
    }
}

impl super::Work for Counter {
    fn event(&mut self, ev: &Event<'_>, _: super::Line<'_>, _: &mut Vec<u8>) -> bool {
        self.count(ev);
        Counter::needs_order(ev)
    }

    fn finish(&mut self) {
        self.flush();
    }
}

/// Builds a [`Summary`] from events: [`Builder::add`] each one in order, or count them apart
/// with [`Counter`]s
/// ([`super::build`]).
#[derive(Default)]
pub struct Builder {
    s: Summary,
    counted: Counter,
    programs: hashbrown::HashMap<String, String>,
    root: Option<(String, i64)>,
}

impl Builder {
    /// Account one event.
    pub fn add(&mut self, ev: &Event) {
        self.counted.count(ev);
        if Counter::needs_order(ev) {
            self.add_ordered(ev);
        }
    }

    /// The summary, with `skipped` lines noted.
    pub fn finish(self, skipped: u64) -> Summary {
        let Builder {
            mut s,
            counted,
            programs,
            ..
        } = self;
        s.skipped = skipped;
        s.events = counted.events;
        s.processes = counted.processes;
        s.untraced = counted.untraced;
        s.lost = counted.lost;
        let mut counted = counted;
        counted.flush();
        let mut counts = counted.counts;
        let mut per_span = counted.per_span;
        per_span.settle();
        let c = &mut counts[list::by_program];
        for (span, n) in per_span.map {
            c.add(programs.get(&span).map_or("?", String::as_str), n);
        }
        [
            s.by_type,
            s.by_program,
            s.files_written,
            s.files_created,
            s.files_deleted,
            s.files_read,
            s.files_changed,
            s.objects_loaded,
            s.failed_opens,
            s.failed_execs,
            s.endpoints,
            s.dns_names,
        ] = counts.map(Counts::into_sorted);
        s
    }
}

impl Ordered for Builder {
    type Work = Counter;

    /// Add what a [`Counter`] counted.
    fn merge(&mut self, counter: Counter) {
        self.counted.merge(counter);
    }

    /// Account an event that [`Counter::needs_order`] (events in order: the counter that
    /// counted it does not do this part).
    fn add_ordered(&mut self, ev: &Event) {
        let s = &mut self.s;
        let span = ev.span_id.as_deref().unwrap_or_default();
        match &*ev.event_type {
            "process_start" => {
                self.programs.insert(span.to_string(), super::program(ev));
                if ev.parent_image.is_none() && self.root.is_none() {
                    self.root = Some((span.to_string(), ev.ts_unix_ns));
                }
            }
            "process_exit" => {
                let prog = self.programs.get(span).map_or("?", String::as_str);
                let pid = ev.pid.unwrap_or(0);
                if let Some(sig) = ev.signal {
                    s.failed_processes
                        .push(format!("{prog} (pid {pid}): signal {sig}"));
                } else if let Some(c) = ev.exit_code.filter(|c| *c != 0) {
                    s.failed_processes
                        .push(format!("{prog} (pid {pid}): exit {c}"));
                }
                if let Some((root, start)) = &self.root {
                    if *root == span {
                        s.root_wall_ns = Some(ev.ts_unix_ns - start);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The `n` entries of `m` with the highest counts, highest first (ties by name).
pub fn top(m: &BTreeMap<String, u64>, n: usize) -> Vec<(&String, &u64)> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    if n == 0 {
        return Vec::new();
    }
    // `m` goes by name, so among equal counts the entry seen first wins: a later one takes
    // the place of the worst kept only with a higher count, and no names are compared (a
    // trace's many keys counted once each are one comparison of integers each). The worst
    // kept is the lowest count, seen last.
    // An entry's count, its place in name order (earlier is better), and itself.
    type Ranked<'m> = (u64, Reverse<usize>, &'m String, &'m u64);
    let mut kept: BinaryHeap<Reverse<Ranked>> = BinaryHeap::with_capacity(n + 1);
    for (seen, (k, v)) in m.iter().enumerate() {
        match kept.peek() {
            Some(Reverse((worst, ..))) if kept.len() == n && *v <= *worst => {}
            _ => {
                kept.push(Reverse((*v, Reverse(seen), k, v)));
                if kept.len() > n {
                    kept.pop();
                }
            }
        }
    }
    // Highest count first, then by name (the order they were seen in).
    let mut v: Vec<_> = kept.into_iter().map(|Reverse(e)| e).collect();
    v.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    v.into_iter().map(|(_, _, k, v)| (k, v)).collect()
}

/// The counted lists of a summary with their titles, in the order `text` prints them.
pub fn lists(s: &Summary) -> [(&'static str, &BTreeMap<String, u64>); 12] {
    [
        ("events by type", &s.by_type),
        ("events by program", &s.by_program),
        ("files written", &s.files_written),
        ("files created (O_CREAT)", &s.files_created),
        ("files deleted", &s.files_deleted),
        ("files read", &s.files_read),
        (
            "files changed (size, mode, owner, times, xattrs)",
            &s.files_changed,
        ),
        ("shared objects loaded (images)", &s.objects_loaded),
        ("failed opens", &s.failed_opens),
        ("failed execs", &s.failed_execs),
        ("network endpoints", &s.endpoints),
        ("DNS names", &s.dns_names),
    ]
}

/// The summary as text for a terminal, lists cut to `n` entries.
pub fn text(s: &Summary, n: usize) -> String {
    let mut o = String::new();
    let wall = s.root_wall_ns.map_or("unknown".into(), super::duration);
    let _ = writeln!(
        o,
        "{} events, {} processes, {} untraced, {} lost; root wall time {wall}",
        s.events, s.processes, s.untraced, s.lost
    );
    if s.skipped > 0 {
        let _ = writeln!(o, "({} lines that are not telemetry skipped)", s.skipped);
    }
    let mut section = |title: &str, m: &BTreeMap<String, u64>| {
        if m.is_empty() {
            return;
        }
        let _ = writeln!(o, "\n{title} ({}):", m.len());
        for (k, v) in top(m, n) {
            let _ = writeln!(o, "  {v:>7}  {}", super::shorten(k, 100));
        }
    };
    for (title, m) in lists(s) {
        section(title, m);
    }
    if !s.failed_processes.is_empty() {
        let _ = writeln!(o, "\nprocesses that failed ({}):", s.failed_processes.len());
        for p in s.failed_processes.iter().take(n) {
            let _ = writeln!(o, "  {p}");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Keys with long shared prefixes (several in one list), keys that are prefixes of
        /// others, and zero bytes sort as strings sort.
        #[test]
        fn keys_sort_as_strings_sort(
            keys in prop::collection::hash_set(
                "(/work/big/nope/|/work/big/nope/12345678|/usr/|/|)[a\\x00-\\x02b]{0,20}",
                0..60,
            ),
        ) {
            let mut v: Vec<(String, u64)> =
                keys.into_iter().enumerate().map(|(i, k)| (k, i as u64)).collect();
            let mut want = v.clone();
            want.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            sort_by_key(&mut v);
            prop_assert_eq!(v, want);
        }

        /// The top entries: highest counts first, ties by name, as sorting them all gives.
        #[test]
        fn top_is_the_head_of_all_sorted(
            m in prop::collection::btree_map("[a-d]{0,3}", 1u64..4, 0..40),
            n in 0usize..45,
        ) {
            let mut all: Vec<(&String, &u64)> = m.iter().collect();
            all.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            all.truncate(n);
            prop_assert_eq!(top(&m, n), all);
        }
    }

    fn list(v: &[(&str, u64)]) -> Vec<(String, u64)> {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    #[test]
    fn sorted_lists_merge_in_one_pass_adding_shared_keys() {
        let a = list(&[("a", 1), ("c", 2), ("e", 3)]);
        let b = list(&[("b", 10), ("c", 20), ("f", 30)]);
        let want = list(&[("a", 1), ("b", 10), ("c", 22), ("e", 3), ("f", 30)]);
        assert_eq!(merge_sorted(a.clone(), b.clone()), want);
        assert_eq!(merge_sorted(b, a.clone()), want);
        assert_eq!(merge_sorted(a.clone(), vec![]), a);
        assert_eq!(merge_sorted(vec![], a.clone()), a);
    }

    #[test]
    fn counts_flushed_and_counted_again_merge_alike() {
        let mut c = Counts::default();
        for k in ["x", "y", "x", "z"] {
            c.bump(k);
        }
        c.flush();
        for k in ["y", "w", "y"] {
            c.bump(k);
        }
        c.bump_run("x");
        c.bump_run("x");
        let mut other = Counts::default();
        other.bump("z");
        c.merge(other);
        let want: BTreeMap<String, u64> = list(&[("w", 1), ("x", 4), ("y", 3), ("z", 2)])
            .into_iter()
            .collect();
        assert_eq!(c.into_sorted(), want);
    }
}
