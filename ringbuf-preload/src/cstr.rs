//! C strings of the program, read in place: [`cstr`] (one string) and [`CStrs`] (a
//! NULL-terminated `char *[]`, as `argv` or `envp`).
//!
//! # Invariants
//! - Nothing is copied or allocated: the slices borrow the program's memory, for a lifetime the
//!   caller vouches for (`unsafe` constructors).
//! - Nothing here checks that the memory is readable: callers pass strings the kernel or libc
//!   has shown readable, or that [`crate::readable`] checked.

use core::ffi::{c_char, CStr};

/// The bytes of a C string (empty for NULL).
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string that outlives `'a`.
#[inline(always)]
pub unsafe fn cstr<'a>(p: *const c_char) -> &'a [u8] {
    if p.is_null() {
        b""
    } else {
        // SAFETY: the caller guarantees a valid C string.
        unsafe { CStr::from_ptr(p) }.to_bytes()
    }
}

/// The strings of a NULL-terminated `char *[]` (argv), walked without allocating. Cloning is
/// cheap, as [`format::Writer::write_event`] walks the fields twice.
#[derive(Clone)]
pub struct CStrs<'a> {
    p: *const *const c_char,
    _life: core::marker::PhantomData<&'a [u8]>,
}

impl CStrs<'_> {
    /// Walk `p` (NULL: no strings).
    ///
    /// # Safety
    /// `p` is NULL or a NULL-terminated array of valid C strings that outlive the iterator.
    pub unsafe fn new(p: *const *const c_char) -> Self {
        CStrs {
            p,
            _life: core::marker::PhantomData,
        }
    }
}

impl<'a> Iterator for CStrs<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.p.is_null() {
            return None;
        }
        // SAFETY: `p` points into a NULL-terminated array (constructor contract).
        let s = unsafe { *self.p };
        if s.is_null() {
            self.p = core::ptr::null();
            return None;
        }
        // SAFETY: not the terminator, so the next element exists.
        self.p = unsafe { self.p.add(1) };
        // SAFETY: each element is a valid C string.
        Some(unsafe { cstr(s) })
    }
}
