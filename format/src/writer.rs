//! A process's writer handle: a claimed writer slot plus the recording path.
//!
//! One `Writer` serves every thread of a process (it is `Sync`; the record path takes `&self`).
//! Attaching and detaching make a few system calls (reading the process start time, probing
//! dead slots); recording makes none, takes no lock and allocates nothing: see
//! [`Writer::write_event`].
//!
//! Slot life cycle: `FREE/DEAD --CAS--> CLAIMING(pid) --fields, release--> ACTIVE --detach-->
//! FREE`. The generation grows at every claim. A process that execs adopts its own slot again
//! (same pid and start time) with a new generation and attach position, so records its old
//! image left unfinished read as abandoned.

use core::sync::atomic::{AtomicBool, Ordering::*};

use crate::layout::{self, ctl, slot, slot_state};
use crate::mem::{MapMem, Mem};
use crate::protocol::{Claim, DropReason, Producer};
use crate::records::{self, ev_flags, Event, VAR_PREFIX};
use crate::ring::{KillLiveness, Ring};
use crate::sys;

/// Who is attaching: pid and start time (clock ticks after boot), which together name a
/// process even when pids are reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterIdentity {
    /// Process id.
    pub pid: u32,
    /// `/proc/PID/stat` field 22; 0 if unknown.
    pub start_time: u64,
}

impl WriterIdentity {
    /// The calling process (reads `/proc/self/stat` with raw syscalls, no allocation).
    pub fn current() -> WriterIdentity {
        let pid = sys::getpid();
        WriterIdentity {
            pid,
            start_time: sys::process_start_time(pid).unwrap_or(0),
        }
    }
}

/// Why a writer could not attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachError {
    /// Every slot is held by a live process. Records of this process are counted as dropped.
    NoSlot,
    /// The ring is mapped read-only.
    ReadOnly,
}

impl std::fmt::Display for AttachError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttachError::NoSlot => write!(f, "every writer slot is held by a live process"),
            AttachError::ReadOnly => write!(f, "the ring is mapped read-only"),
        }
    }
}

impl std::error::Error for AttachError {}

/// How many slots from its home slot a process looks for the slot it already holds.
const ADOPT_PROBES: u32 = 64;

/// An attached writer.
pub struct Writer<'r> {
    ring: &'r Ring,
    prod: Producer<MapMem>,
    id: WriterIdentity,
    generation: u32,
    detached: AtomicBool,
}

impl<'r> Writer<'r> {
    /// Attach the calling process.
    pub fn attach(ring: &'r Ring) -> Result<Writer<'r>, AttachError> {
        Self::attach_as(ring, WriterIdentity::current())
    }

    /// Attach as `id`: adopt the slot this process already holds (after exec), else take a free
    /// one, else take over the slot of a process that no longer exists.
    pub fn attach_as(ring: &'r Ring, id: WriterIdentity) -> Result<Writer<'r>, AttachError> {
        if !ring.writable() {
            return Err(AttachError::ReadOnly);
        }
        let mem = ring.mem();
        let g = ring.geometry();
        let n = g.slots;
        // Searches start at the process's home slot, `pid % slots`: a process finds the slot it
        // holds (after exec) in the first probes, and a new one touches one page of the table.
        let home = id.pid % n;
        let ctl_of = |i: u32| g.slot_off(i as u16) + slot::CTL;
        let try_claim = |i: u32, cur: u64| -> Option<u32> {
            let gen = layout::slot_ctl_generation(cur).wrapping_add(1);
            let new = layout::slot_ctl(slot_state::CLAIMING, gen, id.pid);
            // AcqRel: acquire orders us after the previous owner's release (its records are
            // below the reservation position we read next); release is not needed yet.
            mem.cas(ctl_of(i), cur, new, AcqRel, Relaxed)
                .ok()
                .map(|_| gen)
        };
        // Acquire on each control word: see the fields of ACTIVE slots. Probing stops after
        // ADOPT_PROBES slots: a slot further away is not adopted (it is reaped once this process
        // exits), which keeps attaching cheap however big the table is.
        let own = (0..n.min(ADOPT_PROBES)).map(|k| (home + k) % n).find(|&i| {
            let c = mem.load(ctl_of(i), Acquire);
            layout::slot_ctl_state(c) == slot_state::ACTIVE
                && layout::slot_ctl_pid(c) == id.pid
                && mem.load(g.slot_off(i as u16) + slot::START_TIME, Relaxed) == id.start_time
        });
        let mut claimed =
            own.and_then(|i| try_claim(i, mem.load(ctl_of(i), Acquire)).map(|g| (i, g)));
        for k in 0..n {
            if claimed.is_some() {
                break;
            }
            let i = (home + k) % n;
            let c = mem.load(ctl_of(i), Acquire);
            if matches!(
                layout::slot_ctl_state(c),
                slot_state::FREE | slot_state::DEAD
            ) {
                claimed = try_claim(i, c).map(|g| (i, g));
            }
        }
        for k in 0..n {
            if claimed.is_some() {
                break;
            }
            let i = (home + k) % n;
            let c = mem.load(ctl_of(i), Acquire);
            if layout::slot_ctl_state(c) == slot_state::ACTIVE
                && !sys::pid_exists(layout::slot_ctl_pid(c))
            {
                claimed = try_claim(i, c).map(|g| (i, g));
                if claimed.is_some() {
                    mem.add(g.ctl(ctl::REAPED), 1, Relaxed);
                }
            }
        }
        let Some((i, generation)) = claimed else {
            return Err(AttachError::NoSlot);
        };
        let base = g.slot_off(i as u16);
        mem.store(base + slot::START_TIME, id.start_time, Relaxed);
        // A count an earlier owner left is of threads that are gone (it died, or this process
        // exec'd), and it must not hold up reclaim for as long as we live. Relaxed: published
        // by the release store of ACTIVE below; our own reservations come after it.
        mem.store(base + slot::INFLIGHT, 0, Relaxed);
        // Acquire: every reservation made before our claim (by earlier owners of this slot
        // above all) is below the value we read.
        let attach_pos = mem.load(g.ctl(ctl::RESERVE), Acquire);
        mem.store(base + slot::ATTACH_POS, attach_pos, Relaxed);
        // Release: readers that acquire ACTIVE see start time and attach position.
        mem.store(
            base + slot::CTL,
            layout::slot_ctl(slot_state::ACTIVE, generation, id.pid),
            Release,
        );
        mem.add(g.ctl(ctl::ATTACHES), 1, Relaxed);
        Ok(Writer {
            ring,
            prod: Producer::new(mem, g, i as u16),
            id,
            generation,
            detached: AtomicBool::new(false),
        })
    }

    /// The ring written to.
    pub fn ring(&self) -> &'r Ring {
        self.ring
    }
    /// This writer's slot index.
    pub fn slot(&self) -> u16 {
        self.prod.slot
    }
    /// The slot's claim generation.
    pub fn generation(&self) -> u32 {
        self.generation
    }
    /// The protocol engine of this writer (for tests that stop a writer between steps).
    #[doc(hidden)]
    pub fn producer(&self) -> &Producer<MapMem> {
        &self.prod
    }
    /// Who attached.
    pub fn identity(&self) -> WriterIdentity {
        self.id
    }

    /// Store this process image's span id in its slot (for `stat`, and for naming a span whose
    /// `process_start` record was overwritten).
    pub fn set_span(&self, span: &[u8; 16]) {
        self.prod
            .mem
            .write_bytes(self.prod.geo.slot_off(self.prod.slot) + slot::SPAN, span);
    }

    /// Release the slot (process exit). Later records are dropped as [`DropReason::Detached`].
    /// Idempotent.
    pub fn detach(&self) {
        if self.detached.swap(true, Relaxed) {
            return;
        }
        let mem = &self.prod.mem;
        let g = &self.prod.geo;
        let c = layout::slot_ctl(slot_state::FREE, self.generation, self.id.pid);
        let off = g.slot_off(self.prod.slot) + slot::CTL;
        let cur = layout::slot_ctl(slot_state::ACTIVE, self.generation, self.id.pid);
        // Release: our records' reservations happen before the next owner's claim (which
        // acquires). CAS, not store: if the slot was reaped and re-claimed meanwhile (we were
        // thought dead), it is no longer ours to free.
        if mem.cas(off, cur, c, Release, Relaxed).is_ok() {
            mem.add(g.ctl(ctl::DETACHES), 1, Relaxed);
        }
    }

    /// Reserve `len` bytes of payload for a record of `kind`, to be written in place.
    #[inline]
    pub fn claim(&self, kind: u16, len: usize) -> Result<Reservation<'_, 'r>, DropReason> {
        if self.detached.load(Relaxed) {
            self.prod.count_drop(DropReason::Detached);
            return Err(DropReason::Detached);
        }
        let c = self
            .prod
            .reserve(kind, layout::RECORD_HEADER + len as u64, &KillLiveness)?;
        Ok(Reservation {
            w: self,
            claim: c,
            done: false,
        })
    }

    /// Write one record of `kind` holding `payload`. Returns its stream position.
    #[inline]
    pub fn write_bytes(&self, kind: u16, payload: &[u8]) -> Result<u64, DropReason> {
        let r = self.claim(kind, payload.len())?;
        r.write(0, payload);
        Ok(r.commit())
    }

    /// Write an event: the fixed part `fixed` (its header's `var_count` and TRUNCATED flag are
    /// set here), then the var fields, cut to fit the largest record if needed. No allocation:
    /// `vars` is walked twice (plan, then copy), so it must be cheap to clone.
    #[inline]
    pub fn write_event<'a, E, I>(&self, fixed: &E, vars: I) -> Result<u64, DropReason>
    where
        E: Event,
        I: Iterator<Item = &'a [u8]> + Clone,
    {
        let fixed_len = size_of::<E>();
        let budget = (self.ring.max_record() - layout::RECORD_HEADER) as usize - fixed_len;
        let plan = records::plan_vars(vars.clone(), budget);
        let r = self.claim(E::KIND as u16, fixed_len + plan.bytes)?;
        r.write(0, fixed.as_bytes());
        // Patch var_count and flags in place, with one 4-byte write: they are adjacent, and
        // every layout begins with its header (records.rs checks that at compile time).
        const VAR_COUNT_AT: usize = core::mem::offset_of!(records::EventHeader, var_count);
        const { assert!(core::mem::offset_of!(records::EventHeader, flags) == VAR_COUNT_AT + 2) };
        let flags = fixed.ev().flags.get()
            | if plan.truncated {
                ev_flags::TRUNCATED
            } else {
                0
            };
        let mut vc = [0u8; 4];
        vc[..2].copy_from_slice(&(plan.count as u16).to_le_bytes());
        vc[2..].copy_from_slice(&flags.to_le_bytes());
        r.write(VAR_COUNT_AT, &vc);
        let mut at = fixed_len;
        let mut left = plan.bytes;
        for v in vars.take(plan.count) {
            let take = v.len().min(left - VAR_PREFIX);
            r.write(at, &(take as u32).to_le_bytes());
            r.write(at + VAR_PREFIX, &v[..take]);
            at += VAR_PREFIX + take;
            left -= VAR_PREFIX + take;
        }
        Ok(r.commit())
    }
}

/// A record reserved in place. Write its payload with [`Reservation::write`], then
/// [`Reservation::commit`]; dropping it uncommitted leaves a discarded record.
pub struct Reservation<'w, 'r> {
    w: &'w Writer<'r>,
    claim: Claim,
    done: bool,
}

impl Reservation<'_, '_> {
    /// Payload length reserved.
    pub fn len(&self) -> usize {
        (self.claim.len - layout::RECORD_HEADER) as usize
    }
    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Stream position of the record.
    pub fn pos(&self) -> u64 {
        self.claim.pos
    }
    /// Copy `bytes` to payload offset `at`. Bytes past the reservation are not written.
    #[inline(always)]
    pub fn write(&self, at: usize, bytes: &[u8]) {
        let n = bytes.len().min(self.len().saturating_sub(at));
        if n > 0 {
            self.w
                .prod
                .mem
                .write_bytes(self.claim.payload_off + at as u64, &bytes[..n]);
        }
    }
    /// Commit: the record becomes visible to readers. Returns its position.
    #[inline(always)]
    pub fn commit(mut self) -> u64 {
        self.done = true;
        self.w.prod.commit(&self.claim);
        self.claim.pos
    }
}

impl Drop for Reservation<'_, '_> {
    fn drop(&mut self) {
        if !self.done {
            self.w.prod.abort(&self.claim);
        }
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        self.detach();
    }
}
