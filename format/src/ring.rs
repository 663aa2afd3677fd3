//! A ring file: create it, map it, validate a mapped one, read its counters and writer table.
//!
//! Creation sizes the file fully (`posix_fallocate`, so a full `/dev/shm` is an error now, not
//! a `SIGBUS` later; or, with `defer_allocation`, checks the room and leaves the allocation to
//! the caller), writes the header, and stores the magic last with release. Opening
//! validates every field against the file's real size before any offset is used; a ring is
//! never truncated or resized while mapped.
//!
//! The mapping is a `memmap2::MmapRaw` (`MAP_SHARED`, the whole file, offset 0): it hands out
//! raw pointers only, never a slice, which is the only sound view of memory that other
//! processes write at any moment. Every access then goes through [`MapMem`] (atomics and
//! bounded copies). Mapping makes one `mmap` call and allocates nothing (`memmap2` reads the
//! page size once with `sysconf`); the preload maps its ring this way too, from its
//! constructor, which restores `errno` afterwards. Unmapping is `MmapRaw`'s drop.

use core::sync::atomic::Ordering::*;
use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use memmap2::{MmapOptions, MmapRaw};
use zerocopy::FromBytes;

use crate::layout::{self, ctl, slot, FileHeader, Mode};
use crate::mem::{MapMem, Mem};
use crate::protocol::{self, DropReason, Geometry, Liveness};
use crate::sys;

/// Why a ring could not be created or opened. `Display` is one line fit for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingError {
    /// A system call failed (`what` names it), with its errno.
    Io {
        /// What was being done.
        what: &'static str,
        /// The errno.
        errno: i32,
    },
    /// The file is shorter than a header, or than its header says.
    Truncated {
        /// Its real size.
        actual: u64,
        /// What it needs to be.
        expected: u64,
    },
    /// The magic is wrong: not a ring (or its creation never finished).
    NotARing,
    /// A ring of another format version.
    Version(u32),
    /// Written by a big-endian (or otherwise foreign) writer.
    Endianness,
    /// The records' timestamps come from a clock this build does not know (`clock_id`).
    Clock(u32),
    /// A header field is impossible; names the field.
    BadHeader(&'static str),
    /// The ring belongs to another user.
    Foreign {
        /// The file's owner.
        owner: u32,
    },
    /// A creation parameter is out of range; says which and why.
    BadOptions(String),
    /// Not a regular file (a directory, FIFO, device or socket).
    NotAFile,
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::Io { what, errno } => {
                write!(f, "{what}: {}", std::io::Error::from_raw_os_error(*errno))
            }
            RingError::Truncated { actual, expected } => {
                write!(
                    f,
                    "truncated ring: the file has {actual} bytes, its header needs {expected}"
                )
            }
            RingError::NotARing => write!(
                f,
                "not a substrate ring (bad magic, or its creation did not finish)"
            ),
            RingError::Version(v) => {
                write!(
                    f,
                    "ring format version {v} is not supported (this build reads versions {} to {})",
                    layout::MIN_VERSION,
                    layout::VERSION
                )
            }
            RingError::Endianness => write!(f, "ring written with a foreign byte order"),
            RingError::Clock(id) => write!(
                f,
                "ring timestamps use clock id {id}, which this build does not know (it reads {} = CLOCK_MONOTONIC and {} = CLOCK_REALTIME)",
                layout::CLOCK_MONOTONIC_ID,
                layout::CLOCK_REALTIME_ID
            ),
            RingError::BadHeader(field) => write!(f, "corrupt ring header: impossible {field}"),
            RingError::Foreign { owner } => {
                write!(f, "ring is owned by uid {owner}, not by this user")
            }
            RingError::BadOptions(why) => write!(f, "{why}"),
            RingError::NotAFile => write!(f, "not a regular file, so not a ring"),
        }
    }
}

impl std::error::Error for RingError {}

/// Parameters of a new ring.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Data capacity in bytes: a power of two, at least two blocks, at most 4 GiB.
    pub capacity: u64,
    /// Block size (the largest record): a power of two from 4 KiB to 1 MiB.
    pub block_size: u64,
    /// Full-ring behaviour.
    pub mode: Mode,
    /// Number of writer slots (processes attached at once), 1 to 65536.
    pub writer_slots: u32,
    /// Session id stored in the header (UUID bytes).
    pub session_id: [u8; 16],
    /// Leave the file's space unallocated at creation, after checking (`fstatvfs`) that its
    /// file system has room for all of it: the caller allocates it with [`Ring::allocate`],
    /// e.g. on another thread while the traced command starts (allocating 64 MiB of tmpfs
    /// takes 10-20 ms). Until then a writer's store into a page the file system can no longer
    /// supply is a `SIGBUS` in the writer. Default: allocate at creation.
    pub defer_allocation: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            capacity: 64 << 20,
            block_size: 64 << 10,
            mode: Mode::Discard,
            writer_slots: 4096,
            session_id: [0; 16],
            defer_allocation: false,
        }
    }
}

/// A mapped ring. Owns the mapping; [`crate::Writer`]s and [`crate::Reader`]s borrow it.
pub struct Ring {
    /// The view every access goes through; valid while `_map` lives (views handed out by
    /// [`Ring::mem`] are used only by borrowers of the ring).
    mem: MapMem,
    header: FileHeader,
    geo: Geometry,
    writable: bool,
    /// The mapping itself, unmapped when the ring drops. Never read directly: only `mem`.
    _map: MmapRaw,
}

/// Map `len` bytes of `fd` shared, read-write or read-only.
fn map(fd: i32, len: u64, writable: bool, what: &'static str) -> Result<MmapRaw, RingError> {
    let mut o = MmapOptions::new();
    o.len(len as usize);
    let m = if writable {
        o.map_raw(fd)
    } else {
        o.map_raw_read_only(fd)
    };
    m.map_err(|e| RingError::Io {
        what,
        errno: e.raw_os_error().unwrap_or(libc::EINVAL),
    })
}

/// The first `len` bytes of `map` as [`MapMem`]: `len` at most the mapping's length and a
/// multiple of 8 (a page for the header before validation; the validated file size after).
fn view(map: &MmapRaw, len: u64) -> MapMem {
    assert!(len <= map.len() as u64 && len.is_multiple_of(8));
    // SAFETY: `MmapRaw` maps at least `len` bytes (checked above; offset 0), page aligned,
    // valid for reads (and writes, when writable: the reader of a read-only ring never writes)
    // until it is dropped, which the Ring owning both does after every borrower of its views
    // is gone. Nothing forms a reference into it: MmapRaw hands out raw pointers only.
    unsafe { MapMem::new(map.as_mut_ptr(), len) }
}

fn cpath(path: &Path) -> Result<CString, RingError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| RingError::BadOptions("ring path contains a NUL byte".into()))
}

fn io(what: &'static str) -> impl Fn(i32) -> RingError {
    move |errno| RingError::Io { what, errno }
}

/// `n` bytes as written on a command line: `64M`, `128K`, `4G`, or plain bytes.
fn size_text(n: u64) -> String {
    match n {
        0 => "0".into(),
        n if n % (1 << 30) == 0 => format!("{}G", n >> 30),
        n if n % (1 << 20) == 0 => format!("{}M", n >> 20),
        n if n % (1 << 10) == 0 => format!("{}K", n >> 10),
        n => n.to_string(),
    }
}

/// The layout a ring with these options has: (geometry, file size).
fn plan(o: &CreateOptions) -> Result<(Geometry, u64), RingError> {
    let bad = |s: String| Err(RingError::BadOptions(s));
    if !o.block_size.is_power_of_two()
        || !(layout::MIN_BLOCK..=layout::MAX_BLOCK).contains(&o.block_size)
    {
        return bad(format!(
            "block size {} must be a power of two from 4 KiB to 1 MiB",
            o.block_size
        ));
    }
    let min = layout::MIN_BLOCKS * o.block_size;
    if o.capacity < min {
        return bad(format!(
            "ring size {} is too small: the minimum is {} (two blocks of {})",
            size_text(o.capacity),
            size_text(min),
            size_text(o.block_size)
        ));
    }
    if o.capacity > layout::MAX_CAPACITY {
        return bad(format!(
            "ring size {} is too large: the maximum is 4G",
            size_text(o.capacity)
        ));
    }
    if !o.capacity.is_power_of_two() {
        let below = 1u64 << (63 - o.capacity.leading_zeros());
        return bad(format!(
            "ring size {} is not a power of two (say {} or {})",
            size_text(o.capacity),
            size_text(below),
            size_text(below * 2)
        ));
    }
    if !(layout::MIN_SLOTS..=layout::MAX_SLOTS).contains(&(o.writer_slots as u64)) {
        return bad(format!(
            "writer slots {} must be from 1 to 65536",
            o.writer_slots
        ));
    }
    let control = layout::PAGE;
    let writers = control + layout::align_up(ctl::SIZE, layout::PAGE);
    let blocks =
        writers + layout::align_up(o.writer_slots as u64 * layout::SLOT_SIZE, layout::PAGE);
    let nblocks = o.capacity / o.block_size;
    let data = blocks + layout::align_up(nblocks * layout::BLOCK_DESC_SIZE, layout::PAGE);
    let geo = Geometry {
        mode: o.mode,
        control,
        writers,
        slots: o.writer_slots,
        blocks,
        data,
        capacity: o.capacity,
        block: o.block_size,
        announce: o.mode == Mode::Overwrite,
    };
    Ok((geo, data + o.capacity))
}

/// Check a header against the file's real size and derive the geometry. Every check that
/// keeps later offsets in bounds is here.
pub fn validate(h: &FileHeader, file_len: u64) -> Result<Geometry, RingError> {
    if h.magic != layout::MAGIC {
        return Err(RingError::NotARing);
    }
    if !(layout::MIN_VERSION..=layout::VERSION).contains(&h.version.get()) {
        return Err(RingError::Version(h.version.get()));
    }
    if h.endian_tag.get() != layout::ENDIAN_TAG {
        return Err(RingError::Endianness);
    }
    let bad = |f| Err(RingError::BadHeader(f));
    if h.header_size.get() as usize != size_of::<FileHeader>() {
        return bad("header size");
    }
    if h.record_header_size.get() as u64 != layout::RECORD_HEADER {
        return bad("record header size");
    }
    let Some(mode) = Mode::from_u32(h.mode.get()) else {
        return bad("mode");
    };
    match h.clock_id.get() {
        layout::CLOCK_MONOTONIC_ID => {}
        // Readers of versions 1 and 2 ignore `clock_id` and would calibrate these timestamps
        // as monotonic ones: no honest writer makes such a ring.
        layout::CLOCK_REALTIME_ID if h.version.get() >= layout::MIN_VERSION_REALTIME => {}
        layout::CLOCK_REALTIME_ID => return bad("clock id (realtime in a version 1 or 2 ring)"),
        other => return Err(RingError::Clock(other)),
    }
    let block = h.block_size.get() as u64;
    if !block.is_power_of_two() || !(layout::MIN_BLOCK..=layout::MAX_BLOCK).contains(&block) {
        return bad("block size");
    }
    let cap = h.data_capacity.get();
    if !cap.is_power_of_two() || cap < layout::MIN_BLOCKS * block || cap > layout::MAX_CAPACITY {
        return bad("data capacity");
    }
    let slots = h.writer_slots.get() as u64;
    if !(layout::MIN_SLOTS..=layout::MAX_SLOTS).contains(&slots)
        || h.writer_slot_size.get() as u64 != layout::SLOT_SIZE
    {
        return bad("writer table");
    }
    let expected = h.file_size.get();
    if file_len < expected {
        return Err(RingError::Truncated {
            actual: file_len,
            expected,
        });
    }
    if file_len != expected {
        return bad("file size");
    }
    // Regions in order, page aligned, not overlapping, inside the file. All operands are below
    // 2^33 after the checks above, so nothing overflows except forged offsets, which checked
    // arithmetic rejects.
    let (c, w, b, d) = (
        h.control_offset.get(),
        h.writers_offset.get(),
        h.blocks_offset.get(),
        h.data_offset.get(),
    );
    let aligned = [c, w, b, d].iter().all(|o| o % layout::PAGE == 0);
    let fits =
        |start: u64, size: u64, next: u64| start.checked_add(size).is_some_and(|e| e <= next);
    if !aligned
        || c < layout::PAGE
        || !fits(c, ctl::SIZE, w)
        || !fits(w, slots * layout::SLOT_SIZE, b)
        || !fits(b, (cap / block) * layout::BLOCK_DESC_SIZE, d)
        || d.checked_add(cap) != Some(expected)
    {
        return bad("region offsets");
    }
    Ok(Geometry {
        mode,
        control: c,
        writers: w,
        slots: slots as u32,
        blocks: b,
        data: d,
        capacity: cap,
        block,
        announce: mode == Mode::Overwrite && h.version.get() >= 2,
    })
}

/// The `errno` of the system call that just failed.
fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Allocate `size` bytes of the file `fd` (`posix_fallocate`: existing data is kept).
fn allocate_fd(fd: i32, size: u64) -> Result<(), RingError> {
    allocate_range(fd, 0, size)
}

/// Allocate `len` bytes of the file `fd` from `offset`.
fn allocate_range(fd: i32, offset: u64, len: u64) -> Result<(), RingError> {
    // SAFETY: plain syscall wrapper on our descriptor.
    let r = unsafe { libc::posix_fallocate(fd, offset as libc::off_t, len as libc::off_t) };
    if r != 0 {
        return Err(RingError::Io {
            what: "allocate ring file",
            errno: r,
        });
    }
    Ok(())
}

/// Allocate `len` bytes of the file `fd` from `offset` while writers may be storing into it:
/// `fallocate(2)` itself, never glibc's fallback for file systems without it (which reads and
/// writes back a byte per block, and could undo a writer's store). `EOPNOTSUPP` there.
fn allocate_in_use(fd: i32, offset: u64, len: u64) -> Result<(), RingError> {
    loop {
        // SAFETY: plain syscall on our descriptor; mode 0 allocates and keeps existing data.
        let r = unsafe { libc::fallocate(fd, 0, offset as libc::off_t, len as libc::off_t) };
        if r == 0 {
            return Ok(());
        }
        let e = last_errno();
        if e != libc::EINTR {
            return Err(RingError::Io {
                what: "allocate ring file",
                errno: e,
            });
        }
    }
}

/// Whether the file system of `fd` has `size` bytes free for us (`ENOSPC` if not).
fn room_for(fd: i32, size: u64) -> Result<(), RingError> {
    // SAFETY: statvfs is plain data; all-zero is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid for writes; `fd` is our descriptor.
    if unsafe { libc::fstatvfs(fd, &mut st) } != 0 {
        return Err(RingError::Io {
            what: "check room for ring file",
            errno: last_errno(),
        });
    }
    let free = (st.f_bavail as u64).saturating_mul(st.f_frsize as u64);
    // A file system that reports no size at all (some FUSE ones) cannot be judged: allowed.
    if st.f_blocks != 0 && free < size {
        return Err(RingError::Io {
            what: "allocate ring file",
            errno: libc::ENOSPC,
        });
    }
    Ok(())
}

impl Ring {
    /// Allocate the whole of the ring file at `path`, created with
    /// [`CreateOptions::defer_allocation`] (pages writers touched already are kept), a few
    /// MiB at a time until done or until `stop` is set: whether it was all allocated. Safe to
    /// call while the ring is in use (it uses `fallocate(2)` only: on a file system without
    /// it, `EOPNOTSUPP`, and the pages are allocated as they are touched); an error leaves
    /// the ring as it was.
    pub fn allocate(path: &Path, stop: &std::sync::atomic::AtomicBool) -> Result<bool, RingError> {
        /// Small enough that a stop (or an unlink, which waits for the file's lock) waits at
        /// most a millisecond or two.
        const STEP: u64 = 4 << 20;
        let p = cpath(path)?;
        let fd = sys::open(&p, libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC, 0)
            .map_err(io("open ring file"))? as i32;
        // SAFETY: stat is plain data; all-zero is a valid value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is valid for writes; `fd` is our descriptor.
        let r = if unsafe { libc::fstat(fd, &mut st) } != 0 {
            Err(RingError::Io {
                what: "stat ring file",
                errno: last_errno(),
            })
        } else {
            let size = st.st_size as u64;
            let mut done = 0;
            // Relaxed: the flag only says when to stop; nothing is published through it.
            while done < size && !stop.load(Relaxed) {
                let n = STEP.min(size - done);
                if let Err(e) = allocate_in_use(fd, done, n) {
                    sys::close(fd);
                    return Err(e);
                }
                done += n;
            }
            Ok(done >= size)
        };
        sys::close(fd);
        r
    }

    /// Create a new ring file at `path` (mode 0600, `O_EXCL|O_NOFOLLOW`: it must not exist).
    pub fn create(path: &Path, opts: &CreateOptions) -> Result<Ring, RingError> {
        let (geo, size) = plan(opts)?;
        let p = cpath(path)?;
        let flags =
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let fd = sys::open(&p, flags, 0o600).map_err(io("create ring file"))? as i32;
        let ring = Self::init(fd, &geo, size, opts);
        sys::close(fd);
        if ring.is_err() {
            // SAFETY: unlinking the file we just created; `p` is a valid C string.
            unsafe { libc::unlink(p.as_ptr()) };
        }
        ring
    }

    fn init(fd: i32, geo: &Geometry, size: u64, opts: &CreateOptions) -> Result<Ring, RingError> {
        if opts.defer_allocation {
            room_for(fd, size)?;
            // SAFETY: plain syscall on our descriptor.
            if unsafe { libc::ftruncate(fd, size as libc::off_t) } != 0 {
                return Err(RingError::Io {
                    what: "size ring file",
                    errno: last_errno(),
                });
            }
        } else {
            allocate_fd(fd, size)?;
        }
        let map = map(fd, size, true, "map ring file")?;
        let mem = view(&map, size);
        let realtime = sys::clock_ns(libc::CLOCK_REALTIME);
        let monotonic = sys::clock_ns(libc::CLOCK_MONOTONIC);
        let header = FileHeader {
            magic: [0; 8],
            version: layout::VERSION.into(),
            endian_tag: layout::ENDIAN_TAG.into(),
            header_size: (size_of::<FileHeader>() as u32).into(),
            record_header_size: (layout::RECORD_HEADER as u32).into(),
            mode: (opts.mode as u32).into(),
            block_size: (geo.block as u32).into(),
            file_size: size.into(),
            control_offset: geo.control.into(),
            writers_offset: geo.writers.into(),
            writer_slots: geo.slots.into(),
            writer_slot_size: (layout::SLOT_SIZE as u32).into(),
            blocks_offset: geo.blocks.into(),
            data_offset: geo.data.into(),
            data_capacity: geo.capacity.into(),
            session_id: opts.session_id,
            created_unix_ns: realtime.into(),
            // Records carry wall-clock time itself (see RING.md §1.1, "Timestamps").
            clock_id: layout::CLOCK_REALTIME_ID.into(),
            creator_uid: sys::geteuid().into(),
            calib_realtime_ns: realtime.into(),
            calib_monotonic_ns: monotonic.into(),
            creator_pid: sys::getpid().into(),
            reserved0: 0.into(),
        };
        mem.write_bytes(0, zerocopy::IntoBytes::as_bytes(&header));
        // Release: a reader that sees the magic sees the whole header (and the zeroed rest).
        mem.store(0, layout::MAGIC_U64, Release);
        let mut header = header;
        header.magic = layout::MAGIC;
        Ok(Ring {
            mem,
            header,
            geo: *geo,
            writable: true,
            _map: map,
        })
    }

    /// Open an existing ring read-write (writers, and drains that publish their position).
    /// Follows no symlink; refuses a ring owned by another user.
    pub fn open(path: &Path) -> Result<Ring, RingError> {
        Self::open_with(path, true)
    }

    /// Open an existing ring read-only (offline decoding, `stat`): the file is never modified.
    pub fn open_read_only(path: &Path) -> Result<Ring, RingError> {
        Self::open_with(path, false)
    }

    fn open_with(path: &Path, writable: bool) -> Result<Ring, RingError> {
        let p = cpath(path)?;
        let acc = if writable {
            libc::O_RDWR
        } else {
            libc::O_RDONLY
        };
        // O_NONBLOCK: a FIFO (or a device) must not block the open; it is refused below.
        // O_NOCTTY: a terminal given as a ring must not become our controlling terminal.
        let flags = libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
        let fd = sys::open(&p, acc | flags, 0).map_err(io("open ring"))? as i32;
        let r = Self::map_fd(fd, writable);
        sys::close(fd);
        r
    }

    /// Map and validate an open ring descriptor. The descriptor can be closed afterwards.
    pub fn map_fd(fd: i32, writable: bool) -> Result<Ring, RingError> {
        let st = sys::fstat(fd).map_err(io("stat ring"))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(RingError::NotAFile);
        }
        if writable && st.st_uid != sys::geteuid() {
            return Err(RingError::Foreign { owner: st.st_uid });
        }
        let len = st.st_size as u64;
        let hsize = size_of::<FileHeader>() as u64;
        if len < hsize.max(layout::PAGE) {
            return Err(RingError::Truncated {
                actual: len,
                expected: layout::PAGE,
            });
        }
        let map = map(fd, len, writable, "map ring")?;
        // The header page alone until the header is validated: the file's length may be
        // anything (a multiple of 8 and of the page once `validate` has checked it).
        let first = view(&map, layout::PAGE);
        let mut raw = [0u8; size_of::<FileHeader>()];
        // Acquire pairs with the creator's release store of the magic.
        let magic = first.load(0, Acquire);
        first.read_bytes(0, &mut raw);
        let mut header = FileHeader::read_from_bytes(&raw).expect("buffer has the header's size");
        header.magic = magic.to_le_bytes();
        // On error the mapping is dropped (unmapped) here.
        let geo = validate(&header, len)?;
        Ok(Ring {
            mem: view(&map, len),
            header,
            geo,
            writable,
            _map: map,
        })
    }

    /// The header as validated at open.
    pub fn header(&self) -> &FileHeader {
        &self.header
    }
    /// The geometry derived from it.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }
    /// The memory view (for the protocol functions).
    pub fn mem(&self) -> MapMem {
        self.mem
    }
    /// Whether the mapping is writable.
    pub fn writable(&self) -> bool {
        self.writable
    }
    /// Full-ring behaviour.
    pub fn mode(&self) -> Mode {
        self.geo.mode
    }
    /// The session id stored at creation.
    pub fn session_id(&self) -> [u8; 16] {
        self.header.session_id
    }
    /// Count one record dropped for `reason` by a process that has no writer (it could not
    /// attach: [`DropReason::NoSlot`]).
    pub fn count_drop(&self, reason: DropReason) {
        protocol::count_drop(&self.mem, &self.geo, reason);
    }

    /// The largest record length (header included) this ring takes.
    pub fn max_record(&self) -> u64 {
        self.geo.block
    }

    /// The clock whose value records of this ring carry in `ts_ns`, as a `clockid_t` for
    /// `clock_gettime`: `CLOCK_REALTIME` for the rings this crate creates, `CLOCK_MONOTONIC`
    /// for version 1 and 2 rings. A writer reads it once (at attach) and stamps every record
    /// with [`sys::clock_ns`] of it; both clocks are served by the vDSO without a system call.
    pub fn clock(&self) -> libc::clockid_t {
        // `validate` admitted only the two known ids.
        if self.header.clock_id.get() == layout::CLOCK_REALTIME_ID {
            libc::CLOCK_REALTIME
        } else {
            libc::CLOCK_MONOTONIC
        }
    }

    /// Wall-clock ns since the Unix epoch for a record timestamp `ts_ns` of this ring.
    ///
    /// A realtime ring's timestamp is wall-clock time already and is returned as it is: it was
    /// true when the record was written, whatever the clock did before or after (a step, a
    /// suspend). A monotonic ring's (versions 1 and 2) goes through the calibration taken at
    /// creation, `ts_ns - calib_monotonic_ns + calib_realtime_ns`, which is off by every clock
    /// step and suspend since then.
    pub fn to_unix_ns(&self, ts_ns: u64) -> i128 {
        if self.header.clock_id.get() == layout::CLOCK_REALTIME_ID {
            ts_ns as i128
        } else {
            ts_ns as i128 - self.header.calib_monotonic_ns.get() as i128
                + self.header.calib_realtime_ns.get() as i128
        }
    }

    /// Now, in ns since the Unix epoch, on this ring's time line: what [`Ring::to_unix_ns`]
    /// gives for a record written at this instant. For lines a reader writes itself (the
    /// drain's `lost` reports), so they sit among the records' times.
    ///
    /// For a realtime ring (what [`Ring::create`] makes) this is the system's wall clock. For
    /// a version 1 or 2 (monotonic) ring it is monotonic now through the creation calibration,
    /// off from the wall clock by the same amount as the ring's own records.
    ///
    /// ```
    /// use format::{CreateOptions, Ring};
    /// let dir = tempfile::tempdir().unwrap();
    /// let ring = Ring::create(&dir.path().join("ring"), &CreateOptions { capacity: 1 << 20, ..Default::default() }).unwrap();
    /// let before = format::sys::clock_ns(libc::CLOCK_REALTIME) as i128;
    /// let now = ring.now_unix_ns();
    /// let after = format::sys::clock_ns(libc::CLOCK_REALTIME) as i128;
    /// assert!(before <= now && now <= after);
    /// ```
    pub fn now_unix_ns(&self) -> i128 {
        self.to_unix_ns(sys::clock_ns(self.clock()))
    }

    /// A snapshot of the control counters.
    pub fn stats(&self) -> RingStats {
        let g = &self.geo;
        // Relaxed throughout: a statistics snapshot, each value individually meaningful.
        let ld = |w| self.mem.load(g.ctl(w), Relaxed);
        let drops = protocol::drop_counts(&self.mem, g);
        RingStats {
            reserve_pos: ld(ctl::RESERVE),
            tail: ld(ctl::TAIL),
            consumer: ld(ctl::CONSUMER),
            drain_pid: ld(ctl::DRAIN_PID) as u32,
            drain_heartbeat_ns: ld(ctl::DRAIN_HEARTBEAT),
            drops,
            overwritten_bytes: ld(ctl::OVERWRITTEN_BYTES),
            overwritten_records: ld(ctl::OVERWRITTEN_RECORDS),
            attaches: ld(ctl::ATTACHES),
            detaches: ld(ctl::DETACHES),
            reaped: ld(ctl::REAPED),
            capacity: g.capacity,
        }
    }

    /// Every slot that was ever used, with whether its process is alive now.
    pub fn writers(&self, live: &dyn Liveness) -> Vec<WriterInfo> {
        (0..self.geo.slots)
            .filter_map(|i| {
                let s = protocol::read_slot(&self.mem, &self.geo, i as u16)?;
                let (state, pid) = (layout::slot_ctl_state(s.ctl), layout::slot_ctl_pid(s.ctl));
                if s.ctl == 0 {
                    return None;
                }
                let alive = protocol::slot_alive(Some(s), live);
                let mut span = [0u8; 16];
                self.mem
                    .read_bytes(self.geo.slot_off(i as u16) + slot::SPAN, &mut span);
                // Relaxed: a snapshot for display.
                let inflight = if self.geo.announce {
                    self.mem
                        .load(self.geo.slot_off(i as u16) + slot::INFLIGHT, Relaxed)
                } else {
                    0
                };
                Some(WriterInfo {
                    slot: i as u16,
                    state,
                    generation: layout::slot_ctl_generation(s.ctl),
                    pid,
                    start_time: s.start_time,
                    attach_pos: s.attach_pos,
                    span,
                    alive,
                    inflight,
                })
            })
            .collect()
    }

    /// Whether any attached writer is alive.
    pub fn any_writer_alive(&self, live: &dyn Liveness) -> bool {
        protocol::any_writer_alive(&self.mem, &self.geo, live)
    }

    /// The drain's published position (where a restarted drain resumes).
    pub fn consumer_position(&self) -> u64 {
        // Acquire: pairs with publish's release (only meaningful to the drain itself).
        self.mem.load(self.geo.ctl(ctl::CONSUMER), Acquire)
    }

    /// Publish the drain's position, with the number of records in the stream below it as its
    /// reader counted them (see [`Ring::publish_consumer`]).
    pub fn publish_consumer_counted(&self, pos: u64, records: u64) {
        if self.writable {
            protocol::read::publish_consumer(&self.mem, &self.geo, pos, Some(records));
        }
    }

    /// The record count published with the consumer position `pos`
    /// ([`Ring::publish_consumer_counted`]), if it was published for that position.
    pub fn consumer_records(&self, pos: u64) -> Option<u64> {
        protocol::read::published_records(&self.mem, &self.geo, pos)
    }

    /// Publish the drain's position: everything below `pos` has been consumed. In discard mode
    /// this frees that space for writers. No-op on a read-only mapping.
    pub fn publish_consumer(&self, pos: u64) {
        if self.writable {
            protocol::read::publish_consumer(&self.mem, &self.geo, pos, None);
        }
    }

    /// Record the drain's pid and a heartbeat (monotonic ns). No-op when read-only.
    pub fn drain_heartbeat(&self, pid: u32) {
        if self.writable {
            // Relaxed: informational for `stat`.
            self.mem
                .store(self.geo.ctl(ctl::DRAIN_PID), pid as u64, Relaxed);
            self.mem.store(
                self.geo.ctl(ctl::DRAIN_HEARTBEAT),
                sys::clock_ns(libc::CLOCK_MONOTONIC),
                Relaxed,
            );
        }
    }
}

/// Counters of a ring at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingStats {
    /// Reservation position (bytes ever reserved, padding included).
    pub reserve_pos: u64,
    /// Overwrite mode: oldest retained position.
    pub tail: u64,
    /// The drain's published position.
    pub consumer: u64,
    /// The drain's pid (0: none yet).
    pub drain_pid: u32,
    /// The drain's last heartbeat (monotonic ns).
    pub drain_heartbeat_ns: u64,
    /// Dropped records per [`DropReason`] (indexed by `reason as usize`).
    pub drops: [u64; 5],
    /// Overwrite mode: bytes reclaimed.
    pub overwritten_bytes: u64,
    /// Overwrite mode: records reclaimed (a lower bound when a reclaimed block held an
    /// unwritten header).
    pub overwritten_records: u64,
    /// Writer attaches.
    pub attaches: u64,
    /// Clean detaches.
    pub detaches: u64,
    /// Slots of dead writers taken over.
    pub reaped: u64,
    /// Data capacity.
    pub capacity: u64,
}

impl RingStats {
    /// Bytes reserved but not yet consumed by the drain (discard mode), capped at capacity.
    pub fn fill(&self) -> u64 {
        self.reserve_pos
            .saturating_sub(self.consumer.max(self.tail))
            .min(self.capacity)
    }
    /// Total dropped records.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }
}

/// One writer slot as `stat` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterInfo {
    /// Slot index.
    pub slot: u16,
    /// [`layout::slot_state`] value.
    pub state: u8,
    /// Claim generation.
    pub generation: u32,
    /// Owner pid.
    pub pid: u32,
    /// Upper bound of the owner's start time (clock ticks after boot, RING.md §1.3).
    pub start_time: u64,
    /// Reservation position at attach.
    pub attach_pos: u64,
    /// Owner's current span id.
    pub span: [u8; 16],
    /// Whether the owner is alive now.
    pub alive: bool,
    /// Reservations between their CAS and their stamp (announcing rings; 0 otherwise). A dead
    /// owner's non-zero count is a record it was killed in the middle of reserving.
    pub inflight: u64,
}

/// [`Liveness`] from `/proc`: a pid is alive if `/proc/PID/stat` exists and, when the slot
/// recorded a start time, names a start time no later than it (so a reused pid is not
/// mistaken).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcLiveness;

impl Liveness for ProcLiveness {
    fn alive(&self, pid: u32, start_time: u64) -> bool {
        if pid == 0 {
            return false;
        }
        let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // A zombie (or dying) process has exited: it will never write again.
        let state = stat
            .iter()
            .rposition(|&b| b == b')')
            .and_then(|c| stat.get(c + 2).copied());
        if matches!(state, Some(b'Z' | b'X') | None) {
            return false;
        }
        // The slot holds an upper bound of its owner's start time (RING.md §1.3): a process
        // that started later holds a reused pid.
        start_time == 0 || sys::parse_stat_start_time(&stat).is_some_and(|t| t <= start_time)
    }
}

/// [`Liveness`] for writers themselves: `kill(pid, 0)`, no allocation, no file access.
#[derive(Debug, Clone, Copy, Default)]
pub struct KillLiveness;

impl Liveness for KillLiveness {
    fn alive(&self, pid: u32, _start_time: u64) -> bool {
        sys::pid_exists(pid)
    }
}
