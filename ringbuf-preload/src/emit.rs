//! The recording path: fill an event's common header and write it into the ring.
//!
//! No system call (the clock is read through the vDSO, the thread id is cached), no lock, no
//! allocation: [`event`] claims space in the ring and copies the fixed part and the variable
//! fields in place.

use core::ffi::{c_char, CStr};

use format::records::EventHeader;
use format::{sys, Event};

use crate::guard;
use crate::session::{self, Image};

/// The common header of an event written now by `img`'s process on this thread. Its time is
/// read from the clock the ring's header names ([`Image::clock`], cached when the image was
/// made: wall-clock time in the rings the drain creates), through the vDSO.
#[inline(always)]
pub fn header(img: &Image) -> EventHeader {
    EventHeader {
        ts_ns: sys::clock_ns(img.clock).into(),
        span: img.span,
        pid: img.pid.into(),
        tid: guard::tid().into(),
        ..Default::default()
    }
}

/// Write `fixed` and its var fields. A full ring or a missing writer drops the record (the
/// ring counts it); the program never waits. Returns the record's position if written.
#[inline(always)]
pub fn event<'a, E, I>(img: &Image, fixed: &E, vars: I) -> Option<u64>
where
    E: Event,
    I: Iterator<Item = &'a [u8]> + Clone,
{
    match &img.writer {
        Some(w) => w.write_event(fixed, vars).ok(),
        None => {
            if let Some((fx, _)) = session::active() {
                session::count_no_slot(fx);
            }
            None
        }
    }
}

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
