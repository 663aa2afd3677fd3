//! Process-wide state: the mapped ring, the session's environment strings, the `SHIM_*`
//! values the image was started with, and the current process image (its writer, pid and
//! span).
//!
//! # Invariants
//! - [`Fixed`] is written once by the constructor, before it is published through a release
//!   store of its pointer; it never changes after, so any thread or signal handler that
//!   acquires the pointer reads it without synchronisation.
//! - An [`Image`] is immutable once published through `CURRENT`. A forked child builds a new
//!   image in the other of two static slots and publishes it with one store, so a signal
//!   handler running in the child during the switch sees either the old image or the new one,
//!   whole. Only the child's single thread switches (fork leaves one thread), so the slot being
//!   written is never the one any thread uses.
//! - Nothing here is freed: the ring stays mapped until the process ends or execs.
//! - State only: this module publishes and hands out the state; starting the library, making a
//!   forked child's image and recording starts and ends are [`crate::lifecycle`]'s. It calls
//!   nothing above itself.

use core::cell::UnsafeCell;
use core::ffi::c_char;
use core::mem::MaybeUninit;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU16, Ordering::*};

use format::records::SHIM_VALUE_MAX;
use format::{ids, sys, DropReason, Ring, Writer, WriterIdentity};

use crate::buf::{Buf, Packed, PackedStr};

/// The preload's own variable (name and `=`) carrying the span of the image that starts a
/// child: `SUBSTRATE_PARENT_IMAGE=spn_<uuid>`. Kept in every child's environment like
/// `SUBSTRATE_RING`; the program's own value, if any, is replaced.
pub const PARENT_IMAGE_VAR: &[u8] = b"SUBSTRATE_PARENT_IMAGE=";

/// Room for the `LD_PRELOAD` entry a child gets when its environment has none
/// ([`Fixed::env_preload`]); a longer start value is not restored.
pub const PRELOAD_MAX: usize = 8192;

/// A `SHIM_*` variable as the image received it.
pub struct ShimValue {
    /// The variable was set (possibly empty).
    pub set: bool,
    /// Its value, at most [`SHIM_VALUE_MAX`] bytes.
    pub value: Buf<{ SHIM_VALUE_MAX + 1 }>,
    /// The value was longer and was cut.
    pub cut: bool,
}

impl ShimValue {
    /// Fill an unset value (all zero bytes, as in the unpublished [`Fixed`]) from the value
    /// found in the environment (`None`: unset).
    pub fn fill(&mut self, v: Option<&[u8]>) {
        if let Some(v) = v {
            let (kept, cut) = format::records::shim_value(v);
            self.set = true;
            self.value.push(kept);
            self.cut = cut;
        }
    }
}

/// Room for every string of a [`Fixed`]: the most each may hold, plus their NULs.
const STRINGS_MAX: usize = RING_VAR_MAX + PATH_MAX + PATH_MAX + PRELOAD_MAX + 4;
/// The most `SUBSTRATE_RING=<absolute path>` may hold.
pub const RING_VAR_MAX: usize = 4199;
/// The most a path of [`Fixed`] may hold.
pub const PATH_MAX: usize = 4095;

/// What the constructor learns once and children inherit.
///
/// Filled in place in its static cell, which starts as zero bytes: every field but `ring` is
/// valid as zero bytes (an unset [`ShimValue`], empty strings, a null `argv`), so a start
/// writes only the bytes it sets. The small fields come first and the strings are packed one
/// after another ([`Packed`]), so that a start touches one or two pages of it: each page a
/// process start touches first costs a page fault.
#[repr(C)]
pub struct Fixed {
    /// The session ring, mapped shared.
    pub ring: Ring,
    /// `argv` of the process as passed to the constructor.
    pub argv: *const *const c_char,
    /// `SHIM_PARENT_SPAN` as this image received it (cut at [`SHIM_VALUE_MAX`] bytes), for its
    /// `process_start` records only: children get the variable from the program, untouched.
    pub shim_parent_span: ShimValue,
    /// `SHIM_SESSION_ID` as this image received it, likewise.
    pub shim_session_id: ShimValue,
    /// `/proc/self/exe` at start.
    pub exe: PackedStr,
    /// `SUBSTRATE_RING=<absolute path>` for children.
    pub env_ring: PackedStr,
    /// Path of this library, as the loader found it (for children's `LD_PRELOAD`).
    pub lib_path: PackedStr,
    /// `LD_PRELOAD=<chain>` for a child whose environment has no preload list: the value this
    /// image started with, byte for byte and in its order (this library keeps its place in
    /// it), with this library appended only if it was not in it; `LD_PRELOAD=<this library>`
    /// when there was no value (or one longer than [`PRELOAD_MAX`]). Empty when neither is
    /// known. See [`crate::childenv`].
    pub env_preload: PackedStr,
    /// The bytes of the strings above.
    pub strings: Packed<STRINGS_MAX>,
}

impl Fixed {
    /// The bytes of one of this `Fixed`'s strings.
    pub fn get(&self, s: PackedStr) -> &[u8] {
        self.strings.get(s)
    }
    /// One of this `Fixed`'s strings as a C string.
    pub fn c_ptr(&self, s: PackedStr) -> *const c_char {
        self.strings.c_ptr(s)
    }
}

/// One process image (or forked copy of one).
pub struct Image {
    /// This process's writer; `None` when every slot was taken (records count as dropped).
    pub writer: Option<Writer<'static>>,
    /// Pid, cached: reading it on the recording path would be a syscall.
    pub pid: u32,
    /// The clock records' timestamps come from ([`Ring::clock`] of the ring), read once.
    pub clock: libc::clockid_t,
    /// Span id of this image.
    pub span: [u8; 16],
    /// Span of the image that started it (zeros: none).
    pub parent_image: [u8; 16],
    /// `SUBSTRATE_PARENT_IMAGE=spn_<this span>` for children.
    pub env_parent_image: Buf<64>,
    /// How the process is ending, set by the `exit` hook for the exit handler ([`exit_how`]).
    ///
    /// [`exit_how`]: format::records::exit_how
    pub exit_how: AtomicU16,
    /// The exit record was written.
    pub exit_recorded: AtomicBool,
}

struct StaticCell<T>(UnsafeCell<MaybeUninit<T>>);

// SAFETY: each cell is written only before its pointer is published (see the module
// invariants) and only read afterwards.
unsafe impl<T> Sync for StaticCell<T> {}

impl<T> StaticCell<T> {
    const fn new() -> Self {
        StaticCell(UnsafeCell::new(MaybeUninit::uninit()))
    }
    /// All zero bytes (in `.bss`: no page is touched until written).
    const fn zeroed() -> Self {
        StaticCell(UnsafeCell::new(MaybeUninit::zeroed()))
    }
    fn ptr(&'static self) -> *mut T {
        self.0.get().cast()
    }
}

/// The images and the `Fixed`, together and page-aligned: a start writes the first page (an
/// image, `Fixed`'s small fields and its first strings) and seldom another.
#[repr(C, align(4096))]
struct Cells {
    images: [StaticCell<Image>; 2],
    fixed: StaticCell<Fixed>,
}
static CELLS: Cells = Cells {
    images: [StaticCell::new(), StaticCell::new()],
    fixed: StaticCell::zeroed(),
};

/// The constructor's data; null until the library is active.
static FIXED: AtomicPtr<Fixed> = AtomicPtr::new(ptr::null_mut());
/// The current image; null while inert.
static CURRENT: AtomicPtr<Image> = AtomicPtr::new(ptr::null_mut());

/// The published session, or `None` while the library is inert (no ring, or not started
/// yet). Starts nothing: hooks ask [`crate::lifecycle::active`], which starts the library first
/// when a hook runs before its constructor.
#[inline(always)]
pub fn current() -> Option<(&'static Fixed, &'static Image)> {
    // Acquire pairs with the release store in `publish_image`: the image (and the Fixed it was
    // built after) are fully written.
    let img = CURRENT.load(Acquire);
    if img.is_null() {
        return None;
    }
    // Relaxed: FIXED was stored before CURRENT's release store, which we acquired.
    let fx = FIXED.load(Relaxed);
    // SAFETY: both pointers name static cells written before publication and never changed.
    Some(unsafe { (&*fx, &*img) })
}

/// The constructor's [`Fixed`], unpublished and all zero bytes, to be filled in place: every
/// field but `ring` is valid as it is (see [`Fixed`]); `ring` must be written (`ptr::write`)
/// before [`publish_fixed`].
///
/// # Safety
/// Only the constructor calls this, once, before anything is published; nothing else refers
/// to the cell until [`publish_fixed`].
pub unsafe fn unpublished_fixed() -> *mut Fixed {
    CELLS.fixed.ptr()
}

/// Publish the [`Fixed`] filled in place (once, from the constructor).
///
/// # Safety
/// Called once, by the constructor, after it wrote every field of [`unpublished_fixed`] that
/// is not valid as zero bytes (`ring`), and before any image is published.
pub unsafe fn publish_fixed() -> &'static Fixed {
    let p = CELLS.fixed.ptr();
    FIXED.store(p, Relaxed);
    // SAFETY: fully written (the caller's contract); immutable from now on.
    unsafe { &*p }
}

/// Build a new image in the free slot and publish it. Returns it.
///
/// # Safety
/// Only the constructor or a forked child's single thread may call this.
pub unsafe fn publish_image(img: Image) -> &'static Image {
    let cur = CURRENT.load(Relaxed);
    let cell = if cur == CELLS.images[0].ptr() {
        CELLS.images[1].ptr()
    } else {
        CELLS.images[0].ptr()
    };
    // SAFETY: the cell is not the current image; the image it held (two generations back) is
    // not used by any thread of this process (module invariants). It is overwritten without
    // drop: its writer belonged to an ancestor process and must not detach from here.
    unsafe { cell.write(img) };
    // Release: the image's fields are visible to whoever acquires the pointer.
    CURRENT.store(cell, Release);
    // SAFETY: just written; immutable from now on.
    unsafe { &*cell }
}

/// Make an image for this process: attach a writer and derive the span ids.
pub fn new_image(fx: &'static Fixed, pid: u32, parent_image: [u8; 16]) -> Image {
    // The start time is the clock's bound, not `/proc` (two system calls and a path walk per
    // process); an exec'd image adopts the slot its previous image (`parent_image`, same pid)
    // held.
    let id = WriterIdentity {
        pid,
        start_time: sys::start_time_bound(),
        previous_span: parent_image,
    };
    let writer = Writer::attach_as(&fx.ring, id).ok();
    let span = ids::new_uuid_v7();
    if let Some(w) = &writer {
        w.set_span(&span);
    }
    let mut env_parent_image = Buf::new();
    env_parent_image.push(PARENT_IMAGE_VAR);
    env_parent_image.push(ids::SPAN_PREFIX.as_bytes());
    let mut text = [0u8; ids::UUID_TEXT_LEN];
    ids::format_uuid(&span, &mut text);
    env_parent_image.push(&text);
    Image {
        writer,
        pid,
        clock: fx.ring.clock(),
        span,
        parent_image,
        env_parent_image,
        exit_how: AtomicU16::new(0),
        exit_recorded: AtomicBool::new(false),
    }
}

/// Count a record that could not be written because the process has no writer.
pub fn count_no_slot(fx: &Fixed) {
    fx.ring.count_drop(DropReason::NoSlot);
}
