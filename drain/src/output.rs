//! Where lines go: standard output, or a file shared with other writers.
//!
//! A trace file is shared: other sessions, other drains and `substrate` itself append to it,
//! and `substrate` rotates it (renames it away and starts a new one). So a file output:
//! - is opened `O_WRONLY | O_APPEND | O_CREAT` and never truncated, never rewritten;
//! - is written whole lines at a time: lines are gathered in a buffer and each `write(2)`
//!   carries only complete lines (a line longer than the buffer goes alone), so with
//!   `O_APPEND` no other appender's bytes can land inside one of ours;
//! - notices rotation: before a batch (at most every [`ROTATION_CHECK`]) it compares the
//!   path's device and inode with those of the open file, and if the path was renamed away,
//!   removed or replaced, it reopens the path (creating it) and writes the batch there. Lines
//!   written before are in the renamed file, so nothing is lost;
//! - ends a partial last line it finds in the file before its first write (a writer that
//!   crashed mid-line) with a newline, so that our first line stays whole. The partial line
//!   itself is left as it is.
//!
//! A short write (disk full) is finished with further writes and the error reported; no other
//! case splits a line.
//!
//! Standard output (`-o -`) is buffered the same way; a closed pipe (`EPIPE`) is reported as
//! [`io::ErrorKind::BrokenPipe`] for the caller to end quietly, as `head` users expect.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Lines are written in batches of up to this many bytes (whole lines only).
const BATCH: usize = 1 << 16;

/// How often, at most, the path is checked for a rotation (a `stat` each time).
pub const ROTATION_CHECK: std::time::Duration = std::time::Duration::from_millis(20);

/// Where to write: `-` is standard output, anything else a file path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Standard output.
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

impl Target {
    /// `-` is standard output, anything else a file path.
    ///
    /// ```
    /// use drain::output::Target;
    /// assert_eq!(Target::parse("-".as_ref()), Target::Stdout);
    /// assert_eq!(Target::parse("t.jsonl".as_ref()), Target::File("t.jsonl".into()));
    /// ```
    pub fn parse(p: &std::ffi::OsStr) -> Target {
        if p == "-" {
            Target::Stdout
        } else {
            Target::File(PathBuf::from(p))
        }
    }

    /// How to name it in messages.
    pub fn display(&self) -> String {
        match self {
            Target::Stdout => "standard output".into(),
            Target::File(p) => p.display().to_string(),
        }
    }
}

/// An append-only line output. Call [`Output::line`] with each complete line (newline
/// included) and [`Output::flush`] when a batch should reach the file.
///
/// ```
/// use drain::output::{Output, Target};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("trace.jsonl");
/// std::fs::write(&path, "{\"theirs\":1}\n").unwrap();
/// let mut out = Output::open(Target::File(path.clone())).unwrap();
/// out.line(b"{\"ours\":1}\n").unwrap();
/// // Rotated: the next batch goes to a new file at the path.
/// std::fs::rename(&path, dir.path().join("trace.jsonl.1")).unwrap();
/// out.flush().unwrap();
/// out.line(b"{\"ours\":2}\n").unwrap();
/// out.flush().unwrap();
/// assert_eq!(out.reopened(), 1);
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"ours\":1}\n{\"ours\":2}\n");
/// ```
pub struct Output {
    target: Target,
    file: Option<File>,
    /// Device and inode of the open file, to notice rotation.
    id: (u64, u64),
    buf: Vec<u8>,
    /// Before the next write: check the file's last byte for a partial line.
    check_tail: bool,
    /// Times the path was reopened after a rotation.
    reopened: u64,
    /// When the path was last checked for a rotation.
    checked: Option<std::time::Instant>,
    /// Lines to leave out (`--events`, `--exclude-path`); `None`: every line is written.
    filter: Option<crate::views::show::Filter>,
}

fn open_append(path: &Path) -> io::Result<(File, (u64, u64))> {
    let f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)?;
    let m = f.metadata()?;
    if m.file_type().is_fifo() || m.file_type().is_char_device() {
        // A pipe or terminal is fine to write to, but blocking, as a user expects.
        set_blocking(&f)?;
    } else if !m.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok((f, (m.dev(), m.ino())))
}

fn set_blocking(f: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; F_GETFL/F_SETFL take and return plain flags.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if fl < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Output {
    /// Open `target` for appending (creating a file). Fails for a directory or another file
    /// that is neither regular, a pipe nor a terminal.
    pub fn open(target: Target) -> io::Result<Output> {
        let (file, id) = match &target {
            Target::Stdout => (None, (0, 0)),
            Target::File(p) => {
                let (f, id) = open_append(p)?;
                (Some(f), id)
            }
        };
        Ok(Output {
            check_tail: file.is_some(),
            target,
            file,
            id,
            buf: Vec::with_capacity(BATCH),
            reopened: 0,
            checked: None,
            filter: None,
        })
    }

    /// Leave out the lines `filter` does not keep ([`crate::views::show::Filter::keeps_line`]).
    pub fn set_filter(&mut self, filter: crate::views::show::Filter) {
        self.filter = (!filter.is_empty()).then_some(filter);
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// How many times a rotated file was noticed and its path reopened.
    pub fn reopened(&self) -> u64 {
        self.reopened
    }

    /// Queue one complete line (with its newline), unless the filter leaves it out. Flushes
    /// first when the batch would overflow, so batches hold whole lines only.
    pub fn line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.filter.as_ref().is_some_and(|f| !f.keeps_line(line)) {
            return Ok(());
        }
        if !self.buf.is_empty() && self.buf.len() + line.len() > BATCH {
            self.flush()?;
        }
        self.buf.extend_from_slice(line);
        if self.buf.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Write the queued lines: one `write(2)` unless the disk is full.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.write_batch();
        self.buf.clear();
        r
    }

    fn write_batch(&mut self) -> io::Result<()> {
        let Target::File(path) = &self.target else {
            let mut so = io::stdout().lock();
            so.write_all(&self.buf)?;
            return so.flush();
        };
        // Rotation: the path no longer names the file we hold.
        let now = std::time::Instant::now();
        let due = self
            .checked
            .is_none_or(|t| now.duration_since(t) >= ROTATION_CHECK);
        let rotated = due
            && match std::fs::metadata(path) {
                Ok(m) => (m.dev(), m.ino()) != self.id && m.is_file(),
                Err(_) => true,
            };
        if due {
            self.checked = Some(now);
        }
        if rotated {
            let (f, id) = open_append(path)?;
            self.file = Some(f);
            self.id = id;
            self.reopened += 1;
            self.check_tail = true;
        }
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        if std::mem::take(&mut self.check_tail) && ends_mid_line(path) {
            self.buf.insert(0, b'\n');
        }
        f.write_all(&self.buf)
    }
}

/// Whether the file's last byte is not a newline (a line left partial by a crashed writer).
/// Read through a descriptor of its own: ours is append-only.
fn ends_mid_line(path: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
    else {
        return false;
    };
    let len = f
        .metadata()
        .map_or(0, |m| if m.is_file() { m.len() } else { 0 });
    let mut b = [0u8; 1];
    len > 0 && matches!(f.read_at(&mut b, len - 1), Ok(1)) && b[0] != b'\n'
}

impl Write for Output {
    /// Callers must write whole lines: each call is queued as one.
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.line(b)?;
        Ok(b.len())
    }
    fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        self.line(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        Output::flush(self)
    }
}
