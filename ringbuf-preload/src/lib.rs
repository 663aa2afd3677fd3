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
//! - System calls of its own happen only at process start ([`lifecycle`]), in a forked child
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
//! The modules form layers, and **a module uses only modules of lower layers**: never one of
//! its own layer nor one above. Dependencies run one way, from the hooks down to the leaf
//! helpers, so each module can be read (and its invariants checked) knowing only what is below
//! it. `tests/layering.rs` reads this table and checks every `crate::` path in `src/` (and
//! `super::` in `src/hooks/`) against it; a new module gets a row here.
//!
//! | layer | modules | what |
//! |---|---|---|
//! | 0 | `errno`, `guard`, `cstr`, `symbols` | leaf helpers: `errno` saved and restored, per-thread state (re-entrancy guard, thread id), the program's C strings, finding the real functions |
//! | 1 | `buf`, `real`, `readable`, `proc_info` | fixed buffers (`Buf`, the `Scratch` mapping), the real functions, which of the program's pointers may be read, what the library reads about its own process |
//! | 2 | `session` | process-wide state only: the published ring, start values and current image |
//! | 3 | `emit` | the recording path |
//! | 4 | `childenv`, `target`, `objects`, `supervisor` | environment of children, will a child be traced, the shared objects of each image, asking the supervisor to follow a static child |
//! | 5 | `lifecycle` | start (constructor, early start), a forked child's image, end (exit handler, `_exit`); whether a hook records ([`lifecycle::recording`]) |
//! | 6 | `hooks`, `hooks::exec`, `hooks::file`, `hooks::fork`, `hooks::meta`, `hooks::net`, `hooks::spawn` | the interposed functions, one file per family |
//! | 7 | `variadic` | the exported variadic names, jumping to `c/shim.c`, which calls the hooks |

pub mod buf;
pub mod childenv;
pub mod cstr;
pub mod emit;
pub mod errno;
pub mod guard;
pub mod hooks;
pub mod lifecycle;
pub mod objects;
pub mod proc_info;
pub mod readable;
pub mod real;
pub mod session;
pub mod supervisor;
pub mod symbols;
pub mod target;
pub mod variadic;
