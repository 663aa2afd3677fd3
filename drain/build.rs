//! With the `embed-preload` feature (the default): build the preload library
//! (`libringbuf_preload.so`, crate `ringbuf-preload`) with a nested
//! `cargo build --release -p ringbuf-preload`, and write `OUT_DIR/embedded_preload.rs`, which
//! `include_bytes!`s it with its length and a 64-bit FNV-1a hash of its bytes. `record` writes
//! it to a private cache when no library is found on disk (`src/preload.rs`), so a binary
//! installed alone (`cargo install --path drain`, or copied) still traces.
//!
//! The nested build has its own target directory under `OUT_DIR` (it never waits for the outer
//! build's lock), shares the outer build's jobserver (`CARGO_MAKEFLAGS`), and is scrubbed of
//! the variables the outer cargo sets for this script or for its own wrappers. It builds
//! without debug information (about 0.7 MB instead of 5.5 MB). If it fails, so does this
//! script: a `substrate-drain` built with the feature always carries the library.

use std::path::{Path, PathBuf};
use std::process::Command;

/// 64-bit FNV-1a.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Whether the outer cargo's variable `k` must not reach the nested cargo: the variables set
/// for build scripts (they describe this package and this script's run, and some — `TARGET`,
/// `OPT_LEVEL`, `CARGO_CFG_*` — steer the `cc` crate in the preload's own build script), the
/// outer target directory, and compiler wrappers (`cargo clippy` sets
/// `RUSTC_WORKSPACE_WRAPPER`: the nested build would lint instead of only compiling).
/// `CARGO_MAKEFLAGS` stays: the nested cargo takes its jobs from the same jobserver.
fn scrub(k: &str) -> bool {
    const EXACT: &[&str] = &[
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_ENCODED_RUSTDOCFLAGS",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_RUSTC_CURRENT_DIR",
        "CARGO_BUILD_RUSTC_WRAPPER",
        "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CLIPPY_CONF_DIR",
        "OUT_DIR",
        "TARGET",
        "HOST",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
        "RUSTC_LINKER",
        "RUSTDOC",
    ];
    const PREFIX: &[&str] = &[
        "CARGO_PKG_",
        "CARGO_CFG_",
        "CARGO_FEATURE_",
        "DEP_",
        "__CARGO_",
    ];
    EXACT.contains(&k) || PREFIX.iter().any(|p| k.starts_with(p))
}

/// Stop the build with `msg` (shown by cargo with this script's stderr), without a panic's
/// backtrace.
fn fail(msg: String) -> ! {
    eprintln!("error: embed-preload: {msg}");
    std::process::exit(1)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_EMBED_PRELOAD").is_none() {
        return;
    }
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir
        .parent()
        .expect("drain/ is in the workspace")
        .to_path_buf();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let target = std::env::var("TARGET").unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for p in [
        "ringbuf-preload/Cargo.toml",
        "ringbuf-preload/build.rs",
        "ringbuf-preload/src",
        "format/Cargo.toml",
        "format/src",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_NET_OFFLINE");

    let manifest = root.join("Cargo.toml");
    let target_dir = out.join("preload-target");
    let mut c = Command::new(&cargo);
    c.args(["build", "--release", "--locked", "-p", "ringbuf-preload"])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .args(["--target", &target]);
    if std::env::var_os("CARGO_NET_OFFLINE").is_some_and(|v| v != "false" && v != "0") {
        c.arg("--offline");
    }
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(scrub) {
            c.env_remove(&k);
        }
    }
    c.env("CARGO_PROFILE_RELEASE_DEBUG", "0")
        // Nothing on this script's stdout, which cargo reads for `cargo:` lines: the nested
        // build's output goes to stderr, shown by cargo if this script fails.
        .stdout(std::io::stderr())
        .current_dir(&root);
    let status = c.status().unwrap_or_else(|e| {
        fail(format!(
            "could not run `{}` for the nested build of ringbuf-preload: {e}",
            Path::new(&cargo).display()
        ))
    });
    if !status.success() {
        fail(format!(
            "the nested `cargo build --release -p ringbuf-preload --manifest-path {}` failed ({status}); \
             its output is above. substrate-drain embeds the preload library by default: fix the \
             preload's build, or build without it (`--no-default-features`; `record` then needs \
             libringbuf_preload.so on disk)",
            manifest.display()
        ));
    }
    let built = target_dir
        .join(&target)
        .join("release")
        .join("libringbuf_preload.so");
    let bytes = std::fs::read(&built).unwrap_or_else(|e| {
        fail(format!(
            "the nested build succeeded but {} cannot be read: {e}",
            built.display()
        ))
    });
    if !bytes.starts_with(b"\x7fELF") {
        fail(format!("{} is not an ELF library", built.display()));
    }
    // A copy of its own, so the embedded file is exactly the one hashed here.
    let lib = out.join("libringbuf_preload.so");
    std::fs::write(&lib, &bytes).expect("write the embedded library into OUT_DIR");
    let rs = format!(
        "/// The preload library, built by `build.rs`.\n\
         pub const BYTES: &[u8] = include_bytes!({lib:?});\n\
         /// Its length in bytes.\n\
         pub const LEN: usize = {len};\n\
         /// The 64-bit FNV-1a hash of its bytes.\n\
         pub const HASH: u64 = {hash:#018x};\n",
        lib = lib.to_str().expect("OUT_DIR is UTF-8"),
        len = bytes.len(),
        hash = fnv1a64(&bytes),
    );
    std::fs::write(out.join("embedded_preload.rs"), rs).expect("write embedded_preload.rs");
}
