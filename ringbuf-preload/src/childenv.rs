//! The environment every child gets: the program's `envp` with the preload's own variables set.
//!
//! For each exec or spawn the library builds a new `envp` that keeps every entry of the
//! program's, in order and byte for byte, except the preload's own variables, then adds
//! `SUBSTRATE_RING`, `SUBSTRATE_PARENT_IMAGE=spn_<this image's span>` (how the child's
//! `process_start` names the image that started it) and an `LD_PRELOAD` that contains this
//! library:
//! - when the program's `envp` has a preload list (an `LD_PRELOAD` naming at least one
//!   library), that list: as it is when it names this library, else with the library appended
//!   (every library keeps its place);
//! - when it has none (the program unset `LD_PRELOAD`, set it empty, cleared its environment
//!   with `env -i` or `clearenv`, or passed an `envp` without it), the chain this image started
//!   with ([`preload_entry`], captured by the constructor into static memory): byte for byte,
//!   in its order, separators included, so that every library of it — fakeroot, a sanitizer
//!   runtime, a sandbox — is loaded into the child again at the same position, this one
//!   included. A library that insists on its place (a sanitizer runtime that aborts unless it
//!   is loaded first) therefore finds the place it had, instead of being dropped or pushed
//!   behind this one; this library is appended at the end only if the start value did not
//!   name it. With no start value (or one longer than [`PRELOAD_MAX`]), the library alone.
//!
//! `SHIM_SESSION_ID`, `SHIM_PARENT_SPAN` and every other `SHIM_*` variable belong to
//! substrate: they pass through exactly as the program set, kept or removed them (set, absent,
//! malformed or `ses_`-prefixed alike). The library never adds, removes or rewrites one; it only
//! records, at each image's start, the values that image received.
//!
//! The array and the new strings live in a [`Scratch`] mapping, never on the heap: a `vfork`
//! child shares its parent's heap, and exec may be called from a signal handler.
//!
//! # Invariants
//! - The program's `envp` is read, never written; every entry kept is the program's own
//!   pointer, every new one points into the [`Scratch`] or into the image's static state.

use core::ffi::c_char;
use core::ptr;

use crate::buf::{Out, Scratch};
use crate::cstr::{cstr, CStrs};
use crate::proc_info;
use crate::session::{self, Fixed, Image};

/// Bytes of scratch a child environment built from `envp` needs, plus `extra` for the caller.
///
/// # Safety
/// `envp` is NULL or a NULL-terminated array of valid C strings.
pub unsafe fn scratch_size(fx: &Fixed, envp: *const *const c_char, extra: usize) -> usize {
    // SAFETY: forwarded.
    let n = unsafe { CStrs::new(envp) }.count();
    // SAFETY: forwarded.
    let preload = unsafe { proc_info::env_value(envp, b"LD_PRELOAD=") }.map_or(0, |v| v.len());
    (n + 8) * 8 + preload + fx.get(fx.lib_path).len() + 64 + extra
}

/// The preload's own variables: the program's entries for them are replaced by this image's.
const OUR_VARS: [&[u8]; 2] = [b"SUBSTRATE_RING=", session::PARENT_IMAGE_VAR];

/// Build the child's environment in `s`. `None` if the scratch is too small (the caller then
/// passes the program's `envp` unchanged).
///
/// # Safety
/// `envp` is NULL or a NULL-terminated array of valid C strings.
pub unsafe fn build(
    s: &mut Scratch,
    fx: &Fixed,
    img: &Image,
    envp: *const *const c_char,
) -> Option<*const *const c_char> {
    // SAFETY: forwarded.
    let n = unsafe { CStrs::new(envp) }.count();
    let arr = s.alloc((n + 4) * 8)? as *mut *const c_char;
    let mut k = 0;
    let mut push = |p: *const c_char| {
        // SAFETY: at most n + 3 entries are pushed (the program's, the ring, the parent image,
        // LD_PRELOAD), plus the terminator: n + 4.
        unsafe { *arr.add(k) = p };
        k += 1;
    };
    let mut preload: Option<&[u8]> = None;
    let mut preload_entry: *const c_char = ptr::null();
    let mut i = 0;
    while !envp.is_null() {
        // SAFETY: i stays within the NULL-terminated array.
        let e = unsafe { *envp.add(i) };
        if e.is_null() {
            break;
        }
        i += 1;
        // SAFETY: a valid C string of the array.
        let b = unsafe { cstr(e) };
        if let Some(v) = b.strip_prefix(b"LD_PRELOAD=") {
            if preload.is_none() {
                preload = Some(v);
                preload_entry = e;
            }
            continue;
        }
        if !OUR_VARS.iter().any(|v| b.starts_with(v)) {
            push(e);
        }
    }
    push(fx.c_ptr(fx.env_ring));
    push(img.env_parent_image.as_ptr());
    let lib = fx.get(fx.lib_path);
    match preload {
        // The program's own list: kept, this library appended when it is not in it.
        Some(v) if lists_some(v) => {
            if lib.is_empty() || names_library(v, lib) {
                push(preload_entry)
            } else {
                push(s.cstring(&[b"LD_PRELOAD=", v, b":", lib])?)
            }
        }
        // None (unset, cleared, empty): the chain this image started with (static memory).
        _ if !fx.get(fx.env_preload).is_empty() => push(fx.c_ptr(fx.env_preload)),
        Some(_) => push(preload_entry),
        None => {}
    }
    push(ptr::null());
    Some(arr as *const *const c_char)
}

/// Write into `out` the `LD_PRELOAD` entry a child gets when its environment has no preload
/// list ([`Fixed::env_preload`]): `LD_PRELOAD=` and `start`, the value this image started with,
/// unchanged, plus `:` and `lib` if `start` does not name this library; `LD_PRELOAD=<lib>`
/// when `start` lists nothing or does not fit; empty when `lib` is unknown too. Called once,
/// by the constructor.
pub fn preload_entry(out: &mut impl Out, start: Option<&[u8]>, lib: &[u8]) {
    out.clear();
    if let Some(v) = start.filter(|v| lists_some(v)) {
        let mut fits = out.push(b"LD_PRELOAD=") && out.push(v);
        if fits && !lib.is_empty() && !names_library(v, lib) {
            fits = out.push(b":") && out.push(lib);
        }
        if fits {
            return;
        }
        out.clear();
    }
    if !lib.is_empty() {
        out.push(b"LD_PRELOAD=");
        out.push(lib);
    }
}

/// Whether an `LD_PRELOAD` value names at least one library (the loader splits it at spaces
/// and colons; `""`, `":"` or `" "` name none, like an unset variable).
fn lists_some(value: &[u8]) -> bool {
    value
        .split(|&c| c == b':' || c == b' ')
        .any(|t| !t.is_empty())
}

/// Whether an `LD_PRELOAD` value (separated by spaces or colons) already names this library:
/// the same path, or a path with the same file name.
fn names_library(value: &[u8], lib: &[u8]) -> bool {
    let base = |p: &[u8]| -> usize { p.iter().rposition(|&c| c == b'/').map_or(0, |i| i + 1) };
    let lib_name = &lib[base(lib)..];
    value
        .split(|&c| c == b':' || c == b' ')
        .filter(|t| !t.is_empty())
        .any(|t| t == lib || (!lib_name.is_empty() && &t[base(t)..] == lib_name))
}

#[cfg(test)]
mod tests {
    use super::{lists_some, names_library, preload_entry};
    use crate::buf::Buf;
    use crate::session::PRELOAD_MAX;

    fn entry(start: Option<&[u8]>, lib: &[u8]) -> Vec<u8> {
        let mut b = Buf::<PRELOAD_MAX>::new();
        preload_entry(&mut b, start, lib);
        b.as_bytes().to_vec()
    }

    #[test]
    fn a_cleared_preload_list_gets_the_start_chain_in_its_order() {
        let lib = b"/x/libringbuf_preload.so";
        // This library in the middle: everything keeps its place, separators too.
        assert_eq!(
            entry(Some(b"/a/liba.so /x/libringbuf_preload.so:/b/libb.so"), lib),
            b"LD_PRELOAD=/a/liba.so /x/libringbuf_preload.so:/b/libb.so"
        );
        // Named by another path with the same file name: still this library, kept as named.
        assert_eq!(
            entry(Some(b"liba.so:./libringbuf_preload.so"), lib),
            b"LD_PRELOAD=liba.so:./libringbuf_preload.so"
        );
        // Not in the chain: appended, so the others keep their positions.
        assert_eq!(
            entry(Some(b"/a/liba.so"), lib),
            b"LD_PRELOAD=/a/liba.so:/x/libringbuf_preload.so"
        );
        // No chain, an empty one, one too long: the library alone.
        for start in [None, Some(&b""[..]), Some(&b" : "[..])] {
            assert_eq!(entry(start, lib), b"LD_PRELOAD=/x/libringbuf_preload.so");
        }
        let long = vec![b'a'; PRELOAD_MAX];
        assert_eq!(
            entry(Some(&long), lib),
            b"LD_PRELOAD=/x/libringbuf_preload.so"
        );
        // Own name unknown: the chain as it was, or nothing.
        assert_eq!(entry(Some(b"/a/liba.so"), b""), b"LD_PRELOAD=/a/liba.so");
        assert_eq!(entry(None, b""), b"");
    }

    #[test]
    fn only_a_value_with_a_library_in_it_is_a_list() {
        assert!(!lists_some(b""));
        assert!(!lists_some(b"::  :"));
        assert!(lists_some(b": a.so"));
    }

    #[test]
    fn preload_lists_are_matched_by_path_or_file_name() {
        let lib = b"/x/target/release/libringbuf_preload.so";
        assert!(names_library(
            b"/x/target/release/libringbuf_preload.so",
            lib
        ));
        assert!(names_library(b"libother.so:/y/libringbuf_preload.so", lib));
        assert!(names_library(b"a.so  libringbuf_preload.so", lib));
        assert!(!names_library(b"libother.so", lib));
        assert!(!names_library(b"", lib));
    }
}
