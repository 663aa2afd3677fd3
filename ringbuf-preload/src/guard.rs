//! Per-thread state: the re-entrancy guard and the cached thread id.
//!
//! Both live in one `thread_local!` of a type without `Drop`, initialised by a constant, so
//! the Rust runtime registers no TLS destructor and never allocates for it. A library loaded by
//! `LD_PRELOAD` gets its TLS in the static TLS block, so access allocates nothing either.
//!
//! The guard is held while the library calls a real function that may itself call exported,
//! hooked functions (`fopen` in another libc, `system` running `posix_spawn`): those inner
//! calls are performed without a record, so a call is recorded once, by its outermost hook.

use core::cell::Cell;

struct ThreadState {
    busy: Cell<bool>,
    tid: Cell<u32>,
}

thread_local! {
    static STATE: ThreadState = const {
        ThreadState { busy: Cell::new(false), tid: Cell::new(0) }
    };
}

/// Whether this thread is inside a hook that holds the guard.
#[inline(always)]
pub fn busy() -> bool {
    STATE.with(|s| s.busy.get())
}

/// Hold the guard while `f` runs (re-entrant: an inner hold keeps the outer one).
#[inline(always)]
pub fn hold<T>(f: impl FnOnce() -> T) -> T {
    let was = STATE.with(|s| s.busy.replace(true));
    let r = f();
    STATE.with(|s| s.busy.set(was));
    r
}

/// This thread's id: one `gettid` per thread, cached.
#[inline(always)]
pub fn tid() -> u32 {
    STATE.with(|s| {
        let t = s.tid.get();
        if t != 0 {
            return t;
        }
        let t = format::sys::gettid();
        s.tid.set(t);
        t
    })
}

/// After fork the one thread of the child is the thread that forked; its id is the child's pid.
pub fn set_tid(tid: u32) {
    STATE.with(|s| s.tid.set(tid));
}
