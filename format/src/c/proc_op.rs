// The codes of `format::records::proc_op`. Shared with C: this file is one `c_consts!` invocation
// (`NAME = value` entries, docs allowed), included twice: by `records.rs`, where the macro makes
// each entry a `pub const`, and by `ringbuf-preload/build.rs`, which writes each entry as
// `#define SUBSTRATE_PROC_OP_NAME value` into the header the C shim includes. Plain `//`
// comments only up here: the build script includes the file as an expression.
c_consts! {
    u16;
    /// `execve`.
    EXECVE = 1,
    /// `execv`.
    EXECV = 2,
    /// `execvp`.
    EXECVP = 3,
    /// `execvpe`.
    EXECVPE = 4,
    /// `execl`.
    EXECL = 5,
    /// `execlp`.
    EXECLP = 6,
    /// `execle`.
    EXECLE = 7,
    /// `fexecve`.
    FEXECVE = 8,
    /// `execveat`.
    EXECVEAT = 9,
    /// `posix_spawn`.
    POSIX_SPAWN = 20,
    /// `posix_spawnp`.
    POSIX_SPAWNP = 21,
    /// `system`.
    SYSTEM = 22,
    /// `popen`.
    POPEN = 23,
    /// `fork`.
    FORK = 30,
    /// `vfork` (forwarded as fork).
    VFORK = 31,
    /// `clone` of a process.
    CLONE = 32,
    /// `clone3` of a process.
    CLONE3 = 33,
}
