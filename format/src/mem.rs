//! Access to ring memory that other processes write concurrently.
//!
//! The protocol ([`crate::protocol`]) is written once against the [`Mem`] trait. Three
//! implementations exist: [`MapMem`], raw pointers into a `MAP_SHARED` mapping (what every real
//! writer and reader uses); [`HeapMem`], a `MapMem` over heap memory of this process, for tests
//! without a file (and under Miri); and, under `cfg(loom)`, a model whose words are loom
//! atomics, so the very same protocol code is model-checked.
//!
//! Invariants:
//! - No `&[u8]`/`&mut [u8]` is ever formed over ring memory: every access is atomic, through
//!   `AtomicU64` views of raw pointers; bulk bytes are copied into or out of private memory a
//!   word at a time with relaxed loads and stores. A reader's copy of a record that a writer
//!   rewrites meanwhile (overwrite mode: a torn copy, detected and dropped) is then a race of
//!   atomics, not the undefined behaviour of a plain copy racing a store (which Miri reported,
//!   `format/tests/protocol_in_memory.rs`), and the seqlock's fences synchronise as RING.md §6
//!   says they do.
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
    /// Copy `src` to `off`. The caller owns these bytes and the rest of the 8-byte words they
    /// touch (it reserved them); a reader may copy them before the caller's release store that
    /// commits them only to throw the copy away (a torn copy in overwrite mode).
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
    /// `base` must be valid for reads and writes of `len` bytes, 8-aligned, `len` a multiple
    /// of 8, for as long as the view or any copy of it is used, and only ever accessed as this
    /// module does.
    pub unsafe fn new(base: *mut u8, len: u64) -> MapMem {
        debug_assert_eq!(base as usize % 8, 0);
        debug_assert_eq!(len % 8, 0);
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
        // Relaxed atomic stores, word by word: a reader copying a record that an overwriting
        // writer reuses meanwhile (a torn copy, detected and dropped) then races atomically,
        // as the seqlock argument of RING.md §6 needs, instead of racing plain bytes.
        // Relaxed: the commit's release store (and the release fence before the stamp)
        // orders these.
        if off.is_multiple_of(8) {
            // The common case: whole words, then the tail (the rest of its word is ours).
            let mut w = WordWriter::new(self, off);
            w.put(src);
            w.finish();
            return;
        }
        for_words(off, src.len(), |w, at, n, i| {
            let word = self.word(w);
            let v = if n == 8 {
                u64::from_ne_bytes(src[i..i + 8].try_into().expect("8 bytes"))
            } else {
                // Part of a word: the rest of it is ours too (a record occupies whole words
                // of its reservation, and nobody else stores into a reservation's payload).
                let mut b = word.load(Ordering::Relaxed).to_ne_bytes();
                b[at..at + n].copy_from_slice(&src[i..i + n]);
                u64::from_ne_bytes(b)
            };
            word.store(v, Ordering::Relaxed);
        });
    }

    #[inline(always)]
    fn read_bytes(&self, off: u64, dst: &mut [u8]) {
        debug_assert!(off + dst.len() as u64 <= self.len);
        // Relaxed atomic loads, word by word: the source may change under us (a hostile or
        // overwriting writer); we copy it once, and the caller validates the copy (after an
        // acquire fence, RING.md §4) before using it.
        if off.is_multiple_of(8) {
            // The common case (records start on words): whole words, then the tail.
            let mut chunks = dst.chunks_exact_mut(8);
            let mut w = off;
            for c in &mut chunks {
                c.copy_from_slice(&self.word(w).load(Ordering::Relaxed).to_ne_bytes());
                w += 8;
            }
            let tail = chunks.into_remainder();
            if !tail.is_empty() {
                let b = self.word(w).load(Ordering::Relaxed).to_ne_bytes();
                tail.copy_from_slice(&b[..tail.len()]);
            }
            return;
        }
        for_words(off, dst.len(), |w, at, n, i| {
            let b = self.word(w).load(Ordering::Relaxed).to_ne_bytes();
            dst[i..i + n].copy_from_slice(&b[at..at + n]);
        });
    }
}

/// Bytes written in order from a word-aligned offset into memory the writer owns to the end
/// of its last word (a reservation: its length is rounded up to 8), stored a whole word at a
/// time with relaxed stores, so that no partial word is read back and merged. The recording
/// path's copy ([`crate::writer::Writer::write_event`]); ordered by the commit's release store.
pub struct WordWriter<'m, M: Mem> {
    mem: &'m M,
    /// Offset of the next word to store.
    off: u64,
    /// Bytes of the word being filled.
    buf: [u8; 8],
    fill: usize,
}

impl<'m, M: Mem> WordWriter<'m, M> {
    /// Start at `off` (8-aligned).
    #[inline(always)]
    pub fn new(mem: &'m M, off: u64) -> Self {
        debug_assert_eq!(off % 8, 0);
        WordWriter {
            mem,
            off,
            buf: [0; 8],
            fill: 0,
        }
    }

    #[inline(always)]
    fn store_buf(&mut self) {
        self.mem
            .store(self.off, u64::from_ne_bytes(self.buf), Ordering::Relaxed);
        self.off += 8;
        self.buf = [0; 8];
        self.fill = 0;
    }

    /// Append `src`.
    #[inline(always)]
    pub fn put(&mut self, mut src: &[u8]) {
        if self.fill != 0 {
            let n = (8 - self.fill).min(src.len());
            self.buf[self.fill..self.fill + n].copy_from_slice(&src[..n]);
            self.fill += n;
            src = &src[n..];
            if self.fill < 8 {
                return;
            }
            self.store_buf();
        }
        let mut chunks = src.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mem
                .store(self.off, u64::from_ne_bytes(w), Ordering::Relaxed);
            self.off += 8;
        }
        let rest = chunks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.fill = rest.len();
    }

    /// Store the last, partial word (zero-filled).
    #[inline(always)]
    pub fn finish(mut self) {
        if self.fill != 0 {
            self.store_buf();
        }
    }
}

/// Walk the bytes `[off, off + len)` word by word: `f(word offset, first byte in the word,
/// bytes in the word, index of that first byte in the range)`. Whole words where the range
/// covers them, parts at its ends.
#[inline(always)]
fn for_words(off: u64, len: usize, mut f: impl FnMut(u64, usize, usize, usize)) {
    let mut i = 0;
    while i < len {
        let at = off + i as u64;
        let w = at & !7;
        let o = (at - w) as usize;
        let n = (8 - o).min(len - i);
        f(w, o, n, i);
        i += n;
    }
}

impl<M: Mem + ?Sized> Mem for &M {
    #[inline(always)]
    fn load(&self, off: u64, order: Ordering) -> u64 {
        (**self).load(off, order)
    }
    #[inline(always)]
    fn store(&self, off: u64, val: u64, order: Ordering) {
        (**self).store(off, val, order)
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
        (**self).cas(off, cur, new, success, failure)
    }
    #[inline(always)]
    fn add(&self, off: u64, val: u64, order: Ordering) -> u64 {
        (**self).add(off, val, order)
    }
    #[inline(always)]
    fn write_bytes(&self, off: u64, src: &[u8]) {
        (**self).write_bytes(off, src)
    }
    #[inline(always)]
    fn read_bytes(&self, off: u64, dst: &mut [u8]) {
        (**self).read_bytes(off, dst)
    }
}

/// Ring memory on the heap, zeroed, shared by the threads of one process: the protocol without
/// a file or a mapping, for tests (those in `format/tests/protocol_in_memory.rs` run under
/// Miri over it). Every access goes through a [`MapMem`] view of it, so what Miri checks is
/// the `unsafe` code real rings run: `MapMem`'s raw-pointer atomics and copies.
///
/// ```
/// use core::sync::atomic::Ordering::*;
/// use format::mem::{HeapMem, Mem};
/// let m = HeapMem::new(64);
/// m.store(8, 7, Release);
/// m.write_bytes(20, b"abc");
/// let mut b = [0u8; 8];
/// m.read_bytes(16, &mut b);
/// assert_eq!((m.load(8, Acquire), b), (7, [0, 0, 0, 0, b'a', b'b', b'c', 0]));
/// ```
pub struct HeapMem {
    /// The memory, as words: 8-aligned, and `UnsafeCell`s underneath (inside `AtomicU64`), so
    /// stores through a pointer derived from a shared reference are allowed.
    words: Box<[core::sync::atomic::AtomicU64]>,
}

impl HeapMem {
    /// `len` bytes of zeroed memory (rounded up to a multiple of 8).
    pub fn new(len: u64) -> HeapMem {
        HeapMem {
            words: (0..len.div_ceil(8))
                .map(|_| core::sync::atomic::AtomicU64::new(0))
                .collect(),
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.words.len() as u64 * 8
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// A view for one access; it does not outlive `&self`.
    #[inline(always)]
    fn view(&self) -> MapMem {
        // SAFETY: the words are valid for reads and writes of `len()` bytes for as long as
        // `self` lives, which outlasts the view (dropped at the end of the access that made
        // it); a boxed slice of `AtomicU64` is 8-aligned; and the bytes sit in `UnsafeCell`s,
        // so writing them through this pointer, derived from a shared reference, is allowed.
        // They are only ever accessed as `MapMem` does.
        unsafe { MapMem::new(self.words.as_ptr().cast_mut().cast(), self.len()) }
    }
}

impl Mem for HeapMem {
    #[inline(always)]
    fn load(&self, off: u64, order: Ordering) -> u64 {
        self.view().load(off, order)
    }
    #[inline(always)]
    fn store(&self, off: u64, val: u64, order: Ordering) {
        self.view().store(off, val, order)
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
        self.view().cas(off, cur, new, success, failure)
    }
    #[inline(always)]
    fn add(&self, off: u64, val: u64, order: Ordering) -> u64 {
        self.view().add(off, val, order)
    }
    #[inline(always)]
    fn write_bytes(&self, off: u64, src: &[u8]) {
        self.view().write_bytes(off, src)
    }
    #[inline(always)]
    fn read_bytes(&self, off: u64, dst: &mut [u8]) {
        self.view().read_bytes(off, dst)
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
