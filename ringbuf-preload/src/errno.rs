//! The calling thread's `errno`, read and restored around every recording.

/// Current `errno`.
#[inline(always)]
pub fn get() -> i32 {
    // SAFETY: __errno_location returns this thread's errno, valid for the thread's life.
    unsafe { *libc::__errno_location() }
}

/// Set `errno`.
#[inline(always)]
pub fn set(e: i32) {
    // SAFETY: as in `get`.
    unsafe { *libc::__errno_location() = e }
}
