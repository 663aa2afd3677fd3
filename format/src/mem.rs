//! Access to ring memory that other processes write concurrently.
//!
//! The protocol ([`crate::protocol`]) is written once against the [`Mem`] trait. Two
//! implementations exist: [`MapMem`], raw pointers into a `MAP_SHARED` mapping (what every real
//! writer and reader uses), and, under `cfg(loom)`, a model whose words are loom atomics, so the
//! very same protocol code is model-checked.
//!
//! Invariants:
//! - No `&[u8]`/`&mut [u8]` is ever formed over ring memory: words are read and written through
//!   `AtomicU64` views of raw pointers, bulk bytes with `ptr::copy_nonoverlapping` into or out of
//!   private memory.
//! - Every offset passed in is derived from a validated [`crate::protocol::Geometry`] and is in
//!   bounds; 64-bit word offsets are 8-aligned. Implementations `debug_assert!` both.

use core::sync::atomic::Ordering;

/// Word and byte access to a shared region. Offsets are bytes from the region's start.
pub trait Mem {
    /// Atomic load of the 8-aligned word at `off`.
    fn load(&self, off: u64, order: Ordering) -> u64;
    /// Atomic store to the 8-aligned word at `off`.
    fn store(&self, off: u64, val: u64, order: Ordering);
    /// Atomic compare-and-swap of the word at `off`; `Err` carries the value found.
    fn cas(
        &self,
        off: u64,
        cur: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64>;
    /// Atomic add on the word at `off`, returning the previous value.
    fn add(&self, off: u64, val: u64, order: Ordering) -> u64;
    /// Copy `src` to `off`. The caller owns these bytes (it reserved them); nobody reads them
    /// before the caller's release store that commits them.
    fn write_bytes(&self, off: u64, src: &[u8]);
    /// Copy bytes at `off` into private memory. Other processes may be writing them; the caller
    /// validates the copy afterwards and never re-reads the shared bytes.
    fn read_bytes(&self, off: u64, dst: &mut [u8]);
}

/// A `MAP_SHARED` region seen through a raw pointer. `Copy`: it is a view, the mapping is owned
/// elsewhere ([`crate::ring::Ring`]) and outlives every view.
#[derive(Clone, Copy, Debug)]
pub struct MapMem {
    base: *mut u8,
    len: u64,
}

// SAFETY: MapMem only touches the region through atomics and bounded copies, which are valid
// from any thread; the region itself is shared between processes by design.
unsafe impl Send for MapMem {}
// SAFETY: as above; no method hands out references into the region.
unsafe impl Sync for MapMem {}

impl MapMem {
    /// A view of `len` bytes at `base`.
    ///
    /// # Safety
    /// `base` must be valid for reads and writes of `len` bytes, 8-aligned, for as long as the
    /// view or any copy of it is used, and only ever accessed as this module does.
    pub unsafe fn new(base: *mut u8, len: u64) -> MapMem {
        debug_assert_eq!(base as usize % 8, 0);
        MapMem { base, len }
    }

    #[inline(always)]
    fn word(&self, off: u64) -> &core::sync::atomic::AtomicU64 {
        debug_assert!(
            off.is_multiple_of(8) && off + 8 <= self.len,
            "word offset {off} out of bounds"
        );
        // SAFETY: `off` is in bounds and 8-aligned (callers derive offsets from a validated
        // geometry; checked in debug builds), the mapping outlives `self` (constructor
        // contract), and the word is only accessed atomically by every party of the protocol.
        unsafe { core::sync::atomic::AtomicU64::from_ptr(self.base.add(off as usize).cast()) }
    }
}

impl Mem for MapMem {
    #[inline(always)]
    fn load(&self, off: u64, order: Ordering) -> u64 {
        self.word(off).load(order)
    }

    #[inline(always)]
    fn store(&self, off: u64, val: u64, order: Ordering) {
        self.word(off).store(val, order)
    }

    #[inline(always)]
    fn cas(
        &self,
        off: u64,
        cur: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64> {
        self.word(off).compare_exchange(cur, new, success, failure)
    }

    #[inline(always)]
    fn add(&self, off: u64, val: u64, order: Ordering) -> u64 {
        self.word(off).fetch_add(val, order)
    }

    #[inline(always)]
    fn write_bytes(&self, off: u64, src: &[u8]) {
        debug_assert!(off + src.len() as u64 <= self.len);
        // SAFETY: in bounds (as above); the destination bytes belong to the caller's
        // reservation, so no other writer stores to them, and readers only load them after the
        // commit's release store; `src` is private memory, so the ranges cannot overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(src.as_ptr(), self.base.add(off as usize), src.len())
        }
    }

    #[inline(always)]
    fn read_bytes(&self, off: u64, dst: &mut [u8]) {
        debug_assert!(off + dst.len() as u64 <= self.len);
        // SAFETY: in bounds (as above); `dst` is private. The source may change under us (a
        // hostile or overwriting writer): we copy it once, as plain bytes that every bit
        // pattern is valid for, and the caller validates the copy before using it.
        unsafe {
            core::ptr::copy_nonoverlapping(self.base.add(off as usize), dst.as_mut_ptr(), dst.len())
        }
    }
}

/// A loom model of ring memory: every 8-byte word is a loom atomic, so loom explores the
/// orderings of the real protocol code. Bulk copies go word by word with relaxed accesses, so a
/// missing release/acquire pair shows up as a reader seeing stale payload.
#[cfg(loom)]
pub mod model {
    use super::Mem;
    use core::sync::atomic::Ordering;
    use loom::sync::atomic::AtomicU64;
    use loom::sync::Arc;

    /// Shared model memory.
    #[derive(Clone)]
    pub struct LoomMem {
        words: Arc<Vec<AtomicU64>>,
    }

    impl LoomMem {
        /// `len` bytes (a multiple of 8) of zeroed memory.
        pub fn new(len: u64) -> LoomMem {
            LoomMem {
                words: Arc::new((0..len / 8).map(|_| AtomicU64::new(0)).collect()),
            }
        }
        fn w(&self, off: u64) -> &AtomicU64 {
            assert!(off.is_multiple_of(8));
            &self.words[(off / 8) as usize]
        }
    }

    impl Mem for LoomMem {
        fn load(&self, off: u64, order: Ordering) -> u64 {
            self.w(off).load(order)
        }
        fn store(&self, off: u64, val: u64, order: Ordering) {
            self.w(off).store(val, order)
        }
        fn cas(&self, off: u64, cur: u64, new: u64, s: Ordering, f: Ordering) -> Result<u64, u64> {
            self.w(off).compare_exchange(cur, new, s, f)
        }
        fn add(&self, off: u64, val: u64, order: Ordering) -> u64 {
            self.w(off).fetch_add(val, order)
        }
        fn write_bytes(&self, off: u64, src: &[u8]) {
            assert!(
                off.is_multiple_of(8) && src.len().is_multiple_of(8),
                "model copies whole words"
            );
            for (i, chunk) in src.chunks_exact(8).enumerate() {
                let v = u64::from_le_bytes(chunk.try_into().unwrap());
                self.w(off + 8 * i as u64).store(v, Ordering::Relaxed);
            }
        }
        fn read_bytes(&self, off: u64, dst: &mut [u8]) {
            assert!(
                off.is_multiple_of(8) && dst.len().is_multiple_of(8),
                "model copies whole words"
            );
            for (i, chunk) in dst.chunks_exact_mut(8).enumerate() {
                chunk.copy_from_slice(
                    &self
                        .w(off + 8 * i as u64)
                        .load(Ordering::Relaxed)
                        .to_le_bytes(),
                );
            }
        }
    }
}
