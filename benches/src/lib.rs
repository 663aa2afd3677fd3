//! Benchmark programs live in `src/bin/`; this is what they share.

use std::path::PathBuf;

/// A directory for rings in tmpfs (`/dev/shm`, else the default temporary directory), where
/// `substrate-drain record` puts them too: a ring on a disk file system pays for dirty-page
/// writeback on every page, which is not what the benchmarks measure.
pub fn ring_dir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("a temporary directory")
}

/// An artefact of this workspace's release build, next to the running benchmark (`name`, e.g.
/// `substrate-drain`); exits with a hint when it has not been built.
pub fn artefact(name: &str) -> PathBuf {
    let p = std::env::current_exe()
        .expect("the benchmark's own path")
        .with_file_name(name);
    if !p.exists() {
        eprintln!("{name} is missing: build it first (cargo build --release)");
        std::process::exit(2);
    }
    p
}
