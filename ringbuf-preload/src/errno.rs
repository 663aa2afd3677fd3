//! The calling thread's `errno`, read and restored around every recording.
//!
//! # Invariants
//! - The program sees `errno` exactly as its call left it: whatever the library does on its own
//!   (recording, system calls, cleanup) happens between a save and a restore, through
//!   [`Saved`] (a guard that sets the value back when dropped) or [`preserve`] (the same around
//!   a closure). A hook that records the call's `errno` saves it right after the real call and
//!   reads the value from the guard ([`Saved::get`]).
//! - Only [`set`] with a value of its own (`ENOSYS` for a missing function, the outcome of work
//!   the library performs for the program, as `system` and `popen`) changes what the program
//!   sees, on purpose.

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

/// `errno` as it was when saved ([`Saved::now`]), set back when the guard is dropped: at the
/// end of its scope, on every path out of it. Bind it to a name (`let e = …`, `let _e = …`):
/// `let _ = Saved::now()` would restore at once.
#[must_use = "errno is restored when the guard drops: bind it for the scope to protect"]
pub struct Saved(i32);

impl Saved {
    /// Save the current `errno`.
    #[inline(always)]
    pub fn now() -> Saved {
        Saved(get())
    }

    /// The saved value: the outcome of the call made just before [`Saved::now`].
    #[inline(always)]
    pub fn get(&self) -> i32 {
        self.0
    }
}

impl Drop for Saved {
    #[inline(always)]
    fn drop(&mut self) {
        set(self.0);
    }
}

/// Run `f` (the library's own work) and leave `errno` as it was before.
#[inline(always)]
pub fn preserve<T>(f: impl FnOnce() -> T) -> T {
    let _e = Saved::now();
    f()
}

#[cfg(test)]
mod tests {
    use super::{get, preserve, set, Saved};

    #[test]
    fn saved_errno_comes_back_on_every_path() {
        set(7);
        preserve(|| set(9));
        assert_eq!(get(), 7);
        let early = |out: bool| -> i32 {
            let e = Saved::now();
            set(11);
            if out {
                return e.get();
            }
            set(12);
            e.get() + 1
        };
        assert_eq!(early(true), 7);
        assert_eq!(get(), 7);
        assert_eq!(early(false), 8);
        assert_eq!(get(), 7);
    }
}
