//! Which preload library (`libringbuf_preload.so`) `record` runs commands with, and
//! `--print-preload-path`.
//!
//! Lookup, first match wins:
//! 1. `--preload PATH`, else `$SUBSTRATE_PRELOAD`: the only candidate when given (a missing
//!    file is an error, never replaced by another library);
//! 2. next to this program (a build tree, or a copied pair);
//! 3. `../lib/substrate/`, then `../lib/`, from this program (an installed layout);
//! 4. the library embedded in this program (cargo feature `embed-preload`, the default; built
//!    by `build.rs`), written to a private cache: `$XDG_CACHE_HOME/substrate/` (an absolute
//!    one), else `$HOME/.cache/substrate/`, else the private ring directory
//!    ([`drain::rings::private_ring_dir`]).
//!
//! The cache keeps these invariants:
//! - Its directory is a directory (not a symlink), owned by the effective uid, writable by it
//!   alone (created 0700), in parents owned by the effective uid or root that others cannot
//!   change (not group- or other-writable unless sticky). One that exists and is not is an error naming it, never used; one
//!   that cannot be created or written (a read-only home), is on a `noexec` file system (the
//!   loader could not map the library), or whose path holds a space or `:` (`LD_PRELOAD`
//!   separators), is passed over for the next.
//! - The library is `libringbuf_preload-<16 hex digits of its FNV-1a hash>.so`, so builds with
//!   different libraries never share a name. It appears only whole: written to a new file
//!   (`O_EXCL`) in the same directory, then renamed over the name. A `record` running
//!   concurrently, or a traced program loading it, sees the old file or the new one.
//! - A file already there is used only if it is a regular file (a symlink is not followed),
//!   owned by the effective uid, writable by it alone, and byte for byte the embedded library;
//!   anything else is replaced, by the same rename (a symlink's target is never touched).
//! - Files are never removed: libraries of other builds stay (a `record` of that build may be
//!   using one).

use std::fs;
use std::path::{Path, PathBuf};

/// The library's file name on disk.
pub const NAME: &str = "libringbuf_preload.so";

/// The library `record` uses.
pub struct Found {
    /// Its path (absolute): what `LD_PRELOAD` names.
    pub path: PathBuf,
    /// How it was found, for `--print-preload-path`: `found next to substrate-drain`,
    /// `embedded in substrate-drain, written to the cache DIR`, ….
    pub how: String,
}

/// `$SUBSTRATE_PRELOAD`, unless unset or empty.
fn env_preload() -> Option<PathBuf> {
    std::env::var_os("SUBSTRATE_PRELOAD")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// The on-disk candidates, in order, and how each is named in `--print-preload-path`:
/// `--preload` or `$SUBSTRATE_PRELOAD` alone when given; else next to this program,
/// `../lib/substrate/` and `../lib/` from it.
pub fn preload_candidates(explicit: Option<&Path>) -> Vec<(PathBuf, &'static str)> {
    if let Some(p) = explicit {
        return vec![(p.to_path_buf(), "--preload")];
    }
    if let Some(p) = env_preload() {
        return vec![(p, "$SUBSTRATE_PRELOAD")];
    }
    let mut c = vec![];
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| fs::canonicalize(e).ok())
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        c.push((dir.join(NAME), "next to substrate-drain"));
        c.push((dir.join("../lib/substrate").join(NAME), "../lib/substrate"));
        c.push((dir.join("../lib").join(NAME), "../lib"));
    }
    c
}

/// The preload library `record` uses (see the module docs for the order).
pub fn find_preload(explicit: Option<&Path>) -> Result<Found, String> {
    let candidates = preload_candidates(explicit);
    for (p, how) in &candidates {
        if p.is_file() {
            return fs::canonicalize(p)
                .map(|path| Found {
                    path,
                    how: format!("found {how}"),
                })
                .map_err(|e| format!("{}: {e}", p.display()));
        }
    }
    let pinned = explicit.is_some() || env_preload().is_some();
    #[cfg(feature = "embed-preload")]
    if !pinned {
        return embedded::write_to_cache();
    }
    let tried: Vec<String> = candidates
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    Err(if pinned {
        let (p, how) = &candidates[0];
        format!("preload library {} ({how}) not found", p.display())
    } else {
        format!(
            "preload library not found (tried {}; this substrate-drain was built without the \
             embed-preload feature); build it with `cargo build --release`, or pass --preload \
             or set SUBSTRATE_PRELOAD",
            tried.join(", ")
        )
    })
}

/// The library `build.rs` embedded.
#[cfg(feature = "embed-preload")]
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_preload.rs"));
    const _: () = assert!(BYTES.len() == LEN);

    /// Write it to the cache (or find it there).
    pub fn write_to_cache() -> Result<super::Found, String> {
        let (path, how) = super::cache::cache(BYTES, HASH)?;
        Ok(super::Found {
            how: format!(
                "embedded in substrate-drain, {how} the cache {}",
                path.parent().unwrap_or(&path).display()
            ),
            path,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_embedded_library_is_whole_and_named_by_its_hash() {
            assert!(BYTES.starts_with(b"\x7fELF"));
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for &b in BYTES {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            assert_eq!(h, HASH);
        }
    }
}

/// The cache the embedded library is written to (see the module docs).
#[cfg(feature = "embed-preload")]
mod cache {
    use std::fs::{self, File, OpenOptions};
    use std::io::{Read, Write};
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
    use std::path::{Path, PathBuf};

    /// Why a cache directory was not used.
    enum Skip {
        /// It exists and is not private: an error, never passed over.
        Unsafe(String),
        /// It cannot be used here (not creatable, not writable, `noexec`): try the next.
        Unusable(String),
    }

    /// The effective uid.
    fn euid() -> u32 {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() }
    }

    /// The cache directories to try, in order: `$XDG_CACHE_HOME/substrate` (an absolute one),
    /// else `$HOME/.cache/substrate`; the private ring directory is tried after them.
    fn cache_dirs() -> Vec<PathBuf> {
        let abs = |v: &str| {
            std::env::var_os(v)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        if let Some(x) = abs("XDG_CACHE_HOME") {
            return vec![x.join("substrate")];
        }
        abs("HOME")
            .map(|h| h.join(".cache/substrate"))
            .into_iter()
            .collect()
    }

    /// Write `bytes` to the first usable cache directory (or find them there): the library's path
    /// and `written to` or `already in`.
    pub fn cache(bytes: &[u8], hash: u64) -> Result<(PathBuf, &'static str), String> {
        let mut passed = vec![];
        let mut try_dir = |d: &Path| match usable_dir(d).and_then(|()| place(d, bytes, hash)) {
            Ok(r) => Some(Ok(r)),
            Err(Skip::Unsafe(e)) => Some(Err(e)),
            Err(Skip::Unusable(e)) => {
                passed.push(e);
                None
            }
        };
        for d in cache_dirs() {
            if let Some(r) = try_dir(&d) {
                return r;
            }
        }
        // Only now: it creates the directory.
        match drain::rings::private_ring_dir() {
            Ok(d) => {
                if let Some(r) = try_dir(&d) {
                    return r;
                }
            }
            Err(e) => passed.push(e),
        }
        Err(format!(
            "no directory to write the embedded preload library to ({}); pass --preload or set \
             SUBSTRATE_PRELOAD",
            passed.join("; ")
        ))
    }

    /// Create `d` (mode 0700, with its parents) if need be, and check it: see the module docs.
    fn usable_dir(d: &Path) -> Result<(), Skip> {
        let s = d.as_os_str().as_encoded_bytes();
        if s.contains(&b' ') || s.contains(&b':') {
            return Err(Skip::Unusable(format!(
                "{}: LD_PRELOAD cannot name a path with a space or `:`",
                d.display()
            )));
        }
        if let Err(e) = fs::DirBuilder::new().recursive(true).mode(0o700).create(d) {
            return Err(Skip::Unusable(format!("{}: {e}", d.display())));
        }
        let m =
            fs::symlink_metadata(d).map_err(|e| Skip::Unusable(format!("{}: {e}", d.display())))?;
        let mode = m.mode() & 0o7777;
        if !m.is_dir() || m.uid() != euid() || mode & 0o022 != 0 {
            let what = if !m.is_dir() {
                "not a directory (a symlink?)".to_string()
            } else if m.uid() != euid() {
                format!("owned by uid {}, not you", m.uid())
            } else {
                format!("writable by others: mode {mode:04o}")
            };
            return Err(Skip::Unsafe(format!(
                "the preload cache {} is not private ({what}); remove it or `chmod 700` it, or pass \
                 --preload",
                d.display()
            )));
        }
        // Its parents too (as ssh's StrictModes): one that someone else could rename or
        // replace entries in would let them swap the cache for their own, and `LD_PRELOAD`
        // is looked up by name at every exec of the run.
        if let Some(p) = d.ancestors().skip(1).find(|p| !safe_parent(p)) {
            return Err(Skip::Unsafe(format!(
                "the preload cache {} is in {}, which others can change (not owned by you or \
                 root, or writable by others without the sticky bit); pass --preload or set \
                 XDG_CACHE_HOME",
                d.display(),
                p.display()
            )));
        }
        if noexec(d) {
            return Err(Skip::Unusable(format!(
                "{}: on a noexec file system",
                d.display()
            )));
        }
        Ok(())
    }

    /// Whether a parent of the cache is safe: owned by root or by us, and not writable by
    /// group or others unless sticky (`/tmp`). A symlink is followed (its target is checked);
    /// one that cannot be read is unsafe.
    fn safe_parent(p: &Path) -> bool {
        if p.as_os_str().is_empty() {
            return true;
        }
        fs::metadata(p).is_ok_and(|m| {
            let mode = m.mode();
            (m.uid() == 0 || m.uid() == euid()) && (mode & 0o022 == 0 || mode & libc::S_ISVTX != 0)
        })
    }

    /// Whether `d` is on a file system mounted `noexec` (where the loader cannot map a library).
    fn noexec(d: &Path) -> bool {
        let Ok(c) = std::ffi::CString::new(d.as_os_str().as_encoded_bytes()) else {
            return false;
        };
        // SAFETY: statvfs is plain data, valid for writes.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a NUL-terminated path, `st` valid for writes.
        unsafe { libc::statvfs(c.as_ptr(), &mut st) == 0 && st.f_flag & libc::ST_NOEXEC != 0 }
    }

    /// The library's path in `d`, written there unless it already holds exactly `bytes`.
    fn place(d: &Path, bytes: &[u8], hash: u64) -> Result<(PathBuf, &'static str), Skip> {
        let name = format!("libringbuf_preload-{hash:016x}.so");
        let path = d.join(&name);
        if holds(&path, bytes) {
            return Ok((path, "already in"));
        }
        let mut r = [0u8; 8];
        if !format::sys::getrandom(&mut r) {
            r = format::sys::clock_ns(libc::CLOCK_MONOTONIC).to_le_bytes();
        }
        let tmp = d.join(format!(
            ".{name}.{}-{:016x}.tmp",
            std::process::id(),
            u64::from_le_bytes(r)
        ));
        let written = OpenOptions::new()
            .write(true)
            .create_new(true) // O_CREAT | O_EXCL: never an existing file, never through a symlink
            .mode(0o755)
            .open(&tmp)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(|e| format!("{}: {e}", tmp.display()))
            .and_then(|()| {
                fs::rename(&tmp, &path)
                    .map_err(|e| format!("renaming {} to {}: {e}", tmp.display(), path.display()))
            });
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(Skip::Unusable(e));
        }
        Ok((path, "written to"))
    }

    /// Whether `path` is a regular file (not a symlink) of ours, writable by us alone, holding
    /// exactly `bytes`.
    fn holds(path: &Path, bytes: &[u8]) -> bool {
        let ours = |m: &fs::Metadata| {
            m.file_type().is_file()
                && m.uid() == euid()
                && m.mode() & 0o022 == 0
                && m.len() == bytes.len() as u64
        };
        let Ok(m) = fs::symlink_metadata(path) else {
            return false;
        };
        if !ours(&m) {
            return false;
        }
        // O_NOFOLLOW and a second look at the open file: what is compared is what was checked.
        let Ok(mut f) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
        else {
            return false;
        };
        let same = |o: &fs::Metadata| ours(o) && o.ino() == m.ino() && o.dev() == m.dev();
        if !File::metadata(&f).is_ok_and(|o| same(&o)) {
            return false;
        }
        let mut have = Vec::with_capacity(bytes.len() + 1);
        f.read_to_end(&mut have).is_ok() && have == bytes
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        const LIB: &[u8] = b"\x7fELF not really a library";

        fn entries(d: &Path) -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }

        #[test]
        fn placed_once_reused_then_replaced_when_wrong() {
            let t = tempfile::tempdir().unwrap();
            let d = t.path().join("c/substrate");
            usable_dir(&d).ok().unwrap();
            assert_eq!(fs::metadata(&d).unwrap().mode() & 0o777, 0o700);
            let (p, how) = place(&d, LIB, 0xab).ok().unwrap();
            assert_eq!(how, "written to");
            assert_eq!(p, d.join("libringbuf_preload-00000000000000ab.so"));
            assert_eq!(fs::read(&p).unwrap(), LIB);
            let ino = fs::metadata(&p).unwrap().ino();
            let (_, how) = place(&d, LIB, 0xab).ok().unwrap();
            assert_eq!(how, "already in");
            assert_eq!(fs::metadata(&p).unwrap().ino(), ino);
            // Same length, other bytes: replaced.
            let mut other = LIB.to_vec();
            other[5] ^= 1;
            fs::write(&p, &other).unwrap();
            assert_eq!(place(&d, LIB, 0xab).ok().unwrap().1, "written to");
            assert_eq!(fs::read(&p).unwrap(), LIB);
            // No temporary file left behind.
            assert_eq!(entries(&d), ["libringbuf_preload-00000000000000ab.so"]);
        }

        #[test]
        fn a_directory_others_can_write_is_refused_by_name() {
            use std::os::unix::fs::PermissionsExt;
            let t = tempfile::tempdir().unwrap();
            let d = t.path().join("substrate");
            fs::create_dir(&d).unwrap();
            fs::set_permissions(&d, fs::Permissions::from_mode(0o775)).unwrap();
            match usable_dir(&d) {
                Err(Skip::Unsafe(e)) => {
                    assert!(e.contains(d.to_str().unwrap()) && e.contains("0775"))
                }
                _ => panic!("a group-writable cache was accepted"),
            }
            // A symlink to a private directory is not one.
            fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
            let l = t.path().join("link");
            std::os::unix::fs::symlink(&d, &l).unwrap();
            assert!(matches!(usable_dir(&l), Err(Skip::Unsafe(_))));
            // A path LD_PRELOAD cannot hold is passed over.
            assert!(matches!(
                usable_dir(&t.path().join("a b")),
                Err(Skip::Unusable(_))
            ));
        }
    }
}
