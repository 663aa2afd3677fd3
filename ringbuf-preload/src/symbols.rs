//! Finding the real functions without `dlsym`: a walk of the loaded objects
//! (`dl_iterate_phdr`) and their GNU hash tables.
//!
//! `dlsym(RTLD_NEXT, …)` would do, but glibc 2.34 moved it into libc under a new symbol version,
//! so a library calling it would not load on the older glibc of older LTS distributions. This
//! module does the same lookup by hand: the first object *after this library* in load order
//! (the order of the global search scope for the objects loaded at start) whose dynamic symbol
//! table defines the name with its default version. It allocates nothing and makes no system
//! call, so it is safe in any hook.

use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int, c_void, CStr};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering::*};

/// An entry of a dynamic section (`Elf64_Dyn`).
#[repr(C)]
struct Dyn {
    d_tag: i64,
    d_un: u64,
}

/// What a walk looks for and found.
struct Search<'a> {
    want: Want<'a>,
    me: usize,
    passed_me: bool,
    found: *mut c_void,
    my_name: *const c_char,
}

fn gnu_hash(name: &[u8]) -> u32 {
    name.iter()
        .fold(5381u32, |h, &c| h.wrapping_mul(33).wrapping_add(c as u32))
}

/// Whether `addr` lies in one of the object's loaded segments.
///
/// # Safety
/// `info` is what `dl_iterate_phdr` passed.
unsafe fn contains(info: &libc::dl_phdr_info, addr: usize) -> bool {
    // SAFETY: dlpi_phdr points to dlpi_phnum program headers.
    let phdrs = unsafe { core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    phdrs.iter().any(|p| {
        let start = info.dlpi_addr as usize + p.p_vaddr as usize;
        p.p_type == libc::PT_LOAD && (start..start + p.p_memsz as usize).contains(&addr)
    })
}

/// Where one loaded object's dynamic symbol tables are (absolute addresses).
#[derive(Clone, Copy)]
struct Tables {
    base: usize,
    symtab: usize,
    strtab: usize,
    gnu_hash: usize,
    versym: usize,
}

/// Read an object's dynamic section for its symbol tables; `None` if it has no GNU hash table.
///
/// # Safety
/// `info` is what `dl_iterate_phdr` passed: the object is loaded and its tables are mapped.
unsafe fn tables(info: &libc::dl_phdr_info) -> Option<Tables> {
    let base = info.dlpi_addr as usize;
    // SAFETY: as in `contains`.
    let phdrs = unsafe { core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let dynamic = phdrs.iter().find(|p| p.p_type == libc::PT_DYNAMIC)?;
    // The loader relocates the pointers of the dynamic section in place, except where that
    // section is read-only (the vDSO): then they are still relative to the base.
    let fix = |p: u64| {
        if (p as usize) < base {
            base + p as usize
        } else {
            p as usize
        }
    };
    let mut t = Tables {
        base,
        symtab: 0,
        strtab: 0,
        gnu_hash: 0,
        versym: 0,
    };
    let mut d = (base + dynamic.p_vaddr as usize) as *const Dyn;
    loop {
        // SAFETY: the dynamic section is an array ended by DT_NULL.
        let e = unsafe { &*d };
        match e.d_tag as u32 {
            0 => break,
            6 => t.symtab = fix(e.d_un),             // DT_SYMTAB
            5 => t.strtab = fix(e.d_un),             // DT_STRTAB
            0x6fff_fef5 => t.gnu_hash = fix(e.d_un), // DT_GNU_HASH
            0x6fff_fff0 => t.versym = fix(e.d_un),   // DT_VERSYM
            _ => {}
        }
        // SAFETY: not past DT_NULL yet.
        d = unsafe { d.add(1) };
    }
    (t.symtab != 0 && t.strtab != 0 && t.gnu_hash != 0).then_some(t)
}

/// Look `name` up in one object's dynamic symbol table (GNU hash); its address if defined there
/// with a default (non-hidden) version.
///
/// # Safety
/// `t` describes a loaded object's tables (from [`tables`]).
unsafe fn lookup(t: &Tables, name: &[u8]) -> *mut c_void {
    // SAFETY: (the whole block) the GNU hash table, symbol table, string table and version
    // table of a loaded object, laid out as the ELF gABI and the GNU hash format define them.
    unsafe {
        let hdr = t.gnu_hash as *const u32;
        let (nbuckets, symoffset, bloom_size) = (*hdr, *hdr.add(1), *hdr.add(2));
        if nbuckets == 0 {
            return core::ptr::null_mut();
        }
        let buckets = (t.gnu_hash + 16 + bloom_size as usize * 8) as *const u32;
        let chain = buckets.add(nbuckets as usize);
        let h = gnu_hash(name);
        let mut i = *buckets.add((h % nbuckets) as usize);
        if i < symoffset {
            return core::ptr::null_mut();
        }
        loop {
            let h2 = *chain.add((i - symoffset) as usize);
            if h | 1 == h2 | 1 {
                let sym = &*((t.symtab as *const libc::Elf64_Sym).add(i as usize));
                let hidden =
                    t.versym != 0 && *((t.versym as *const u16).add(i as usize)) & 0x8000 != 0;
                let sname = (t.strtab + sym.st_name as usize) as *const u8;
                if sym.st_shndx != 0 && !hidden && same_name(sname, name) {
                    let addr = (t.base + sym.st_value as usize) as *mut c_void;
                    // STT_GNU_IFUNC: the address is the resolver's; ask it.
                    if sym.st_info & 0xf == 10 {
                        let resolve: extern "C" fn() -> *mut c_void = core::mem::transmute(addr);
                        return resolve();
                    }
                    return addr;
                }
            }
            if h2 & 1 != 0 {
                return core::ptr::null_mut();
            }
            i += 1;
        }
    }
}

/// Whether the C string at `s` is `name`, comparing no further than the first difference (no
/// `strlen` of every candidate: the string table's NUL ends a shorter one, as a mismatch).
///
/// # Safety
/// `s` points to a NUL-terminated string.
unsafe fn same_name(s: *const u8, name: &[u8]) -> bool {
    for (k, &b) in name.iter().enumerate() {
        // SAFETY: every byte before index k matched a byte of `name` (none is NUL: a symbol name
        // has none), so the string is at least k + 1 bytes long with its NUL.
        if unsafe { *s.add(k) } != b {
            return false;
        }
    }
    // SAFETY: as above, the string has at least name.len() bytes before (or at) its NUL.
    unsafe { *s.add(name.len()) == 0 }
}

/// How many objects after this library [`NextObjects`] holds; more are searched one by one.
const MAX_NEXT: usize = 16;

/// The symbol tables of the objects loaded after this library, in search order, read in one
/// walk: the constructor looks every real function up in them without walking again.
pub struct NextObjects {
    tables: [Option<Tables>; MAX_NEXT],
    /// More objects followed than fit.
    overflow: bool,
}

impl NextObjects {
    /// The definition of `name` in the first of these objects that has one (as [`next`]).
    pub fn find(&self, name: &CStr) -> *mut c_void {
        for t in self.tables.iter().flatten() {
            // SAFETY: the tables of an object loaded at start (never unloaded).
            let p = unsafe { lookup(t, name.to_bytes()) };
            if !p.is_null() {
                return p;
            }
        }
        if self.overflow {
            walk(Want::Symbol(name)).found
        } else {
            core::ptr::null_mut()
        }
    }
}

/// What a walk looks for.
enum Want<'a> {
    /// A symbol.
    Symbol(&'a CStr),
    /// This library's own entry.
    Me,
    /// The tables of every object after this library (kept out of `Search` so that the
    /// lookups a hook may make keep a small stack frame).
    Objects(&'a mut NextObjects),
}

unsafe extern "C" fn visit(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: `data` is the Search of `walk`; `info` is valid for this call.
    let (s, info) = unsafe { (&mut *(data as *mut Search), &*info) };
    // SAFETY: info comes from dl_iterate_phdr.
    if unsafe { contains(info, s.me) } {
        s.passed_me = true;
        s.my_name = info.dlpi_name;
        return i32::from(matches!(s.want, Want::Me));
    }
    if !s.passed_me {
        return 0;
    }
    // SAFETY: as above.
    let Some(t) = (unsafe { tables(info) }) else {
        return 0;
    };
    match &mut s.want {
        Want::Me => 1,
        Want::Symbol(name) => {
            let name = *name;
            // SAFETY: tables of a loaded object.
            let p = unsafe { lookup(&t, name.to_bytes()) };
            if p.is_null() {
                return 0;
            }
            s.found = p;
            1
        }
        Want::Objects(objects) => {
            match objects.tables.iter_mut().find(|x| x.is_none()) {
                Some(slot) => *slot = Some(t),
                None => objects.overflow = true,
            }
            0
        }
    }
}

fn walk(want: Want<'_>) -> Search<'_> {
    let mut s = Search {
        want,
        me: walk as fn(Want<'_>) -> Search<'_> as usize,
        passed_me: false,
        found: core::ptr::null_mut(),
        my_name: core::ptr::null(),
    };
    // SAFETY: the callback only reads what the loader passes and writes `s`.
    unsafe { libc::dl_iterate_phdr(Some(visit), &mut s as *mut Search as *mut c_void) };
    s
}

/// The symbol tables of every object loaded after this library, for many lookups.
fn next_objects() -> NextObjects {
    let mut objects = NextObjects {
        tables: [None; MAX_NEXT],
        overflow: false,
    };
    walk(Want::Objects(&mut objects));
    objects
}

/// The tables the constructor read ([`save_next_objects`]): written once, then published by
/// [`SAVED_READY`] and only read.
struct SavedObjects(UnsafeCell<MaybeUninit<NextObjects>>);
// SAFETY: written once, by the constructor, before SAVED_READY's release store; read only after
// an acquire load saw it set.
unsafe impl Sync for SavedObjects {}
static SAVED: SavedObjects = SavedObjects(UnsafeCell::new(MaybeUninit::uninit()));
static SAVED_READY: AtomicBool = AtomicBool::new(false);
static SAVING: AtomicBool = AtomicBool::new(false);

/// Read the symbol tables of every object after this library once (one `dl_iterate_phdr`
/// walk, at the constructor) and keep them: from then on [`next`] looks a name up in them
/// without a walk, which takes the loader's lock and would not be safe in every hook (a signal
/// handler, a forked child of a threaded parent). The objects loaded at start are never
/// unloaded. Returns them; `None` if they were saved already.
pub fn save_next_objects() -> Option<&'static NextObjects> {
    // Relaxed: only one caller may write the cell; SAVED_READY publishes it.
    if SAVING.swap(true, Relaxed) {
        return None;
    }
    let p = SAVED.0.get().cast::<NextObjects>();
    // SAFETY: the one writer (the swap above), before publication.
    unsafe { p.write(next_objects()) };
    // Release: the tables are written before anyone sees SAVED_READY.
    SAVED_READY.store(true, Release);
    // SAFETY: just written, never written again.
    Some(unsafe { &*p })
}

/// The tables [`save_next_objects`] kept, once published.
pub fn saved() -> Option<&'static NextObjects> {
    // Acquire: pairs with the release store in `save_next_objects`.
    SAVED_READY
        .load(Acquire)
        // SAFETY: written before SAVED_READY was set, and never again.
        .then(|| unsafe { &*SAVED.0.get().cast::<NextObjects>() })
}

/// The definition of `name` in the first object loaded after this library (`RTLD_NEXT`): from
/// the tables the constructor kept, else (a hook running before the constructor) by a walk.
pub fn next(name: &CStr) -> *mut c_void {
    match saved() {
        Some(objects) => objects.find(name),
        None => walk(Want::Symbol(name)).found,
    }
}

/// [`next`] for the C side (`c/compat.c`).
///
/// # Safety
/// `name` is a valid C string.
#[no_mangle]
pub unsafe extern "C" fn substrate_next_symbol(name: *const c_char) -> *mut c_void {
    // SAFETY: caller's contract.
    next(unsafe { CStr::from_ptr(name) })
}

/// This library's file name as the loader knows it (NULL if not found).
pub fn own_name() -> *const c_char {
    walk(Want::Me).my_name
}
