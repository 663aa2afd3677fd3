//! `libringbuf_preload.so`: the `LD_PRELOAD` library that records what a process tree does —
//! every program started, file opened or changed, connection made — into the session ring.
//!
//! # Contract with the traced program
//! - Same results, same `errno`, same output as without the library, in every thread, in
//!   signal handlers and in forked children.
//! - The recording path makes no system call, takes no lock and allocates nothing: a hook calls
//!   the real function, reads the vDSO clock, and copies one record into the shared mapping
//!   ([`emit`]). A full ring drops and counts; the program never waits.
//! - No descriptor stays open (the ring is a mapping), no thread is started.
//! - System calls of its own happen only at process start ([`start`]), in a forked child
//!   (attaching as a writer), around exec/spawn (building the child's environment,
//!   inspecting the target) and at the checkpoints where the loaded objects are looked at
//!   ([`objects`]: fork, exec, spawn, exit), each of which is a system call already.
//! - No hook reads memory the program passed before the kernel (or the function) has shown it
//!   readable: a pointer the kernel refuses (`EFAULT`) is never read, and exec/spawn arguments
//!   are checked before they are read ([`readable`]).
//! - With no usable ring (unset, missing, foreign, corrupt) or in secure-execution mode the
//!   library is inert: every hook goes straight to the real function.
//!
//! # Layout
//! `start` (constructor, exit, destructor), `session` (process-wide state), `emit` (the
//! recording path), `objects` (the shared objects of each image), `childenv` (environment of
//! children), `target` (will a child be traced?),
//! `readable` (which of the program's pointers may be read), `real` (the real functions),
//! `guard` (per-thread state), `hooks/*` (one file per family of functions), `c/shim.c` (the
//! variadic entry points).

pub mod childenv;
pub mod emit;
pub mod errno;
pub mod guard;
pub mod hooks;
pub mod objects;
pub mod proc_info;
pub mod readable;
pub mod real;
pub mod session;
pub mod start;
pub mod supervisor;
pub mod symbols;
pub mod target;
pub mod variadic;
