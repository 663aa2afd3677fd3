//! A process's writer handle: a claimed writer slot plus the recording path.
//!
//! One `Writer` serves every thread of a process (it is `Sync`; the record path takes `&self`).
//! Attaching and detaching make a few system calls (reading the process start time, probing
//! dead slots); recording makes none, takes no lock and allocates nothing: see
//! [`Writer::write_event`].
//!
//! The protocol is not here: attaching and detaching are [`crate::protocol::slots`], recording
//! is [`crate::protocol::Producer`]. This is their edge: a ring's mapping, the calling
//! process's identity, `kill(pid, 0)` for reaping and reclaim, and the record layouts of
//! [`crate::records`].

use core::sync::atomic::{AtomicBool, Ordering::*};

use crate::layout::{self, slot};
use crate::mem::{MapMem, Mem, WordWriter};
use crate::protocol::{slots, Claim, DropReason, Producer};
use crate::records::{self, ev_flags, Event, VAR_PREFIX};
use crate::ring::{KillLiveness, Ring};
use crate::sys;

pub use crate::protocol::slots::WriterIdentity;

impl WriterIdentity {
    /// The calling process, with the clock's time now as its start-time bound: one `getpid`
    /// and a vDSO clock read, no file access (RING.md §1.3). `previous_span`: the span of the
    /// image this process ran before an exec, if known (zeros: none).
    pub fn current(previous_span: [u8; 16]) -> WriterIdentity {
        WriterIdentity {
            pid: sys::getpid(),
            start_time: sys::start_time_bound(),
            previous_span,
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

/// An attached writer.
pub struct Writer<'r> {
    ring: &'r Ring,
    prod: Producer<MapMem>,
    id: WriterIdentity,
    generation: u32,
    detached: AtomicBool,
}

impl<'r> Writer<'r> {
    /// Attach the calling process (as a new process: nothing to adopt).
    pub fn attach(ring: &'r Ring) -> Result<Writer<'r>, AttachError> {
        Self::attach_as(ring, WriterIdentity::current([0; 16]))
    }

    /// Attach as `id`: adopt the slot this process already holds (after exec), else take a free
    /// one, else take over the slot of a process that no longer exists.
    pub fn attach_as(ring: &'r Ring, id: WriterIdentity) -> Result<Writer<'r>, AttachError> {
        if !ring.writable() {
            return Err(AttachError::ReadOnly);
        }
        let (mem, g) = (ring.mem(), ring.geometry());
        // Reaping asks whether a slot's pid exists at all: `kill(pid, 0)`.
        let a = slots::attach(&mem, &g, id, &KillLiveness).ok_or(AttachError::NoSlot)?;
        let (i, generation) = (a.slot, a.generation);
        Ok(Writer {
            ring,
            prod: Producer::new(mem, g, i),
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
        let p = &self.prod;
        slots::detach(&p.mem, &p.geo, p.slot, self.generation, self.id.pid);
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
        // The payload in order, whole words at a time (`WordWriter`): the fixed part with
        // var_count and flags set (adjacent, in the header every layout begins with: records.rs
        // checks that at compile time), then each var field's length and bytes.
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
        let fb = fixed.as_bytes();
        let mut w = WordWriter::new(&self.prod.mem, r.claim.payload_off);
        w.put(&fb[..VAR_COUNT_AT]);
        w.put(&vc);
        w.put(&fb[VAR_COUNT_AT + 4..]);
        let mut left = plan.bytes;
        for v in vars.take(plan.count) {
            let take = v.len().min(left - VAR_PREFIX);
            w.put(&(take as u32).to_le_bytes());
            w.put(&v[..take]);
            left -= VAR_PREFIX + take;
        }
        w.finish();
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
