//! What the library reads about its own process: working directory, executable path,
//! environment variables (the loader's `envp` or libc's current `environ`). Raw system calls
//! only, into caller buffers: the library's own work goes through no hooked function and so
//! produces no records.
//!
//! # Invariants
//! - `errno` is kept ([`errno::preserve`]); nothing is allocated.

use core::ffi::c_char;

use crate::cstr::CStrs;
use crate::errno;

/// The working directory into `buf` (`getcwd` syscall); empty if unknown.
pub fn cwd(buf: &mut [u8]) -> &[u8] {
    let r = errno::preserve(|| {
        // SAFETY: buf is valid for writes of its length.
        unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) }
    });
    if r <= 0 {
        return b"";
    }
    // The syscall returns the length including the NUL.
    &buf[..(r as usize).saturating_sub(1)]
}

/// `readlink(path)` into `buf`; empty if it fails.
pub fn readlink<'a>(path: &core::ffi::CStr, buf: &'a mut [u8]) -> &'a [u8] {
    let r = errno::preserve(|| {
        // SAFETY: valid path and buffer.
        unsafe {
            libc::syscall(
                libc::SYS_readlinkat,
                libc::AT_FDCWD,
                path.as_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        }
    });
    if r <= 0 {
        return b"";
    }
    &buf[..r as usize]
}

extern "C" {
    static environ: *const *const c_char;
}

/// The current environment (libc's `environ`).
pub fn environ_now() -> *const *const c_char {
    // SAFETY: reading the libc global; the program owns its contents.
    unsafe { core::ptr::addr_of!(environ).read() }
}

/// The value of `name` (given as `b"NAME="`) in `envp`, if present.
///
/// # Safety
/// `envp` is NULL or a NULL-terminated array of valid C strings.
pub unsafe fn env_value<'a>(envp: *const *const c_char, name: &[u8]) -> Option<&'a [u8]> {
    // SAFETY: forwarded from the caller.
    unsafe { CStrs::new(envp) }.find_map(|e| e.strip_prefix(name))
}

/// The value of the last `name` (given as `b"NAME="`) in `envp`, if present: the one the
/// dynamic loader uses when a variable appears more than once (`LD_PRELOAD`).
///
/// # Safety
/// `envp` is NULL or a NULL-terminated array of valid C strings.
pub unsafe fn env_last<'a>(envp: *const *const c_char, name: &[u8]) -> Option<&'a [u8]> {
    // SAFETY: forwarded from the caller.
    unsafe { CStrs::new(envp) }
        .filter_map(|e| e.strip_prefix(name))
        .last()
}
