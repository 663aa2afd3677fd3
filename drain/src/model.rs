//! The process model: what the decoder knows about each process image of a session, apart
//! from how lines are written.
//!
//! An image (one `span_id`) is learnt from its `process_start`: its pid, the image that started
//! it (`parent_image`), the `SHIM_SESSION_ID` and `SHIM_PARENT_SPAN` it received, and its
//! directories (the working directory, then the paths its descriptors were opened with, for
//! `abs_path`; see [`crate::paths`]). A forked or exec'd image inherits its parent's
//! descriptors. An image whose `process_start` was not seen (overwritten, or before a resumed
//! drain's start) is known by its span only. An image is forgotten at its `process_exit`.
//!
//! Invariants: every image in the map has its id members rendered once (`Ids`), so a line
//! costs no id formatting; the pid index names the latest image started in each pid.

use std::collections::{HashMap, HashSet, VecDeque};

use format::ids;

use crate::paths::Dirs;
use crate::render::Ids;

/// One process image.
#[derive(Default)]
pub struct Image {
    /// Its pid (0 when its `process_start` was not seen).
    pub pid: u32,
    /// The image that started it (exec'd, spawned or forked it).
    pub parent_image: Option<[u8; 16]>,
    /// `SHIM_SESSION_ID` as it received it, else the ring's session id as text.
    pub session: Option<Vec<u8>>,
    /// `SHIM_PARENT_SPAN` as it received it.
    pub parent_span: Option<Vec<u8>>,
    /// Its working directory and open descriptors.
    pub dirs: Dirs,
    /// The id members of its lines, rendered once.
    pub(crate) ids: Ids,
}

/// Hashes a span id by its last 8 bytes, which are random in a UUIDv7 (the first 6 are the
/// time, shared by spans created in the same millisecond).
#[derive(Default, Clone, Copy)]
struct SpanHasher(u64);

impl std::hash::Hasher for SpanHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 =
                (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
}

type SpanMap = HashMap<[u8; 16], Image, std::hash::BuildHasherDefault<SpanHasher>>;

/// How an image changed its working directory.
pub enum Chdir<'a> {
    /// `chdir(path)`, resolved to this absolute path (or unknown).
    To(Option<&'a [u8]>),
    /// `fchdir(fd)`.
    Fd(i32),
}

/// The images of a session.
///
/// ```
/// use drain::model::Processes;
/// let mut p = Processes::new([0; 16]);
/// let (root, child) = ([1u8; 16], [2u8; 16]);
/// p.start(root, 10, None, None, None, b"/home/u");
/// p.opened(root, 3, Some(b"/home/u/src"));
/// p.start(child, 11, Some(root), None, Some(b"spn_x"), b"/home/u");
/// // The child inherited descriptor 3.
/// assert_eq!(p.resolve(child, 3, b"main.c").as_deref(), Some(&b"/home/u/src/main.c"[..]));
/// assert_eq!(p.get(&child).unwrap().parent_image, Some(root));
/// ```
pub struct Processes {
    images: SpanMap,
    /// The latest image started in each pid, for ends reported by a parent (killed children).
    by_pid: HashMap<u32, [u8; 16]>,
    /// The images that ended most recently (at most [`ENDED_KEPT`]), so that a second report
    /// of one end (the supervisor's and the parent's of a killed child) is told apart.
    ended: (HashSet<[u8; 16]>, VecDeque<[u8; 16]>),
    ring_session: [u8; 16],
}

/// How many ended images [`Processes::has_ended`] remembers.
const ENDED_KEPT: usize = 4096;

impl Processes {
    /// An empty model for a ring whose session id is `ring_session` (zeros: none).
    pub fn new(ring_session: [u8; 16]) -> Processes {
        Processes {
            images: SpanMap::default(),
            by_pid: HashMap::new(),
            ended: Default::default(),
            ring_session,
        }
    }

    /// A `process_start`: the image `span` of `pid`, started by `parent_image`, with the
    /// `SHIM_*` values it received and its working directory (empty: unknown).
    pub fn start(
        &mut self,
        span: [u8; 16],
        pid: u32,
        parent_image: Option<[u8; 16]>,
        shim_session: Option<&[u8]>,
        shim_parent_span: Option<&[u8]>,
        cwd: &[u8],
    ) -> &Image {
        let fds = parent_image
            .and_then(|p| self.images.get(&p))
            .map(|s| s.dirs.fds.clone())
            .unwrap_or_default();
        let session = shim_session
            .map(<[u8]>::to_vec)
            .or_else(|| self.ring_session_text());
        let parent_span = shim_parent_span.map(<[u8]>::to_vec);
        let image = Image {
            pid,
            ids: Ids::new(
                session.as_deref(),
                &span,
                parent_span.as_deref(),
                parent_image,
            ),
            parent_image,
            session,
            parent_span,
            dirs: Dirs {
                cwd: (!cwd.is_empty()).then(|| cwd.to_vec()),
                fds,
            },
        };
        self.by_pid.insert(pid, span);
        self.images.insert(span, image);
        &self.images[&span]
    }

    fn ring_session_text(&self) -> Option<Vec<u8>> {
        (self.ring_session != [0; 16]).then(|| ids::uuid_string(&self.ring_session).into_bytes())
    }

    /// The image `span`, known by its span only if its `process_start` was not seen.
    pub fn image(&mut self, span: [u8; 16]) -> &Image {
        let ring_session = self.ring_session;
        // Called for every line: nothing is formatted unless the image is new.
        self.images.entry(span).or_insert_with(|| {
            let session =
                (ring_session != [0; 16]).then(|| ids::uuid_string(&ring_session).into_bytes());
            Image {
                ids: Ids::new(session.as_deref(), &span, None, None),
                session,
                ..Default::default()
            }
        })
    }

    /// The image `span`, if known.
    pub fn get(&self, span: &[u8; 16]) -> Option<&Image> {
        self.images.get(span)
    }

    /// The latest image started in `pid`.
    pub fn span_of_pid(&self, pid: u32) -> Option<[u8; 16]> {
        self.by_pid.get(&pid).copied()
    }

    /// The image ended: forget it.
    pub fn ended(&mut self, span: &[u8; 16]) {
        self.images.remove(span);
        let (set, order) = &mut self.ended;
        if set.insert(*span) {
            order.push_back(*span);
            if order.len() > ENDED_KEPT {
                if let Some(old) = order.pop_front() {
                    set.remove(&old);
                }
            }
        }
    }

    /// Whether the end of image `span` was seen (recently).
    pub fn has_ended(&self, span: &[u8; 16]) -> bool {
        self.ended.0.contains(span)
    }

    /// Images known now.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether no image is known.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// `path` made absolute for image `span`, relative to `dirfd` (`AT_FDCWD`: its working
    /// directory); `None` when its base is unknown.
    pub fn resolve(&self, span: [u8; 16], dirfd: i32, path: &[u8]) -> Option<Vec<u8>> {
        self.images.get(&span)?.dirs.resolve(dirfd, path)
    }

    /// [`Processes::resolve`] into `out` (its contents replaced, its allocation reused):
    /// whether the path could be made absolute.
    pub fn resolve_into(&self, span: [u8; 16], dirfd: i32, path: &[u8], out: &mut Vec<u8>) -> bool {
        match self.images.get(&span) {
            Some(i) => i.dirs.resolve_into(dirfd, path, out),
            None => false,
        }
    }

    /// Image `span` opened `fd` on `abs` (unknown: `None`).
    pub fn opened(&mut self, span: [u8; 16], fd: i32, abs: Option<&[u8]>) {
        if let Some(s) = self.images.get_mut(&span) {
            s.dirs.opened(fd, abs);
        }
    }

    /// Image `span` changed its working directory.
    pub fn chdir(&mut self, span: [u8; 16], how: Chdir<'_>) {
        if let Some(s) = self.images.get_mut(&span) {
            s.dirs.cwd = match how {
                Chdir::To(abs) => abs.map(<[u8]>::to_vec),
                Chdir::Fd(fd) => s.dirs.fds.get(&fd).cloned(),
            };
        }
    }

    /// Image `span`'s working directory, if known.
    pub fn cwd(&self, span: [u8; 16]) -> Option<&[u8]> {
        self.images.get(&span)?.dirs.cwd.as_deref()
    }
}
