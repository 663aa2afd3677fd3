//! The shared objects of a process image: every object in the dynamic loader's list is
//! recorded once per image (`object_load`), those the loader mapped before the library ran and
//! those `dlopen` added later (Python extension modules, a compiler's codegen backend,
//! plugins), without hooking `dlopen` (see the README's *Limits* for why not) and without a
//! system call on the recording path.
//!
//! The loader's own list is read at **checkpoints**, never in a file or network hook:
//!
//! | checkpoint | how the list is read |
//! |---|---|
//! | image start (constructor, or the early start) | `dl_iterate_phdr` |
//! | `exit` (the `on_exit` handler), before `posix_spawn`, `posix_spawnp`, `system`, `popen` | `dl_iterate_phdr`, skipped at once when its `dlpi_adds`/`dlpi_subs` counters did not move since the last walk |
//! | before `fork`, `vfork`, `_Fork`, `clone` (in the parent), an exec, `_exit`, `_Exit` | the `link_map` list from `_r_debug`, without the loader's lock, only in a single-threaded process |
//!
//! Why two ways. `dl_iterate_phdr` takes the loader's lock (`dl_load_write_lock`, a recursive
//! mutex). The functions of the second row are not async-signal-safe, so a program calling
//! them is not in a signal handler nor in a `vfork` child, and taking that lock there is as
//! safe as the call itself. Those of the third row are async-signal-safe (exec, `_exit`,
//! `fork`) and often called from signal handlers and `vfork`-like children: a handler that
//! interrupted its own thread inside the lock's acquire or release would wait on itself for
//! ever. There the list is walked without the lock, which is safe only when no other thread
//! can change it: the process is single-threaded (`__libc_single_threaded`, glibc 2.32 and
//! later; else one thread in `/proc/self/task`), and `_r_debug.r_state` is `RT_CONSISTENT` (the
//! loader sets `RT_ADD`/`RT_DELETE` before it touches the list and `RT_CONSISTENT` after, so an
//! interrupted `dlopen` of this very thread is seen, and the check is skipped). A
//! multi-threaded process is not walked at those checkpoints.
//!
//! Neither way is used in a child that shares this memory (a raw `vfork` or `clone(CLONE_VM)`
//! child: its pid is not the image's): its records and this table are its parent's.
//! `dl_iterate_phdr` is not used in a forked child of a multi-threaded parent either: glibc
//! resets `dl_load_lock` in the child but not `dl_load_write_lock`, which another thread may
//! have held at the fork.
//!
//! **Once per image.** Each object is recorded once, under a key made of its name (the path
//! the loader opened it by), claimed by compare-and-swap in a static table before the record
//! is written: a checkpoint interrupted by a signal handler that runs another one records
//! nothing twice, and an object unloaded and loaded again is not recorded again. A
//! forked child inherits the table with the memory, so it has its parent image's objects and
//! records only those loaded after the fork (the parent walks the list just before it forks,
//! so that what it loaded until then is its own). An exec starts a new image and a new table.

use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, Ordering::Relaxed};

use format::records::{object_flags, ObjectLoad};
use format::sys;

use crate::cstr::cstr;
use crate::session::Image;
use crate::{emit, errno};

/// Where a check runs, which decides how the loader's list may be read (module docs).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    /// The image's start: every object found is flagged [`object_flags::AT_START`].
    Start,
    /// Inside a function that is not async-signal-safe (`exit`, `posix_spawn`, `system`,
    /// `popen`): the loader's lock may be taken.
    MayLock,
    /// Inside an async-signal-safe function (exec, `fork`, `_exit`): only the lock-free walk,
    /// only in a single-threaded process.
    SignalSafe,
}

/// The public head of glibc's `struct link_map` (`<link.h>`), the debugger interface.
#[repr(C)]
struct LinkMap {
    l_addr: usize,
    l_name: *const c_char,
    l_ld: *const c_void,
    l_next: *const LinkMap,
    l_prev: *const LinkMap,
}

/// `struct r_debug` (`<link.h>`), with `r_next` of `struct r_debug_extended` (glibc 2.35 and
/// later, `r_version` 2: the next namespace's list).
#[repr(C)]
struct RDebug {
    r_version: c_int,
    r_map: *const LinkMap,
    r_brk: usize,
    r_state: c_int,
    r_ldbase: usize,
    r_next: *const RDebug,
}

/// `r_state` when the list is not being changed.
const RT_CONSISTENT: c_int = 0;

/// glibc's `_r_debug` (null: not found, no lock-free walks).
static R_DEBUG: AtomicPtr<RDebug> = AtomicPtr::new(core::ptr::null_mut());
/// glibc's `__libc_single_threaded` (null: an older glibc).
static SINGLE_THREADED: AtomicPtr<c_char> = AtomicPtr::new(core::ptr::null_mut());
/// The vDSO's ELF header (`AT_SYSINFO_EHDR`): its load bias. Not a file: never recorded.
static VDSO: AtomicU64 = AtomicU64::new(0);
/// This image is a forked child of a process that may have had other threads: no
/// `dl_iterate_phdr` (module docs).
static FORKED_FROM_THREADS: AtomicBool = AtomicBool::new(false);
/// `dlpi_adds` and `dlpi_subs` at the end of the last complete `dl_iterate_phdr` walk
/// (`u64::MAX`: none yet). A stale pair only costs a walk: it is compared for equality.
static LAST_ADDS: AtomicU64 = AtomicU64::new(u64::MAX);
static LAST_SUBS: AtomicU64 = AtomicU64::new(u64::MAX);

/// Keys of the objects recorded in this image (0: free). A small table first, one page, that
/// holds the objects of nearly every process; a key whose probe window there is full goes to
/// the large one, whose pages are touched only then. Slots are never freed, so a full window
/// stays full and every lookup follows the same path as the insertion did.
static SMALL: PageTable = PageTable([const { AtomicU64::new(0) }; 512]);
/// One page, page-aligned: the small table touches one page, not two.
#[repr(C, align(4096))]
struct PageTable([AtomicU64; 512]);
static LARGE: [AtomicU64; 8192] = [const { AtomicU64::new(0) }; 8192];
/// Probes per table before giving up on it.
const PROBES: [usize; 2] = [16, 64];
/// Longest list walked without the lock (a bound against a list that a bug made circular).
const MAX_WALK: usize = 1 << 16;

/// Find the loader's `_r_debug` and libc's `__libc_single_threaded` in the objects loaded
/// after this library (the constructor's one walk), and the vDSO.
pub fn init(objects: &crate::symbols::NextObjects) {
    R_DEBUG.store(objects.find(c"_r_debug").cast(), Relaxed);
    SINGLE_THREADED.store(objects.find(c"__libc_single_threaded").cast(), Relaxed);
    // SAFETY: getauxval has no preconditions.
    VDSO.store(unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) }, Relaxed);
}

/// Whether no other thread exists in this process now. Only this thread could create one,
/// and it is here, so a `true` stays true while the caller looks at the loader's list.
pub fn single_threaded() -> bool {
    let p = SINGLE_THREADED.load(Relaxed);
    // SAFETY: libc's `char __libc_single_threaded`, a byte that lives as long as libc, read
    // atomically (alignment 1). glibc sets it false in the thread that creates the first
    // other thread, and true only in a fork child: a true read here is this thread's own state.
    if !p.is_null() && unsafe { &*(p as *const AtomicU8) }.load(Relaxed) != 0 {
        return true;
    }
    // glibc before 2.32, or a process that has had threads: count them. The link count of
    // `/proc/self/task` is 2 plus the number of threads.
    let mut st = core::mem::MaybeUninit::<libc::stat>::uninit();
    let r = errno::preserve(|| {
        // SAFETY: a constant path and a buffer of the right size.
        unsafe {
            libc::syscall(
                libc::SYS_newfstatat,
                libc::AT_FDCWD,
                c"/proc/self/task".as_ptr(),
                st.as_mut_ptr(),
                0,
            )
        }
    });
    // SAFETY: filled by the kernel when it succeeded.
    r == 0 && unsafe { st.assume_init() }.st_nlink == 3
}

/// In the parent, just before a fork-like call: record what this image loaded until now (the
/// child inherits it), and say whether the process is single-threaded, for
/// [`after_fork_child`].
pub fn before_fork(img: &Image) -> bool {
    let _e = errno::Saved::now();
    let single = single_threaded();
    if single && sys::getpid() == img.pid {
        check_single(img, Checkpoint::SignalSafe);
    }
    single
}

/// In a forked child: `single` is what [`before_fork`] said in the parent.
pub fn after_fork_child(single: bool) {
    if !single {
        FORKED_FROM_THREADS.store(true, Relaxed);
    }
}

/// Record the objects of the loader's list not recorded yet in this image, if `at` allows
/// reading the list (module docs).
pub fn check(img: &Image, at: Checkpoint) {
    let _e = errno::Saved::now();
    match at {
        Checkpoint::Start => iterate_phdr(img, object_flags::AT_START),
        // Not in a child that shares this memory: its pid is not the image's.
        _ if sys::getpid() != img.pid => {}
        Checkpoint::MayLock if !FORKED_FROM_THREADS.load(Relaxed) => iterate_phdr(img, 0),
        _ if single_threaded() => check_single(img, at),
        _ => {}
    }
}

/// The lock-free walk, the caller having found the process single-threaded (and, at
/// `MayLock`, `dl_iterate_phdr` not usable): falls back to `dl_iterate_phdr` where allowed
/// when `_r_debug` is unknown.
fn check_single(img: &Image, at: Checkpoint) {
    let r = R_DEBUG.load(Relaxed);
    if !r.is_null() {
        // SAFETY: glibc's `_r_debug`, and the process is single-threaded.
        unsafe { walk_link_maps(img, r) };
    } else if at == Checkpoint::MayLock && !FORKED_FROM_THREADS.load(Relaxed) {
        iterate_phdr(img, 0);
    }
}

/// Walk every namespace's list from `_r_debug` without the loader's lock.
///
/// # Safety
/// `r` is glibc's `_r_debug`, and no other thread of the process exists: only this thread
/// (from code a signal interrupted) can have been changing the lists, which `r_state` tells.
unsafe fn walk_link_maps(img: &Image, mut r: *const RDebug) {
    // Volatile reads: the loader writes these words as plain memory; each is read once, as
    // it is now, and never assumed to stay.
    for _ in 0..16 {
        if r.is_null() {
            return;
        }
        // SAFETY: `r` is `_r_debug` or a namespace's `r_debug_extended` (static data of the
        // loader, never freed).
        let (state, version, mut l) = unsafe {
            (
                core::ptr::read_volatile(&(*r).r_state),
                core::ptr::read_volatile(&(*r).r_version),
                core::ptr::read_volatile(&(*r).r_map),
            )
        };
        if state != RT_CONSISTENT {
            return; // this thread was interrupted in a dlopen or dlclose: the next check sees it
        }
        let mut n = 0;
        while !l.is_null() && n < MAX_WALK {
            // SAFETY: a link_map of a consistent list that no other thread can change (the
            // caller's contract): it stays allocated while this walk runs.
            let (base, name, next) = unsafe {
                (
                    core::ptr::read_volatile(&(*l).l_addr),
                    core::ptr::read_volatile(&(*l).l_name),
                    core::ptr::read_volatile(&(*l).l_next),
                )
            };
            // SAFETY: the loader's name of a loaded object: a C string (or NULL).
            object(img, base as u64, unsafe { cstr(name) }, 0);
            l = next;
            n += 1;
        }
        // `r_next` exists from version 2 on (glibc 2.35: `struct r_debug_extended`).
        r = if version >= 2 {
            // SAFETY: as above; version 2 has the member.
            unsafe { core::ptr::read_volatile(&(*r).r_next) }
        } else {
            core::ptr::null()
        };
    }
}

/// What a `dl_iterate_phdr` walk carries.
struct Walk<'a> {
    img: &'a Image,
    flags: u32,
    first: bool,
    counters: (u64, u64),
}

unsafe extern "C" fn visit(info: *mut libc::dl_phdr_info, size: usize, data: *mut c_void) -> c_int {
    // SAFETY: `data` is the Walk of `iterate_phdr`; `info` is valid for this call.
    let (w, info) = unsafe { (&mut *(data as *mut Walk), &*info) };
    if w.first {
        w.first = false;
        // The counters exist when the loader passes a struct that reaches them (glibc 2.4+).
        if size >= core::mem::offset_of!(libc::dl_phdr_info, dlpi_tls_modid) {
            w.counters = (info.dlpi_adds, info.dlpi_subs);
            if w.counters == (LAST_ADDS.load(Relaxed), LAST_SUBS.load(Relaxed)) {
                return 1; // nothing loaded or unloaded since the last walk
            }
        }
    }
    // SAFETY: the loader's name of a loaded object: a C string (or NULL).
    let name = unsafe { cstr(info.dlpi_name) };
    object(w.img, info.dlpi_addr, name, w.flags);
    0
}

/// Walk the list with `dl_iterate_phdr` (the loader's lock held).
fn iterate_phdr(img: &Image, flags: u32) {
    let mut w = Walk {
        img,
        flags,
        first: true,
        counters: (u64::MAX, u64::MAX),
    };
    // SAFETY: the callback reads only what the loader passes and writes `w`.
    unsafe { libc::dl_iterate_phdr(Some(visit), &mut w as *mut Walk as *mut c_void) };
    if w.counters != (u64::MAX, u64::MAX) {
        LAST_ADDS.store(w.counters.0, Relaxed);
        LAST_SUBS.store(w.counters.1, Relaxed);
    }
}

/// One object of the list: recorded unless it is the program or the vDSO, or was recorded in
/// this image already.
fn object(img: &Image, base: u64, name: &[u8], flags: u32) {
    // The program itself has an empty name (its `process_start` names it); the vDSO is mapped
    // by the kernel from no file.
    let vdso_base = VDSO.load(Relaxed);
    let vdso = (vdso_base != 0 && base == vdso_base)
        || (name.starts_with(b"linux-") && !name.contains(&b'/'));
    if name.is_empty() || vdso || !claim(key(name)) {
        return;
    }
    let ev = ObjectLoad {
        ev: emit::header(img),
        base: base.into(),
        flags: flags.into(),
        reserved: 0.into(),
    };
    emit::event(img, &ev, core::iter::once(name));
}

/// A non-zero key for an object: FNV-1a (64 bits) of its name.
fn key(name: &[u8]) -> u64 {
    let h = name.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    h.max(1)
}

/// Claim `key` in the table: true if it was not there (the caller records the object), false
/// if it was, or if both tables are full around it (the object is then not recorded).
fn claim(key: u64) -> bool {
    for (table, probes) in [(&SMALL.0[..], PROBES[0]), (&LARGE[..], PROBES[1])] {
        let mask = table.len() - 1;
        let mut i = key as usize & mask;
        for _ in 0..probes {
            // Look before the compare-and-swap: a locked instruction writes even when it
            // fails, and in a forked child (which inherits the table) that write would copy
            // the page. Relaxed: the table orders nothing else; a slot's value is all that
            // matters, and compare_exchange makes one claimer win.
            match table[i].load(Relaxed) {
                0 => {}
                k if k == key => return false,
                _ => {
                    i = (i + 1) & mask;
                    continue;
                }
            }
            match table[i].compare_exchange(0, key, Relaxed, Relaxed) {
                Ok(_) => return true,
                Err(k) if k == key => return false,
                Err(_) => i = (i + 1) & mask,
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::{claim, key};

    #[test]
    fn a_key_is_claimed_once_and_keys_differ_by_name() {
        let a = key(b"/lib/libm.so.6");
        assert_ne!(a, key(b"/lib/libz.so.1"));
        assert_ne!(key(b""), 0);
        assert!(claim(a));
        assert!(!claim(a));
        // Many more than the small table holds: each once, then none again.
        let keys: Vec<u64> = (0..3000u64)
            .map(|i| key(format!("/lib/x{i}.so").as_bytes()))
            .collect();
        let first: Vec<bool> = keys.iter().map(|&k| claim(k)).collect();
        assert!(
            first.iter().filter(|&&c| c).count() > 2900,
            "nearly all fit"
        );
        assert!(keys.iter().all(|&k| !claim(k)), "and none is claimed twice");
    }
}
