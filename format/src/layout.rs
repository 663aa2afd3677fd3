//! The on-disk layout of a ring file: every offset, size, constant and bit of it.
//!
//! This module is the one home of these facts; `RING.md` describes the same layout in prose.
//! Everything is little-endian. Multi-byte fields of the file header use `zerocopy`'s
//! little-endian types so the layout is the same on every host and alignment is never assumed;
//! the hot words (control counters, writer-slot words, record headers) are 8-byte aligned
//! `u64`s accessed with atomics only.
//!
//! ```text
//! offset 0                 file header (one page), magic stored last
//! control_offset           control area: hot counters, each on its own 128-byte line
//! writers_offset           writer table: writer_slots × 64-byte slots
//! blocks_offset            block table: one 16-byte descriptor per data block (overwrite mode)
//! data_offset              data area: data_capacity bytes (a power of two), split in blocks
//! ```

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The magic at offset 0, stored last by the creator (with release ordering): a file whose
/// first eight bytes are not this is not a ring, or one whose creation did not finish.
pub const MAGIC: [u8; 8] = *b"SUBRING\x01";
/// The magic as the `u64` a little-endian load of the first eight bytes yields.
pub const MAGIC_U64: u64 = u64::from_le_bytes(MAGIC);
/// Format version this crate writes. Version 3 rings may carry [`CLOCK_REALTIME_ID`] records
/// (and this crate creates them so); versions 1 and 2 always carry [`CLOCK_MONOTONIC_ID`], and
/// their readers do not look at `clock_id`, so a realtime ring must not claim to be one of them.
pub const VERSION: u32 = 3;
/// Oldest format version this crate reads (and writes into, as that version). Version 1 has no
/// in-flight counts ([`slot::INFLIGHT`]).
pub const MIN_VERSION: u32 = 1;
/// Oldest format version whose header may name [`CLOCK_REALTIME_ID`].
pub const MIN_VERSION_REALTIME: u32 = 3;
/// Written as a native `u32`; reads back as this value only on a little-endian writer.
pub const ENDIAN_TAG: u32 = 0x0102_0304;

/// Page size the layout is aligned to (the largest common base page; 4 KiB hosts are fine).
pub const PAGE: u64 = 4096;
/// Size of one control-area line: two 64-byte cache lines, so adjacent-line prefetch does not
/// couple two hot counters.
pub const LINE: u64 = 128;

/// Size of the record header in bytes.
pub const RECORD_HEADER: u64 = 16;
/// Records start at multiples of this and their lengths are multiples of it.
pub const RECORD_ALIGN: u64 = 8;

/// Smallest and largest block sizes a ring may declare (a record never exceeds one block).
pub const MIN_BLOCK: u64 = 4096;
/// See [`MIN_BLOCK`].
pub const MAX_BLOCK: u64 = 1 << 20;
/// A ring has at least this many blocks, so a writer can always reclaim one while others fill.
pub const MIN_BLOCKS: u64 = 2;
/// Largest data capacity (4 GiB); record positions stay far from `u64` wrap.
pub const MAX_CAPACITY: u64 = 1 << 32;
/// Writer-table bounds. Slot indices travel in a 16-bit header field.
pub const MIN_SLOTS: u64 = 1;
/// See [`MIN_SLOTS`].
pub const MAX_SLOTS: u64 = 1 << 16;
/// Size of one writer slot.
pub const SLOT_SIZE: u64 = 64;
/// Size of one block descriptor.
pub const BLOCK_DESC_SIZE: u64 = 16;

/// How a full ring behaves, stored in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Mode {
    /// A full ring drops the new record and counts the drop; nothing committed is ever lost.
    Discard = 1,
    /// A full ring reclaims its oldest block (flight recorder); the reader learns what it missed.
    Overwrite = 2,
}

impl Mode {
    /// The mode a header word names, if any.
    pub fn from_u32(v: u32) -> Option<Mode> {
        match v {
            1 => Some(Mode::Discard),
            2 => Some(Mode::Overwrite),
            _ => None,
        }
    }

    /// The name used on the command line and in `stat`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Discard => "discard",
            Mode::Overwrite => "overwrite",
        }
    }
}

/// `clock_id`: the records' `ts_ns` fields are `CLOCK_MONOTONIC` ns, turned into wall-clock
/// time through the header's creation calibration (every version 1 and 2 ring).
pub const CLOCK_MONOTONIC_ID: u32 = 1;
/// `clock_id`: the records' `ts_ns` fields are `CLOCK_REALTIME` ns, wall-clock time since the
/// Unix epoch as they are (version 3 rings; what this crate creates). Both clocks are read
/// through the same vDSO path.
pub const CLOCK_REALTIME_ID: u32 = 2;

/// The file header, at offset 0. Written once by the creator before `magic`; never changed.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct FileHeader {
    /// [`MAGIC`], stored last.
    pub magic: [u8; 8],
    /// [`VERSION`].
    pub version: U32,
    /// [`ENDIAN_TAG`] as the creator stored it natively.
    pub endian_tag: U32,
    /// `size_of::<FileHeader>()` of the creator.
    pub header_size: U32,
    /// [`RECORD_HEADER`].
    pub record_header_size: U32,
    /// [`Mode`] as a `u32`.
    pub mode: U32,
    /// Block size in bytes: a power of two in [`MIN_BLOCK`]..=[`MAX_BLOCK`].
    pub block_size: U32,
    /// Total file size in bytes; the file must be exactly this long.
    pub file_size: U64,
    /// Offset of the control area (page aligned).
    pub control_offset: U64,
    /// Offset of the writer table (page aligned).
    pub writers_offset: U64,
    /// Number of writer slots.
    pub writer_slots: U32,
    /// [`SLOT_SIZE`].
    pub writer_slot_size: U32,
    /// Offset of the block table (page aligned), `data_capacity / block_size` descriptors.
    pub blocks_offset: U64,
    /// Offset of the data area (page aligned).
    pub data_offset: U64,
    /// Size of the data area: a power of two, at least [`MIN_BLOCKS`] blocks.
    pub data_capacity: U64,
    /// The session id (UUID bytes, big-endian as printed), or zeros.
    pub session_id: [u8; 16],
    /// Wall-clock creation time, ns since the Unix epoch.
    pub created_unix_ns: U64,
    /// Clock of the records' timestamps: [`CLOCK_REALTIME_ID`] (version 3 rings this crate
    /// creates) or [`CLOCK_MONOTONIC_ID`] (any version). Any other value is refused at open.
    pub clock_id: U32,
    /// Uid of the creator (the preload refuses rings owned by another user).
    pub creator_uid: U32,
    /// `CLOCK_REALTIME` read at calibration (creation), ns.
    pub calib_realtime_ns: U64,
    /// `CLOCK_MONOTONIC` read right after, ns. With [`CLOCK_MONOTONIC_ID`]:
    /// `unix_ns = ts_ns - calib_monotonic_ns + calib_realtime_ns`. With [`CLOCK_REALTIME_ID`]
    /// both calibration fields are informational only and never applied to a timestamp.
    pub calib_monotonic_ns: U64,
    /// Pid of the creator.
    pub creator_pid: U32,
    /// Zero.
    pub reserved0: U32,
}

/// Offsets inside the control area. Each hot word has its own [`LINE`].
pub mod ctl {
    use super::LINE;
    /// Reservation position: the stream position where the next record will start. Writers CAS it.
    pub const RESERVE: u64 = 0;
    /// Overwrite mode: position of the oldest retained block (block aligned). Writers CAS it
    /// forward one block at a time. Stays 0 in discard mode.
    pub const TAIL: u64 = LINE;
    /// Position up to which the drain has consumed (and, in discard mode, released) the stream.
    pub const CONSUMER: u64 = 2 * LINE;
    /// Records in the stream below `CONSUMER` as the drain that published it counted them,
    /// tagged with that position: `1 << 63 | (CONSUMER / 8 mod 2^23) << 40 | records mod
    /// 2^40` (version 2; zero, never valid, otherwise). Lets a reader that resumes there count
    /// exactly what overwrite mode reclaimed in between.
    pub const CONSUMER_RECORDS: u64 = 2 * LINE + 8;
    /// The drain's pid (`u64`), then its heartbeat (`u64`, monotonic ns) in the same line.
    pub const DRAIN_PID: u64 = 3 * LINE;
    /// See [`DRAIN_PID`].
    pub const DRAIN_HEARTBEAT: u64 = 3 * LINE + 8;
    /// Drop counters, one `u64` per [`crate::DropReason`], in one line (touched only when dropping).
    pub const DROPS: u64 = 4 * LINE;
    /// Overwrite statistics: bytes, then records, reclaimed.
    pub const OVERWRITTEN_BYTES: u64 = 5 * LINE;
    /// See [`OVERWRITTEN_BYTES`].
    pub const OVERWRITTEN_RECORDS: u64 = 5 * LINE + 8;
    /// Writer-table statistics: attaches, detaches, reaped slots; then an unused word.
    pub const ATTACHES: u64 = 6 * LINE;
    /// See [`ATTACHES`].
    pub const DETACHES: u64 = 6 * LINE + 8;
    /// See [`ATTACHES`].
    pub const REAPED: u64 = 6 * LINE + 16;
    /// Size of the control area.
    pub const SIZE: u64 = 8 * LINE;
}

/// Offsets inside one writer slot.
pub mod slot {
    /// `state (8 bits) | generation (24 bits) << 8 | pid (32 bits) << 32`.
    pub const CTL: u64 = 0;
    /// An upper bound of the owner's start time, clock ticks after boot (`/proc/PID/stat`
    /// field 22 is at most this, RING.md §1.3); 0 if unknown.
    pub const START_TIME: u64 = 8;
    /// The reservation position read right after this owner claimed the slot: every record an
    /// earlier owner of the slot reserved lies below it.
    pub const ATTACH_POS: u64 = 16;
    /// The owner's current span id (16 bytes), so a span can be named even when its
    /// `process_start` record was overwritten.
    pub const SPAN: u64 = 24;
    /// Version 2, overwrite mode: how many of the owner's reservations are between their
    /// reservation CAS and their header stamp (each thread adds 1 before its CAS and takes it
    /// back, with release, after its stamp). Reset when the slot is claimed.
    pub const INFLIGHT: u64 = 40;
}

/// Writer-slot states (low byte of the slot's control word).
pub mod slot_state {
    /// Never used, or released by a clean detach.
    pub const FREE: u8 = 0;
    /// Being claimed: the pid is known, the rest is not yet.
    pub const CLAIMING: u8 = 1;
    /// Owned by a live (or not yet known dead) process.
    pub const ACTIVE: u8 = 2;
    /// Its process was seen dead; free to reclaim.
    pub const DEAD: u8 = 3;
}

/// Pack a slot control word.
pub const fn slot_ctl(state: u8, generation: u32, pid: u32) -> u64 {
    (state as u64) | (((generation & 0x00ff_ffff) as u64) << 8) | ((pid as u64) << 32)
}
/// State byte of a slot control word.
pub const fn slot_ctl_state(w: u64) -> u8 {
    w as u8
}
/// Generation of a slot control word (24 bits, wraps).
pub const fn slot_ctl_generation(w: u64) -> u32 {
    ((w >> 8) & 0x00ff_ffff) as u32
}
/// Pid of a slot control word.
pub const fn slot_ctl_pid(w: u64) -> u32 {
    (w >> 32) as u32
}

/// Block descriptor word (overwrite mode, one per block in the block table): `lap tag
/// (23 bits) << 41 | inexact (1 bit) << 40 | cumulative records mod 2^40`. The lap tag is
/// `(block position / capacity + 1) mod 2^23`, so 0 means never written. Cumulative counts are
/// compared modulo 2^40.
pub mod desc {
    /// Mask of the cumulative record count.
    pub const CUM_MASK: u64 = (1 << 40) - 1;
    /// The block's own count is a lower bound.
    pub const INEXACT: u64 = 1 << 40;
    /// Shift of the lap tag.
    pub const LAP_SHIFT: u32 = 41;
    /// Mask of the lap tag (after the shift).
    pub const LAP_MASK: u64 = (1 << 23) - 1;
}

/// The [`ctl::CONSUMER_RECORDS`] word for `records` below position `pos` (version 2):
/// `1 << 63 | (pos / 8 mod 2^23) << 40 | records mod 2^40`.
pub const fn consumer_records_word(pos: u64, records: u64) -> u64 {
    1 << 63 | ((pos / 8) & desc::LAP_MASK) << 40 | (records & desc::CUM_MASK)
}

/// The record count a [`ctl::CONSUMER_RECORDS`] word gives for position `pos`, if it was
/// published for that position.
pub const fn consumer_records(word: u64, pos: u64) -> Option<u64> {
    if word & !desc::CUM_MASK == consumer_records_word(pos, 0) {
        Some(word & desc::CUM_MASK)
    } else {
        None
    }
}

/// Record header word 0: `len_flags (u32) | kind (u16) << 32 | writer slot (u16) << 48`.
/// Word 1 (offset 8) is the record's absolute stream position.
pub mod rec {
    /// The record is reserved and being written.
    pub const BUSY: u32 = 1 << 31;
    /// The record carries no event: padding, or abandoned and marked so by a reclaiming writer.
    pub const DISCARD: u32 = 1 << 30;
    /// Mask of the length bits: the exact record length, header included (the record
    /// occupies it rounded up to a multiple of [`super::RECORD_ALIGN`]).
    pub const LEN_MASK: u32 = (1 << 24) - 1;
    /// Offset of word 1, the position.
    pub const POS: u64 = 8;
}

/// Pack record header word 0.
pub const fn rec_word0(len_flags: u32, kind: u16, writer: u16) -> u64 {
    (len_flags as u64) | ((kind as u64) << 32) | ((writer as u64) << 48)
}
/// Length field of header word 0.
pub const fn rec_len(w0: u64) -> u64 {
    (w0 as u32 & rec::LEN_MASK) as u64
}
/// Flag bits of header word 0.
pub const fn rec_flags(w0: u64) -> u32 {
    w0 as u32 & !rec::LEN_MASK
}
/// Kind field of header word 0.
pub const fn rec_kind(w0: u64) -> u16 {
    (w0 >> 32) as u16
}
/// Writer-slot field of header word 0.
pub const fn rec_writer(w0: u64) -> u16 {
    (w0 >> 48) as u16
}

/// Round `n` up to a multiple of `a` (a power of two).
pub const fn align_up(n: u64, a: u64) -> u64 {
    (n + a - 1) & !(a - 1)
}
