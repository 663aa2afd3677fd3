// Which function the C shim's `open` entry point was called as: the `sym` argument of
// `substrate_open_hook` (`src/hooks/file.rs`). This file is one `c_consts!` invocation, included
// twice: by `src/hooks/file.rs`, where `format::c_consts!` makes each entry a `pub const`, and by
// `build.rs`, which writes each entry as `#define SUBSTRATE_OPEN_SYM_NAME value` into the header
// `shim.c` includes. Plain `//` comments only up here: the build script includes the file as an
// expression.
c_consts! {
    core::ffi::c_int;
    /// `open`.
    OPEN = 1,
    /// `open64`.
    OPEN64 = 2,
    /// `openat`.
    OPENAT = 3,
    /// `openat64`.
    OPENAT64 = 4,
}
