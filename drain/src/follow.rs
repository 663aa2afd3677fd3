//! The drain loop shared by `decode`, `--follow` and `record`: poll the reader, write lines,
//! and when there is nothing to read, flush, publish the position and sleep.
//!
//! Sleeping is adaptive: [`MIN_NAP`] after the first records that follow a quiet spell of
//! [`QUIET_SPELL`] (the rest of a burst comes soon), then each nap twice the last, up to
//! [`MAX_NAP`] while records come now and then or not at all, and up to [`BUSY_NAP`] while
//! they come at [`BUSY_RATE`] or faster (a build); but never longer than the ring takes to
//! fill a quarter at the rate it filled during the last nap (a small ring and a storm of
//! records: naps down to [`MIN_NAP`]). So an occasional commit shows up as a line within
//! [`MAX_NAP`], a busy stream's within [`BUSY_NAP`] and in batches of hundreds, and an idle
//! drain wakes 100 times a second (about 0.1% of a core here).
//!
//! Waking costs more CPU than decoding the records it finds: each wake-up is a timer, two
//! context switches, a `write(2)` of the batch, the position published, and, most of all
//! while a build runs, a working set (code, the process model, the output buffer) brought
//! back into caches that the build's compilers evicted meanwhile: about 80 µs of CPU per
//! wake-up of a busy follower here. Following `make -j2` (48,000 events in 4 s), naps of at
//! most 5 ms (the old rule: about 1,600 wake-ups) cost 2-3 times the CPU of decoding the
//! same ring at once, busy naps of 20 ms about 1.5 times, of 40 ms about 1.3 times (130
//! wake-ups); `drain-bench` measures the same against a synthetic build.
//!
//! A record that a live writer is still writing is first waited for with `crossbeam-utils`'
//! `Backoff` (a few spins, then a few yields: writers finish a record in nanoseconds), and only
//! then with the naps above. Whether its writer is still alive is asked of
//! [`crate::liveness::CachedLiveness`], which remembers answers: spinning on a busy record does
//! not read `/proc` each time round.
//!
//! The published position is what a restarted drain resumes from: it is only advanced once
//! the lines before it are flushed to the output, and never past an `exec` line still waiting
//! for its outcome.

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;
use format::{Item, Loss, LossReason, Reader, ReaderOptions, Ring, Start, Waiting};

use crate::decode::{self, Decoder, Stats};
use crate::resume;

/// The first sleep after records that follow a quiet spell.
pub const MIN_NAP: Duration = Duration::from_millis(2);
/// The longest sleep: how late a line can be.
pub const MAX_NAP: Duration = Duration::from_millis(10);
/// The longest sleep while records come at [`BUSY_RATE`] or faster.
pub const BUSY_NAP: Duration = Duration::from_millis(40);
/// Records per millisecond (over the last nap) that make a stream busy: see [`BUSY_NAP`].
pub const BUSY_RATE: u32 = 2;
/// Records found after this long without any start a burst: naps start again at [`MIN_NAP`].
pub const QUIET_SPELL: Duration = Duration::from_millis(100);

/// A signal number caught by the drain (0: none). Every access is `Relaxed`: the word is a
/// flag that publishes no other data, so the loop only needs to see the handler's store
/// eventually (it polls at least every few milliseconds), in any order with other memory.
pub static SIGNALLED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: i32) {
    SIGNALLED.store(sig, Relaxed);
}

/// Catch SIGINT, SIGTERM, SIGHUP (and SIGQUIT) into [`SIGNALLED`] (for a program whose
/// follow should end on them; a library user may handle signals its own way and set
/// [`SIGNALLED`] itself).
///
/// ```
/// use std::sync::atomic::Ordering::Relaxed;
/// drain::follow::catch_signals();
/// unsafe { libc::raise(libc::SIGTERM) };
/// assert_eq!(drain::follow::SIGNALLED.swap(0, Relaxed), libc::SIGTERM);
/// ```
pub fn catch_signals() {
    for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: installing an async-signal-safe handler (one atomic store).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(i32) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(s, &sa, std::ptr::null_mut());
        }
    }
}

/// Called with where the follow stands; true ends it.
pub type DoneFn<'a> = dyn FnMut(&mut Progress<'_>) -> bool + 'a;

/// Where a follow stands, for [`Until::done`].
pub struct Progress<'p> {
    ring: &'p Ring,
    dec: &'p mut Decoder,
    caught_up: bool,
    soon: bool,
}

impl Progress<'_> {
    /// The ring followed.
    pub fn ring(&self) -> &Ring {
        self.ring
    }

    /// Whether everything reserved so far was read.
    pub fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// Ask again soon ([`MIN_NAP`]) rather than after the next adaptive nap: the end is
    /// near (the traced command exited), and should be noticed promptly.
    pub fn ask_again_soon(&mut self) {
        self.soon = true;
    }

    /// Whether a traced process of the session may still write: a writer slot's process is
    /// alive, or a child that a `fork` or `spawn` line announced has not written its
    /// `process_start` yet and is alive (between `fork` and its first record a child holds no
    /// slot: its parent may have exited already). Asked afresh each time, of every writer
    /// slot used so far: a caller that asks it often (at each wake-up) should ask it only every
    /// so often while it answers `true`.
    pub fn traced_processes_alive(&mut self) -> bool {
        self.ring.any_writer_alive(&crate::liveness::FreshLiveness)
            || self.dec.unstarted_children_alive()
    }
}

/// When the loop ends.
pub struct Until<'a> {
    /// Keep polling after catching up (follow).
    pub follow: bool,
    /// With `follow`: called whenever the reader waits, and every 8192 records, with whether it
    /// is caught up; true ends the loop. It handles signals (`SIGNALLED`) as it sees fit.
    /// `None`: never done (until a signal is caught, see [`catch_signals`]).
    pub done: Option<&'a mut DoneFn<'a>>,
    /// Without `follow`: how long to wait for a record a live writer is still writing.
    pub busy_wait: Duration,
    /// Publish the read position to the ring.
    pub publish: bool,
}

/// A ring being decoded into lines: a reader from the oldest record, the decoder with its
/// process model, and whether the read position is published to the ring (so that a drain
/// started later resumes there).
///
/// ```
/// use drain::follow::{Follower, Until};
/// use drain::output::{Output, Target};
///
/// let dir = tempfile::tempdir().unwrap();
/// let ring = format::Ring::create(&dir.path().join("s.ring"), &Default::default()).unwrap();
/// // ... the session's processes write into it (LD_PRELOAD, SUBSTRATE_RING) ...
/// let trace = dir.path().join("trace.jsonl");
/// let mut out = Output::open(Target::File(trace.clone())).unwrap();
/// let mut f = Follower::new(&ring, drain::decode::Options { redact: true });
/// // Lines this ring already has in the file are not written again.
/// assert!(!f.resume_into(&trace).unwrap());
/// // Decode what is there now, then stop (`Until { follow: true, .. }` keeps going).
/// f.run(&mut out, Until::caught_up()).unwrap();
/// assert_eq!(f.stats().events, 0);
/// ```
pub struct Follower<'r> {
    reader: Reader<'r>,
    dec: Decoder,
    publish: bool,
}

impl<'r> Follower<'r> {
    /// Follow `ring` from its oldest record. The position is published when the ring was
    /// opened writable ([`Ring::open`]); a read-only ring is never modified.
    pub fn new(ring: &'r Ring, opts: decode::Options) -> Follower<'r> {
        Follower {
            reader: Reader::new(
                ring,
                ReaderOptions {
                    start: Start::Oldest,
                    liveness: Box::new(crate::liveness::CachedLiveness::default()),
                    ..Default::default()
                },
            ),
            dec: Decoder::new(ring, opts),
            publish: ring.writable(),
        }
    }

    /// Do not publish the read position even though the ring is writable.
    pub fn without_publishing(mut self) -> Self {
        self.publish = false;
        self
    }

    /// Resume into the trace file at `path`: if it holds lines of this ring, lines below the
    /// position the ring says was published, and lines the file already holds, are not
    /// written again (see [`crate::resume`]). Returns whether the file held lines of this
    /// ring.
    pub fn resume_into(&mut self, path: &Path) -> io::Result<bool> {
        let ring = self.reader.ring();
        let published = ring.consumer_position();
        let written = resume::scan(path, &resume::ring_id(ring), published)?;
        let seen = written.seen;
        if seen {
            self.dec.resume(published, written);
        }
        Ok(seen)
    }

    /// Counts of what was written so far.
    pub fn stats(&self) -> &Stats {
        &self.dec.stats
    }

    /// The ring followed.
    pub fn ring(&self) -> &'r Ring {
        self.reader.ring()
    }

    /// Decode into `out` until `until` says so. Can be called again (a follow after a
    /// decode, or a last decode after a follow).
    pub fn run(&mut self, out: &mut dyn Write, until: Until<'_>) -> io::Result<()> {
        let until = Until {
            publish: until.publish && self.publish,
            ..until
        };
        run(&mut self.reader, &mut self.dec, out, until)
    }
}

impl Until<'_> {
    /// Whether the loop ends, and whether the caller asked to be asked again soon.
    fn is_done(&mut self, ring: &Ring, dec: &mut Decoder, caught_up: bool) -> (bool, bool) {
        match self.done.as_mut() {
            Some(f) => {
                let mut p = Progress {
                    ring,
                    dec,
                    caught_up,
                    soon: false,
                };
                (f(&mut p), p.soon)
            }
            None => (SIGNALLED.load(Relaxed) != 0, false),
        }
    }
}

impl Until<'static> {
    /// Decode what is there and stop: a record a live writer is still writing is waited for
    /// up to a second.
    pub fn caught_up() -> Until<'static> {
        Until {
            follow: false,
            done: None,
            busy_wait: Duration::from_millis(1000),
            publish: true,
        }
    }
}

/// Drain `reader` into `out` until `until` says so (or a signal arrives, when following).
fn run(
    reader: &mut Reader<'_>,
    dec: &mut Decoder,
    out: &mut dyn Write,
    until: Until<'_>,
) -> io::Result<()> {
    let ring = reader.ring();
    let me = std::process::id();
    let mut until = until;
    let mut out = WriteAdapter(out);
    let mut nap = MIN_NAP;
    // The last nap: what the records found after it accumulated over; and the position
    // before them.
    let mut slept = MIN_NAP;
    let mut read_from = reader.position();
    // When records were last found (`None`: not yet), and how many this wake-up found.
    let (mut last_found, mut batch): (Option<Instant>, u32) = (None, 0);
    let mut busy_since: Option<Instant> = None;
    let mut unflushed = 0u32;
    // A record a live writer is in the middle of is done within nanoseconds, almost always:
    // spin, then yield, a few times before flushing and sleeping like an idle drain.
    let backoff = Backoff::new();
    loop {
        let item = reader.poll();
        match item {
            Item::Waiting(Waiting::Busy) if !backoff.is_completed() => backoff.snooze(),
            Item::Record(_) | Item::Lost(_) => {
                backoff.reset();
                dec.item(ring, &item, &mut out)?;
                batch = batch.saturating_add(1);
                busy_since = None;
                unflushed += 1;
                if unflushed >= 8192 {
                    out.flush()?;
                    unflushed = 0;
                    if until.publish {
                        publish(reader, dec);
                    }
                    if until.follow && until.is_done(ring, dec, false).0 {
                        break;
                    }
                }
            }
            Item::Waiting(w) => {
                dec.flush_pending(ring, Some(Duration::from_millis(100)), &mut out)?;
                out.flush()?;
                let found = std::mem::take(&mut batch);
                if found > 0 {
                    let now = Instant::now();
                    if last_found.is_none_or(|t| now.duration_since(t) >= QUIET_SPELL) {
                        // The first records after a quiet spell: more may follow at once.
                        nap = MIN_NAP;
                    }
                    last_found = Some(now);
                }
                unflushed = 0;
                if until.publish {
                    publish(reader, dec);
                    ring.drain_heartbeat(me);
                }
                if !until.follow {
                    if w == Waiting::CaughtUp {
                        break;
                    }
                    let since = *busy_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= until.busy_wait {
                        // Stopping short of what the writers reserved: say so.
                        let loss = unfinished(reader);
                        dec.item(ring, &Item::Lost(loss), &mut out)?;
                        dec.stats.unfinished = Some(loss);
                        break;
                    }
                } else {
                    let (done, soon) = until.is_done(ring, dec, w == Waiting::CaughtUp);
                    if done {
                        break;
                    }
                    if soon {
                        nap = MIN_NAP;
                    }
                }
                // A busy stream is read in bigger batches, at longer intervals, but never so
                // far apart that the ring would fill past a quarter at the rate it just
                // filled.
                let busy = u128::from(found) * 1000 >= slept.as_micros() * u128::from(BUSY_RATE);
                let mut cap = if busy { BUSY_NAP } else { MAX_NAP };
                let read = reader.position().saturating_sub(read_from);
                read_from = reader.position();
                if read > 0 {
                    let quarter = ring.geometry().capacity / 4;
                    let fill_cap = slept.as_secs_f64() * quarter as f64 / read as f64;
                    let fill_cap = Duration::try_from_secs_f64(fill_cap.min(1.0));
                    cap = cap.min(fill_cap.unwrap_or(MIN_NAP).max(MIN_NAP));
                }
                nap = nap.min(cap);
                std::thread::sleep(nap);
                slept = nap;
                nap = (nap * 2).min(cap);
            }
        }
    }
    dec.flush_pending(ring, None, &mut out)?;
    out.flush()?;
    if until.publish {
        publish(reader, dec);
    }
    Ok(())
}

/// The loss report of a read that ends at the reader's position before the reservation head:
/// the record there (busy, or its header unwritten) and whatever follows it.
fn unfinished(reader: &Reader<'_>) -> Loss {
    let ring = reader.ring();
    let pos = reader.position();
    let head = ring.stats().reserve_pos.min(pos + ring.geometry().capacity);
    Loss {
        reason: LossReason::Unfinished,
        records: 1,
        exact: false,
        bytes: head.saturating_sub(pos),
        pos,
        kind: None,
        writer: None,
    }
}

fn publish(reader: &Reader<'_>, dec: &Decoder) {
    match dec.min_pending_pos() {
        // An exec line still waiting for its outcome: resume at it (without a record count).
        Some(p) if p < reader.position() => reader.ring().publish_consumer(p),
        _ => reader.publish(),
    }
}

struct WriteAdapter<'a>(&'a mut dyn Write);

impl Write for WriteAdapter<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        self.0.write_all(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
