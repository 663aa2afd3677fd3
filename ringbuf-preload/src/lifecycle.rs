//! The life of a process image, in one place: its start (the constructor, or the early start
//! from a hook that runs before it), the start of a forked child's image, and its end (the exit
//! handler, `_exit`). Also where a hook asks whether to record ([`active`], [`recording`]),
//! since asking may start the library.
//!
//! **Start.** The constructor maps the ring and records `process_start`. It is the only place
//! the library makes system calls of its own in a process that does not exec or fork: reading
//! `AT_SECURE`, opening and mapping the ring, reading `/proc/self/stat`, `/proc/self/exe`, the
//! working directory, 10 random bytes. With no usable ring it returns before doing anything
//! else and the library stays inert. A hook called by another library's constructor, before
//! this one's, starts the library then (`start_early`); the start runs once either way.
//!
//! **Fork.** A child created by fork (or clone without shared memory) attaches as a new writer,
//! with a new span whose parent is the forking image's, and records its `process_start`
//! ([`after_fork_child`]); a child the library did not see created is noticed at its exec
//! ([`check_pid`]).
//!
//! **End.** `end` records `process_exit` (once per image) and releases the writer slot: from
//! the `on_exit` handler after `exit` or the return from `main`, and from `_exit`/`_Exit`
//! ([`end_now`]). Only the checkpoint for the loaded objects differs between them.
//!
//! # Invariants
//! - Start-up runs once per executed image (`STARTED`), with the guard held and `errno`
//!   restored: the program sees `errno` as it was (0 at `main`). A forked child does not start
//!   up again: it gets its image from `after_fork_child`.
//! - Only the constructor and a forked child's single thread publish an image
//!   ([`session::publish_image`]).
//! - The writer slot is released once, after the image's last record.

use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int, c_void, CStr};
use core::ptr;
use core::sync::atomic::{AtomicU8, Ordering::*};

use format::records::{ev_flags, exit_how, start_flags, ProcessExit, ProcessStart};
use format::{ids, sys, Ring};

use crate::buf::Out;
use crate::cstr::{cstr, CStrs};
use crate::objects::Checkpoint;
use crate::session::{self, Fixed, Image};
use crate::{childenv, emit, errno, guard, objects, proc_info, symbols};

type InitFn = extern "C" fn(c_int, *const *const c_char, *const *const c_char);

/// glibc calls `.init_array` entries with `(argc, argv, envp)`.
#[used]
#[link_section = ".init_array"]
static INIT: InitFn = init;

extern "C" {
    fn on_exit(f: extern "C" fn(c_int, *mut c_void), arg: *mut c_void) -> c_int;
}

/// [`STARTED`] values.
const NOT_STARTED: u8 = 0;
const STARTING: u8 = 1;
const DONE: u8 = 2;

/// Whether start-up has run: by the constructor, or earlier, by the first hook called (from
/// another library's constructor) before it.
static STARTED: AtomicU8 = AtomicU8::new(NOT_STARTED);

/// The active session, or `None` when the library is inert (no ring, or not initialised yet).
/// A hook called before the constructor (by another library's constructor, which ran first)
/// starts the library now, once, so that call is recorded too.
#[inline(always)]
pub fn active() -> Option<(&'static Fixed, &'static Image)> {
    let s = session::current();
    if s.is_none() && STARTED.load(Relaxed) == NOT_STARTED {
        start_early();
        return session::current();
    }
    s
}

/// The preamble of every hook: the session to record into, or `None` when the library is
/// inert ([`active`]) or this thread is already inside a hook ([`guard::busy`]: the outer hook
/// records the call). A hook that gets `None` goes straight to the real function.
#[inline(always)]
pub fn recording() -> Option<(&'static Fixed, &'static Image)> {
    let s = active()?;
    if guard::busy() {
        return None;
    }
    Some(s)
}

/// Claim the one start-up; false if it ran or is running.
fn claim_start() -> bool {
    // AcqRel: one caller wins; the others see DONE only after the winner's stores (release
    // below).
    STARTED
        .compare_exchange(NOT_STARTED, STARTING, AcqRel, Acquire)
        .is_ok()
}

extern "C" fn init(_argc: c_int, argv: *const *const c_char, envp: *const *const c_char) {
    if !claim_start() {
        return;
    }
    // The program must see errno = 0 at main, whatever the start-up did.
    let _e = errno::Saved::now();
    guard::hold(|| {
        // SAFETY: the loader passes the process's argv and envp, NULL-terminated.
        unsafe { start(argv, envp) }
    });
    STARTED.store(DONE, Release);
}

/// argv read from `/proc/self/cmdline` for a start before the constructor (which alone is
/// given argv): up to 32 KiB and 1023 arguments.
struct EarlyArgv {
    text: UnsafeCell<[u8; 32768]>,
    ptrs: UnsafeCell<[*const c_char; 1024]>,
}
// SAFETY: written once by the single early start, before anything reads it.
unsafe impl Sync for EarlyArgv {}
static EARLY_ARGV: EarlyArgv = EarlyArgv {
    text: UnsafeCell::new([0; 32768]),
    ptrs: UnsafeCell::new([core::ptr::null(); 1024]),
};

/// Start now, from a hook that ran before the constructor (another library's constructor
/// called it). The environment is libc's `environ`, already set; argv comes from
/// `/proc/self/cmdline`.
fn start_early() {
    if !claim_start() {
        return;
    }
    let _e = errno::Saved::now();
    guard::hold(|| {
        // SAFETY: we won the claim: nobody else touches EARLY_ARGV.
        let (text, ptrs) = unsafe { (&mut *EARLY_ARGV.text.get(), &mut *EARLY_ARGV.ptrs.get()) };
        let cap = text.len() - 1;
        let n = read_cmdline(&mut text[..cap]);
        let mut k = 0;
        let mut at = 0;
        while at < n && k < ptrs.len() - 1 {
            ptrs[k] = text[at..].as_ptr().cast();
            k += 1;
            at += text[at..n]
                .iter()
                .position(|&b| b == 0)
                .map_or(n - at, |p| p + 1);
        }
        ptrs[k] = core::ptr::null();
        // SAFETY: a NULL-terminated argv of NUL-terminated strings (the buffer's last byte
        // stays 0), and libc's environ.
        unsafe { start(ptrs.as_ptr(), proc_info::environ_now()) }
    });
    STARTED.store(DONE, Release);
}

/// `/proc/self/cmdline` into `buf`; bytes read.
fn read_cmdline(buf: &mut [u8]) -> usize {
    let Ok(fd) = sys::open(c"/proc/self/cmdline", libc::O_RDONLY | libc::O_CLOEXEC, 0) else {
        return 0;
    };
    let mut n = 0;
    while n < buf.len() {
        match sys::read(fd as i32, &mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k as usize,
        }
    }
    sys::close(fd as i32);
    n
}

/// # Safety
/// `argv`, `envp`: NULL-terminated arrays of C strings, valid for the life of the process.
unsafe fn start(argv: *const *const c_char, envp: *const *const c_char) {
    // Recording or not, hooks find their real functions in these tables from now on, without
    // a walk of the loaded objects (and its lock).
    let next = symbols::save_next_objects();
    // SAFETY: getauxval has no preconditions.
    if unsafe { libc::getauxval(libc::AT_SECURE) } != 0 {
        return; // setuid/setgid/capabilities: never write into a file another user chose.
    }
    // SAFETY: envp as the loader gave it.
    let Some(ring_path) = (unsafe { proc_info::env_value(envp, RING_VAR) }) else {
        return;
    };
    if ring_path.is_empty() {
        return;
    }
    // SAFETY: the caller's contract.
    unsafe { start_recording(argv, envp, ring_path, next) }
}

/// The start of a recording image, apart from [`start`]'s checks so that an inert start (no
/// ring) runs in a small stack frame: every page of a frame is touched on entry, and each new
/// page of stack costs a fault.
///
/// # Safety
/// As [`start`]; called once, from it.
#[inline(never)]
unsafe fn start_recording(
    argv: *const *const c_char,
    envp: *const *const c_char,
    ring_path: &[u8],
    next: Option<&'static symbols::NextObjects>,
) {
    if let Some(next) = next {
        objects::init(next);
    }

    // `Fixed` is filled in place, in its static cell: built on the stack and copied, its 20 KiB
    // would touch twice the pages.
    // SAFETY: the constructor, once, before anything is published.
    let p = unsafe { session::unpublished_fixed() };
    // SAFETY: every field but `ring` is valid as the zero bytes the cell holds (`Fixed`'s
    // docs), and nothing else refers to the cell before it is published below.
    let (fx, shim_span, shim_session) = unsafe {
        (
            &mut *ptr::addr_of_mut!((*p).strings),
            &mut *ptr::addr_of_mut!((*p).shim_parent_span),
            &mut *ptr::addr_of_mut!((*p).shim_session_id),
        )
    };

    // Children may run elsewhere: give them an absolute path.
    let mut env_ring = fx.begin(session::RING_VAR_MAX);
    env_ring.push(RING_VAR);
    if ring_path[0] != b'/' {
        push_cwd(&mut env_ring);
        env_ring.push(b"/");
    }
    if !env_ring.push(ring_path) {
        return;
    }
    let env_ring = env_ring.finish();
    let path = &fx.get(env_ring)[RING_VAR.len()..];
    // SAFETY: `path` ends where the packed string's NUL is.
    let path = unsafe { CStr::from_ptr(path.as_ptr().cast()) };
    let Some(ring) = open_ring(path) else {
        return;
    };
    // SAFETY: the unpublished cell (above); `ring` is the field not valid as zero bytes.
    unsafe {
        ptr::addr_of_mut!((*p).ring).write(ring);
        ptr::addr_of_mut!((*p).argv).write(argv);
        ptr::addr_of_mut!((*p).env_ring).write(env_ring);
    }

    // Substrate's variables, recorded as they are (never parsed: they are not ours).
    // SAFETY: envp as above.
    shim_span.fill(unsafe { proc_info::env_value(envp, b"SHIM_PARENT_SPAN=") });
    // SAFETY: envp as above.
    shim_session.fill(unsafe { proc_info::env_value(envp, b"SHIM_SESSION_ID=") });
    // SAFETY: envp as above.
    let parent_image = unsafe { proc_info::env_value(envp, session::PARENT_IMAGE_VAR) }
        .and_then(ids::parse_span)
        .unwrap_or([0; 16]);

    // The preload chain this image started with (the loader uses the last `LD_PRELOAD`), for
    // children whose environment has none.
    // SAFETY: envp as above.
    let start_preload = unsafe { proc_info::env_last(envp, b"LD_PRELOAD=") };
    let mut exe = fx.begin(session::PATH_MAX);
    let n = proc_info::readlink(c"/proc/self/exe", exe.raw()).len();
    exe.set_len(n);
    let exe = exe.finish();
    let lib_name = own_path();
    let mut lib = fx.begin(session::PATH_MAX);
    lib.push(lib_name);
    let lib = lib.finish();
    let mut preload = fx.begin(session::PRELOAD_MAX);
    childenv::preload_entry(&mut preload, start_preload, lib_name);
    let preload = preload.finish();
    // SAFETY: the unpublished cell, as above.
    unsafe {
        ptr::addr_of_mut!((*p).exe).write(exe);
        ptr::addr_of_mut!((*p).lib_path).write(lib);
        ptr::addr_of_mut!((*p).env_preload).write(preload);
    }

    // SAFETY: the constructor, once; `ring` (the one field not valid as zeros) is written.
    let fx = unsafe { session::publish_fixed() };
    let img = session::new_image(fx, sys::getpid(), parent_image);
    // SAFETY: constructor, single publication point of the first image.
    let img: &Image = unsafe { session::publish_image(img) };
    record_start(fx, img, start_flags::EXEC);
    // Every object the loader mapped before the program runs.
    objects::check(img, Checkpoint::Start);
    // SAFETY: registering a handler with no argument; on_exit copies the pair.
    unsafe { on_exit(exit_handler, core::ptr::null_mut()) };
}

/// Open flags of the ring: never through a symlink, close-on-exec; `O_NOCTTY` so that a
/// terminal named as the ring cannot become the controlling terminal of a session leader, and
/// `O_NONBLOCK` so that a FIFO (or a device that waits for a carrier) cannot hold the program's
/// start. The descriptor only ever serves `fstat` and `mmap` of a regular file.
const RING_OPEN_FLAGS: c_int =
    libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;

/// The ring's variable, name and `=`.
const RING_VAR: &[u8] = b"SUBSTRATE_RING=";

/// Append the working directory (a relative ring path, rare: out of [`start_recording`]'s
/// frame).
#[inline(never)]
fn push_cwd(out: &mut impl Out) {
    let mut cwd = [0u8; 4096];
    out.push(proc_info::cwd(&mut cwd));
}

/// Open and map the ring at `path`, closed again at once (the mapping is
/// all the library keeps: no descriptor remains). Anything but a regular file is refused by
/// [`Ring::map_fd`] (`NotAFile`) before it is mapped, and the library stays inert.
fn open_ring(path: &CStr) -> Option<Ring> {
    let fd = sys::open(path, RING_OPEN_FLAGS, 0).ok()? as i32;
    let ring = Ring::map_fd(fd, true);
    sys::close(fd);
    ring.ok()
}

/// This library's file name as the loader knows it.
fn own_path() -> &'static [u8] {
    let name = symbols::own_name();
    if name.is_null() {
        return b"";
    }
    // SAFETY: dlpi_name is a valid C string owned by the loader, for as long as this library
    // is loaded (a preloaded library is never unloaded).
    unsafe { cstr(name) }
}

/// Write this image's `process_start` record.
fn record_start(fx: &Fixed, img: &Image, flags: u32) {
    let mut flags = flags;
    if img.parent_image == [0; 16] {
        flags |= start_flags::ROOT;
    }
    let (span, session) = (&fx.shim_parent_span, &fx.shim_session_id);
    if span.set {
        flags |= start_flags::SHIM_PARENT_SPAN;
    }
    if session.set {
        flags |= start_flags::SHIM_SESSION_ID;
    }
    let mut ev = ProcessStart {
        ev: emit::header(img),
        ppid: sys_getppid().into(),
        start_flags: flags.into(),
        parent_image: img.parent_image,
        start_time: img
            .writer
            .as_ref()
            .map_or(0, |w| w.identity().start_time)
            .into(),
    };
    if span.cut || session.cut {
        ev.ev.flags = ev_flags::TRUNCATED.into();
    }
    let mut cwd = [0u8; 4096];
    let cwd = proc_info::cwd(&mut cwd);
    // SAFETY: argv is the vector the loader passed to the constructor (NULL-terminated).
    let argv = unsafe { CStrs::new(fx.argv) };
    let vars = [
        fx.get(fx.exe),
        cwd,
        span.value.as_bytes(),
        session.value.as_bytes(),
    ]
    .into_iter()
    .chain(argv);
    emit::event(img, &ev, vars);
}

fn sys_getppid() -> u32 {
    // SAFETY: always succeeds.
    unsafe { libc::syscall(libc::SYS_getppid) as u32 }
}

/// In a child created by fork (or clone without shared memory) of a process that was
/// recording: note for the loaded objects whether the parent was single-threaded (`single`,
/// from [`objects::before_fork`]), then attach as a new writer (`attach_child`).
pub fn after_fork_child(single: bool) {
    objects::after_fork_child(single);
    attach_child();
}

/// Attach this child as a new writer with a new span whose parent is the forking image, and
/// record the start.
fn attach_child() {
    let Some((fx, parent)) = active() else {
        return;
    };
    let pid = sys::getpid();
    guard::set_tid(pid);
    let img = session::new_image(fx, pid, parent.span);
    // SAFETY: a forked child has one thread, this one.
    let img = unsafe { session::publish_image(img) };
    record_start(fx, img, start_flags::FORKED);
}

/// Before an exec (which makes system calls anyway): if the pid changed since the image was
/// made, this is a child the library did not see being created (raw `clone3`, `vfork` by
/// syscall); make its image now so the exec is attributed to the right process. Returns
/// whether it did: such a child may share its parent's memory.
pub fn check_pid() -> bool {
    if let Some((_, img)) = active() {
        if sys::getpid() != img.pid {
            attach_child();
            return true;
        }
    }
    false
}

/// Record this image's end (once).
fn record_exit(img: &Image, how: u16, status: c_int) {
    if img.exit_recorded.swap(true, Relaxed) {
        return;
    }
    let ev = ProcessExit {
        ev: emit::header(img),
        how: how.into(),
        reserved: 0.into(),
        status: status.into(),
    };
    emit::event(img, &ev, core::iter::empty());
}

/// The end of this image, however the process ends: the objects loaded since the last
/// checkpoint (read as `at` allows), the `process_exit` record (once), and the writer slot
/// released.
fn end(img: &Image, how: u16, status: c_int, at: Checkpoint) {
    objects::check(img, at);
    record_exit(img, how, status);
    if let Some(w) = &img.writer {
        w.detach();
    }
}

/// `exit` was called: note how the process is ending, for the `on_exit` handler, which records
/// it with the status after the program's own `atexit` handlers have run.
///
/// Asks [`active`] only, not [`recording`]: whether this thread is inside a hook does not
/// matter, the process ends all the same (a signal handler that interrupted a hook may end it).
pub fn exiting() {
    if let Some((_, img)) = active() {
        img.exit_how.store(exit_how::EXIT, Relaxed);
    }
}

/// `_exit` or `_Exit` (`how`) is ending the process now: record the end and release the slot.
///
/// Asks [`active`] only, as [`exiting`] does: the end is recorded even from inside a hook.
pub fn end_now(how: u16, status: c_int) {
    if let Some((_, img)) = active() {
        // `_exit` is async-signal-safe: no loader lock here (objects.rs).
        end(img, how, status, Checkpoint::SignalSafe);
    }
}

/// `on_exit` handler: runs at `exit()` and at return from `main`, with the exit status. It
/// was registered by the constructor, which the loader runs before `__libc_start_main`
/// registers the loader's own destructor pass, so it runs last: after the program's `atexit`
/// handlers and after every library destructor. Recording the end and releasing the writer
/// slot here loses nothing that the process does on its way out.
extern "C" fn exit_handler(status: c_int, _arg: *mut c_void) {
    if let Some((_, img)) = active() {
        let how = match img.exit_how.load(Relaxed) {
            0 => exit_how::RETURN,
            h => h,
        };
        // `exit` is not async-signal-safe: the loader's lock may be taken (objects.rs).
        end(img, how, status, Checkpoint::MayLock);
    }
}
