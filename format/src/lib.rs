//! The session ring: a file-backed, `mmap`'d ring shared by every process of a traced
//! session, and the fixed-width record layouts written into it.
//!
//! # Contract
//! - **Many writers.** Any number of threads in any number of processes write into one ring.
//!   Recording is one CAS and two release stores around an in-place copy: no system call, no
//!   lock, no allocation, async-signal-safe. Writers never wait for the reader or for each
//!   other.
//! - **Crash-proof.** A writer killed at any instruction loses at most the record it was
//!   writing; the reader reports it as lost (by the writer table's liveness, never by a
//!   timeout alone for a record whose header was written) and goes on.
//! - **Full ring.** [`Mode::Discard`] drops the new record and counts it per reason;
//!   [`Mode::Overwrite`] reclaims the oldest block, and the reader learns what it missed.
//! - **Hostile input.** The reader validates the header against the file, bounds every offset,
//!   copies each record once into a buffer of at most one block, and never panics on contents.
//!
//! The file format and protocol are specified in `format/RING.md`.
//!
//! # Example
//! ```
//! use format::{CreateOptions, Item, Reader, ReaderOptions, Ring, Start, Writer};
//! let dir = tempfile::tempdir().unwrap();
//! let ring = Ring::create(&dir.path().join("ring"), &CreateOptions { capacity: 1 << 20, ..Default::default() }).unwrap();
//! let w = Writer::attach(&ring).unwrap();
//! w.write_bytes(format::KIND_USER, b"hello").unwrap();
//! let mut r = Reader::new(&ring, ReaderOptions { start: Start::Oldest, ..Default::default() });
//! match r.poll() {
//!     Item::Record(rec) => assert_eq!(rec.payload, b"hello"),
//!     other => panic!("{other:?}"),
//! }
//! ```
#![deny(missing_docs)]

pub mod elf;
pub mod ids;
pub mod layout;
pub mod mem;
pub mod protocol;
pub mod reader;
pub mod records;
pub mod ring;
pub mod supervise;
pub mod sys;
pub mod writer;

pub use layout::Mode;
pub use protocol::{DropReason, Liveness};
pub use reader::{Item, Loss, LossReason, Reader, ReaderOptions, Record, Start, Waiting};
pub use records::{AnyEvent, Event, EventHeader, Kind, KIND_USER};
pub use ring::{CreateOptions, KillLiveness, ProcLiveness, Ring, RingError, RingStats, WriterInfo};
pub use writer::{AttachError, Reservation, Writer, WriterIdentity};
