//! Absolute paths for relative ones, without touching the file system: each process image's
//! working directory (from its `process_start`, then its `chdir`/`fchdir` calls) and the paths
//! its descriptors were opened with (for `openat(dirfd, …)` and `fchdir`). A forked or exec'd
//! image inherits its parent's descriptors. Resolution is lexical (`.` and `..` are folded;
//! symbolic links are not followed), and a path is left unresolved when its base is unknown.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

/// At most this many descriptors are remembered per image.
const MAX_FDS: usize = 4096;

/// Hashes a descriptor number (small integers; looked up for every `file_open`): one
/// multiplication instead of SipHash. The keys come from traced programs, which could choose
/// colliding ones, but at most `MAX_FDS` of them per image.
#[derive(Default, Clone, Copy)]
pub struct FdHasher(u64);

impl std::hash::Hasher for FdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_i32(&mut self, i: i32) {
        self.0 = (self.0 ^ u64::from(i as u32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Descriptor to the absolute path it was opened with.
pub type FdMap = HashMap<i32, Vec<u8>, BuildHasherDefault<FdHasher>>;

/// What is known about one process image's directories.
///
/// ```
/// let mut d = drain::paths::Dirs { cwd: Some(b"/src".to_vec()), ..Default::default() };
/// assert_eq!(d.resolve(libc::AT_FDCWD, b"a/../b.c").unwrap(), b"/src/b.c");
/// d.opened(5, Some(b"/tmp"));
/// assert_eq!(d.resolve(5, b"x").unwrap(), b"/tmp/x");
/// assert_eq!(d.resolve(6, b"x"), None, "an unknown descriptor");
/// assert_eq!(drain::paths::normalize(b"/a/./b/../c"), b"/a/c");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Dirs {
    /// Working directory, if known.
    pub cwd: Option<Vec<u8>>,
    /// Absolute path each open descriptor was opened with.
    pub fds: FdMap,
}

impl Dirs {
    /// The absolute form of `path` relative to `dirfd` (`AT_FDCWD` = -100 for the cwd).
    pub fn resolve(&self, dirfd: i32, path: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.resolve_into(dirfd, path, &mut out).then_some(out)
    }

    /// [`Dirs::resolve`] into `out` (replacing its contents; reusing its allocation): whether
    /// the path could be made absolute.
    pub fn resolve_into(&self, dirfd: i32, path: &[u8], out: &mut Vec<u8>) -> bool {
        out.clear();
        if path.first() == Some(&b'/') {
            normalize_into(path, out);
            return true;
        }
        let base = if dirfd == libc::AT_FDCWD {
            self.cwd.as_ref()
        } else {
            self.fds.get(&dirfd)
        };
        let Some(base) = base else {
            return false;
        };
        out.extend_from_slice(base);
        if path.is_empty() {
            return true;
        }
        out.push(b'/');
        out.extend_from_slice(path);
        if !is_normal(out) {
            *out = normalize(out);
        }
        true
    }

    /// Remember that `fd` names `abs` (reusing the buffer of the descriptor's last path).
    pub fn opened(&mut self, fd: i32, abs: Option<&[u8]>) {
        match abs {
            Some(a) => {
                if let Some(v) = self.fds.get_mut(&fd) {
                    v.clear();
                    v.extend_from_slice(a);
                    return;
                }
                if self.fds.len() >= MAX_FDS {
                    self.fds.clear();
                }
                self.fds.insert(fd, a.to_vec());
            }
            None => {
                self.fds.remove(&fd);
            }
        }
    }
}

/// Whether an absolute path is already normal: no `.` or `..` component, no `//`, no trailing
/// `/` (except the root itself).
///
/// Called for every path of every line, so the common case (no `/` followed by `/` or `.`) is
/// found a word at a time; a path with such a pair (a hidden directory, `./`) is looked at
/// component by component.
fn is_normal(p: &[u8]) -> bool {
    if p == b"/" {
        return true;
    }
    if p.last() == Some(&b'/') {
        return false;
    }
    if !has_slash_pair(p) {
        return true;
    }
    p.split(|&b| b == b'/')
        .skip(1)
        .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

/// Whether a `/` in `p` is followed by `/` or `.` (possibly a false positive, never a false
/// negative).
fn has_slash_pair(p: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A superset of the bytes of `w` equal to `b` (every such byte is flagged).
    let eq = |w: u64, b: u8| {
        let x = w ^ (ONES * b as u64);
        x.wrapping_sub(ONES) & !x & HIGH
    };
    let word = |c: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        u64::from_le_bytes(w)
    };
    let mut i = 0;
    // Each byte of the word at `i` against the byte after it (the word at `i + 1`).
    while let (Some(a), Some(b)) = (p.get(i..i + 8), p.get(i + 1..i + 9)) {
        let (a, b) = (word(a), word(b));
        if eq(a, b'/') & (eq(b, b'/') | eq(b, b'.')) != 0 {
            return true;
        }
        i += 8;
    }
    p.get(i..)
        .unwrap_or_default()
        .windows(2)
        .any(|w| w[0] == b'/' && (w[1] == b'/' || w[1] == b'.'))
}

/// Fold `.`, `..` and repeated `/` of an absolute path.
pub fn normalize(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len());
    normalize_into(p, &mut out);
    out
}

/// [`normalize`], appended to `out`.
fn normalize_into(p: &[u8], out: &mut Vec<u8>) {
    if is_normal(p) {
        out.extend_from_slice(p);
        return;
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in p.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let start = out.len();
    for c in parts {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.len() == start {
        out.push(b'/');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_cwd_or_descriptor() {
        let mut d = Dirs {
            cwd: Some(b"/home/u/src".to_vec()),
            ..Default::default()
        };
        assert_eq!(d.resolve(-100, b"../x/./y"), Some(b"/home/u/x/y".to_vec()));
        assert_eq!(d.resolve(-100, b"/a//b/../c"), Some(b"/a/c".to_vec()));
        assert_eq!(d.resolve(7, b"rel"), None);
        d.opened(7, Some(b"/etc"));
        assert_eq!(d.resolve(7, b"rel"), Some(b"/etc/rel".to_vec()));
        assert_eq!(normalize(b"/.."), b"/".to_vec());
        assert_eq!(normalize(b"/a/b/"), b"/a/b".to_vec());
        assert_eq!(normalize(b"/a/b"), b"/a/b".to_vec());
        for (p, normal) in [
            (&b"/"[..], true),
            (b"/a", true),
            (b"/a/b.c/..d/.e/...", true),
            (b"//", false),
            (b"/a//b", false),
            (b"/a/", false),
            (b"/a/.", false),
            (b"/a/..", false),
            (b"/./a", false),
            (b"/../a", false),
            (b"/a/./b", false),
            (b"/a/../b", false),
        ] {
            assert_eq!(is_normal(p), normal, "{}", String::from_utf8_lossy(p));
            // The old definition.
            let old = p
                .split(|&b| b == b'/')
                .skip(1)
                .all(|c| !c.is_empty() && c != b"." && c != b"..")
                || p == b"/";
            assert_eq!(old, normal);
        }
        // Every string of up to 10 of `/`, `.` and `a` (across a word), against the old
        // definition.
        let mut stack = vec![Vec::new()];
        while let Some(p) = stack.pop() {
            let old = p
                .split(|&b| b == b'/')
                .skip(1)
                .all(|c| !c.is_empty() && c != b"." && c != b"..")
                || p == b"/";
            assert_eq!(is_normal(&p), old, "{}", String::from_utf8_lossy(&p));
            if p.len() < 10 {
                for b in [b'/', b'.', b'a'] {
                    let mut q = p.clone();
                    q.push(b);
                    stack.push(q);
                }
            }
        }
    }
}
