//! This user's rings: where `record` makes them, and removing those of sessions that are
//! over (`substrate-drain gc`, and `record` at start).
//!
//! Rings live in a directory only this user can use: `$XDG_RUNTIME_DIR` when it is one (owned
//! by the user, mode 0700), else `/dev/shm/substrate-UID` (or the same under the temporary
//! directory), created 0700 and refused if someone else made it. See `docs/PERMISSIONS.md`.
//!
//! A ring there is stale, and removed, when its session is over: its creator (the `record` or
//! `substrate` that made it) is dead, no writer slot holds a live process, and no drain with a
//! live pid follows it. Only files named `substrate-*.ring` that open as rings owned by this
//! user are considered; anything else is left alone.

use std::io;
use std::path::{Path, PathBuf};

use format::{ProcLiveness, Ring};

/// Whether `d` is a directory (not a symlink) owned by this user with mode 0700.
fn private_dir(d: &Path) -> bool {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::symlink_metadata(d).is_ok_and(|m| {
        // SAFETY: geteuid has no preconditions.
        m.is_dir()
            && m.uid() == unsafe { libc::geteuid() }
            && m.permissions().mode() & 0o777 == 0o700
    })
}

/// A directory only this user can use: `$XDG_RUNTIME_DIR` if it is one, else
/// `/dev/shm/substrate-UID` (or the same under the temporary directory), created 0700 and
/// refused if someone else made it.
pub fn private_ring_dir() -> Result<PathBuf, String> {
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        if private_dir(&d) {
            return Ok(d);
        }
    }
    let base = Some(PathBuf::from("/dev/shm"))
        .filter(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    // SAFETY: geteuid has no preconditions.
    let d = base.join(format!("substrate-{}", unsafe { libc::geteuid() }));
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(&d) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("{}: {e}", d.display())),
    }
    if !private_dir(&d) {
        return Err(format!(
            "{} is not a private directory (owned by you, mode 0700); remove it or pass --ring",
            d.display()
        ));
    }
    Ok(d)
}

/// A new, unused ring path in [`private_ring_dir`].
///
/// ```
/// let p = drain::rings::private_ring_path().unwrap();
/// assert!(p.starts_with(drain::rings::private_ring_dir().unwrap()));
/// assert!(p.to_str().unwrap().ends_with(".ring") && !p.exists());
/// ```
pub fn private_ring_path() -> Result<PathBuf, String> {
    let dir = private_ring_dir()?;
    let mut r = [0u8; 8];
    if !format::sys::getrandom(&mut r) {
        r = (format::sys::clock_ns(libc::CLOCK_MONOTONIC) ^ std::process::id() as u64)
            .to_le_bytes();
    }
    Ok(dir.join(format!(
        "substrate-{}-{:016x}.ring",
        std::process::id(),
        u64::from_le_bytes(r)
    )))
}

/// A ring that was removed, or could not be.
#[derive(Debug)]
pub struct Collected {
    /// The ring file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Why it could not be removed.
    pub error: Option<io::Error>,
}

/// Whether the ring at `path` belongs to a session that is over.
pub fn is_stale(path: &Path) -> bool {
    let Ok(ring) = Ring::open_read_only(path) else {
        return false;
    };
    let h = ring.header();
    let live = |pid: u32| pid != 0 && Path::new(&format!("/proc/{pid}")).exists();
    // SAFETY: geteuid has no preconditions.
    h.creator_uid.get() == unsafe { libc::geteuid() }
        && !live(h.creator_pid.get())
        && !live(ring.stats().drain_pid)
        && !ring.any_writer_alive(&ProcLiveness)
}

/// Remove the stale rings of `dir` (see the module docs).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// // Created by this live process: not stale.
/// let live = dir.path().join("substrate-1-a.ring");
/// let _ring = format::Ring::create(&live, &Default::default()).unwrap();
/// assert!(!drain::rings::is_stale(&live));
/// assert!(drain::rings::collect(dir.path()).is_empty());
/// assert!(live.exists());
/// ```
pub fn collect(dir: &Path) -> Vec<Collected> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut out = vec![];
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("substrate-") && name.ends_with(".ring")) {
            continue;
        }
        let path = e.path();
        let Ok(m) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !m.is_file() || !is_stale(&path) {
            continue;
        }
        out.push(Collected {
            bytes: m.len(),
            error: std::fs::remove_file(&path).err(),
            path,
        });
    }
    out
}
