//! Fixed buffers the library writes its own strings into, never on the heap: [`Buf`], a
//! byte string of fixed capacity (in static memory or on the stack), and [`Scratch`], an
//! anonymous mapping used as a bump allocator for one exec or spawn.
//!
//! # Invariants
//! - A [`Buf`] is always NUL-terminated and never grows: what does not fit is cut (and
//!   [`Buf::push`] says so).
//! - A [`Scratch`] is a private anonymous mapping, not the heap: a `vfork` child shares its
//!   parent's heap, and exec may be called from a signal handler. Mapping and unmapping it keep
//!   `errno`; an exec that succeeds discards it with the old image.

use core::ffi::{c_char, CStr};
use core::ptr;

use crate::errno;

/// A fixed-capacity byte string in static memory (always NUL-terminated). All zero bytes are
/// an empty `Buf`: a static one in `.bss` needs no initialising write.
#[repr(C)]
pub struct Buf<const N: usize> {
    len: usize,
    bytes: [u8; N],
}

impl<const N: usize> Default for Buf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Buf<N> {
    /// Empty.
    pub const fn new() -> Self {
        Buf {
            len: 0,
            bytes: [0; N],
        }
    }
    /// Append what fits (one byte is kept for the NUL); false if something was cut.
    pub fn push(&mut self, b: &[u8]) -> bool {
        let n = b.len().min(N - 1 - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        self.bytes[self.len] = 0;
        n == b.len()
    }
    /// The bytes, without the NUL.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
    /// The bytes from `at` on, with the NUL, as a C string (empty if `at` is past the end).
    pub fn c_str_from(&self, at: usize) -> &CStr {
        let at = at.min(self.len);
        CStr::from_bytes_until_nul(&self.bytes[at..=self.len]).unwrap_or(c"")
    }
    /// As a C string.
    pub fn as_ptr(&self) -> *const c_char {
        self.bytes.as_ptr().cast()
    }
    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Mutable access to the whole buffer, for syscalls that fill it; then [`Buf::set_len`].
    pub fn raw(&mut self) -> &mut [u8; N] {
        &mut self.bytes
    }
    /// Set the length after filling with [`Buf::raw`].
    pub fn set_len(&mut self, n: usize) {
        self.len = n.min(N - 1);
        self.bytes[self.len] = 0;
    }
}

/// Where a string appended to: a [`Buf`], or one string being built in a [`Packed`].
pub trait Out {
    /// Append what fits; false if something was cut.
    fn push(&mut self, b: &[u8]) -> bool;
    /// Forget what was appended.
    fn clear(&mut self);
}

impl<const N: usize> Out for Buf<N> {
    fn push(&mut self, b: &[u8]) -> bool {
        Buf::push(self, b)
    }
    fn clear(&mut self) {
        self.set_len(0);
    }
}

/// A string of a [`Packed`]: where it starts and how long it is (all zero: empty).
#[derive(Clone, Copy, Default)]
pub struct PackedStr {
    at: u32,
    len: u32,
}

/// Write-once strings packed one after another (each NUL-terminated) in one fixed buffer in
/// static memory: a process start touches the pages its strings fill, where a [`Buf`] each
/// would touch one page per string. All zero bytes are an empty `Packed`.
#[repr(C)]
pub struct Packed<const N: usize> {
    used: usize,
    bytes: [u8; N],
}

impl<const N: usize> Packed<N> {
    /// Start a string of at most `cap` bytes after the last one.
    pub fn begin(&mut self, cap: usize) -> Packing<'_, N> {
        let at = self.used;
        let cap = cap.min(N.saturating_sub(at + 1));
        Packing {
            p: self,
            at,
            len: 0,
            cap,
        }
    }
    /// The bytes of `s`, without the NUL.
    pub fn get(&self, s: PackedStr) -> &[u8] {
        &self.bytes[s.at as usize..(s.at + s.len) as usize]
    }
    /// `s` as a C string (a static empty one for an empty `s`).
    pub fn c_ptr(&self, s: PackedStr) -> *const c_char {
        if s.len == 0 {
            return c"".as_ptr();
        }
        self.bytes[s.at as usize..].as_ptr().cast()
    }
}

/// One string being appended to a [`Packed`]; [`Packing::finish`] ends it.
pub struct Packing<'a, const N: usize> {
    p: &'a mut Packed<N>,
    at: usize,
    len: usize,
    cap: usize,
}

impl<const N: usize> Packing<'_, N> {
    /// The room left in this string, for a system call to fill; then [`Packing::set_len`].
    pub fn raw(&mut self) -> &mut [u8] {
        &mut self.p.bytes[self.at..self.at + self.cap]
    }
    /// Set the length after filling [`Packing::raw`].
    pub fn set_len(&mut self, n: usize) {
        self.len = n.min(self.cap);
    }
    /// NUL-terminate the string and keep it.
    pub fn finish(self) -> PackedStr {
        let end = self.at + self.len;
        if end < N {
            self.p.bytes[end] = 0;
            self.p.used = end + 1;
        }
        PackedStr {
            at: self.at as u32,
            len: self.len as u32,
        }
    }
    /// The bytes so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.p.bytes[self.at..self.at + self.len]
    }
}

impl<const N: usize> Out for Packing<'_, N> {
    fn push(&mut self, b: &[u8]) -> bool {
        let n = b.len().min(self.cap - self.len);
        let from = self.at + self.len;
        self.p.bytes[from..from + n].copy_from_slice(&b[..n]);
        self.len += n;
        n == b.len()
    }
    fn clear(&mut self) {
        self.len = 0;
    }
}

/// An anonymous private mapping used as a bump allocator for one exec or spawn. Unmapped on
/// drop; an exec that succeeds discards it with the old image.
pub struct Scratch {
    base: *mut u8,
    len: usize,
    used: usize,
}

impl Scratch {
    /// Map `len` bytes (rounded up to pages); `None` if the kernel refuses.
    pub fn new(len: usize) -> Option<Scratch> {
        let len = (len + 4095) & !4095;
        let p = errno::preserve(|| {
            // SAFETY: a fresh anonymous mapping; no existing memory is affected.
            unsafe {
                libc::mmap(
                    ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            }
        });
        (p != libc::MAP_FAILED).then_some(Scratch {
            base: p.cast(),
            len,
            used: 0,
        })
    }

    /// `n` bytes aligned to 8, or `None` when the mapping is used up.
    pub fn alloc(&mut self, n: usize) -> Option<*mut u8> {
        let at = (self.used + 7) & !7;
        if at.checked_add(n)? > self.len {
            return None;
        }
        self.used = at + n;
        // SAFETY: at + n <= len, inside the mapping.
        Some(unsafe { self.base.add(at) })
    }

    /// Copy the concatenation of `parts` plus a NUL into the mapping; returns the C string.
    pub fn cstring(&mut self, parts: &[&[u8]]) -> Option<*const c_char> {
        let n: usize = parts.iter().map(|p| p.len()).sum();
        let dst = self.alloc(n + 1)?;
        let mut at = 0;
        for p in parts {
            // SAFETY: dst has n + 1 bytes; the parts add up to n.
            unsafe { ptr::copy_nonoverlapping(p.as_ptr(), dst.add(at), p.len()) };
            at += p.len();
        }
        // SAFETY: the last byte of the allocation.
        unsafe { *dst.add(n) = 0 };
        Some(dst as *const c_char)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        errno::preserve(|| {
            // SAFETY: our mapping; nothing points into it once the exec or spawn returned.
            unsafe { libc::munmap(self.base.cast(), self.len) };
        });
    }
}
