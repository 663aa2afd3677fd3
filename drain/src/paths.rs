//! Absolute paths for relative ones, without touching the file system: each process image's
//! working directory (from its `process_start`, then its `chdir`/`fchdir` calls) and the paths
//! its descriptors were opened with (for `openat(dirfd, …)` and `fchdir`). A forked or exec'd
//! image inherits its parent's descriptors. Resolution is lexical (`.` and `..` are folded;
//! symbolic links are not followed), and a path is left unresolved when its base is unknown.

use std::collections::HashMap;

/// At most this many descriptors are remembered per image.
const MAX_FDS: usize = 4096;

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
    pub fds: HashMap<i32, Vec<u8>>,
}

impl Dirs {
    /// The absolute form of `path` relative to `dirfd` (`AT_FDCWD` = -100 for the cwd).
    pub fn resolve(&self, dirfd: i32, path: &[u8]) -> Option<Vec<u8>> {
        if path.first() == Some(&b'/') {
            return Some(normalize(path));
        }
        let base = if dirfd == libc::AT_FDCWD {
            self.cwd.as_ref()?
        } else {
            self.fds.get(&dirfd)?
        };
        if path.is_empty() {
            return Some(base.clone());
        }
        let mut p = base.clone();
        p.push(b'/');
        p.extend_from_slice(path);
        Some(normalize(&p))
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
fn is_normal(p: &[u8]) -> bool {
    p.split(|&b| b == b'/')
        .skip(1)
        .all(|c| !c.is_empty() && c != b"." && c != b"..")
        || p == b"/"
}

/// Fold `.`, `..` and repeated `/` of an absolute path.
pub fn normalize(p: &[u8]) -> Vec<u8> {
    if is_normal(p) {
        return p.to_vec();
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
    let mut out = Vec::with_capacity(p.len());
    for c in parts {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
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
    }
}
