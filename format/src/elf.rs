//! Whether an executable is one the preload can enter: an ELF file without a `PT_INTERP`
//! program header (static, or static-pie) is started by the kernel without the dynamic loader,
//! which is what reads `LD_PRELOAD`. One parser for the preload (reading with raw `pread`) and
//! the drain (reading a file).

/// Whether the executable read by `read(buf, offset) -> bytes read` is an ELF executable
/// without `PT_INTERP`. Anything else (a script, another format, a big-endian ELF, a short or
/// lying header) is `false`: not ours to judge. No allocation.
pub fn is_static_executable(read: &mut dyn FnMut(&mut [u8], u64) -> usize) -> bool {
    // The first KiB: the ELF header, and the program headers of most executables (they follow
    // it at offset 64).
    let mut first = [0u8; 1024];
    let got = read(&mut first, 0);
    let h = &first[..64];
    if got < 52 || &h[..4] != b"\x7fELF" || h[5] != 1 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([h[o], h[o + 1]]) as u64;
    let (phoff, phentsize, phnum) = match h[4] {
        2 => (
            u64::from_le_bytes(h[32..40].try_into().unwrap_or_default()),
            u16_at(54),
            u16_at(56),
        ),
        1 => (
            u32::from_le_bytes(h[28..32].try_into().unwrap_or_default()) as u64,
            u16_at(42),
            u16_at(44),
        ),
        _ => return false,
    };
    if phentsize < 4 || phnum == 0 {
        return false;
    }
    // Program headers in chunks of up to 1 KiB: one read for most executables.
    let mut buf = [0u8; 1024];
    let per = (buf.len() as u64 / phentsize).max(1);
    let mut i = 0;
    while i < phnum.min(256) {
        let n = per.min(phnum - i);
        let want = (n * phentsize) as usize;
        // A lying header must not overflow: checked arithmetic, and the file decides.
        let Some(at) = phoff.checked_add(i * phentsize) else {
            return false;
        };
        if want > buf.len() {
            return false;
        }
        match first.get(at as usize..).and_then(|r| r.get(..want)) {
            Some(have) if at + (want as u64) <= got as u64 => buf[..want].copy_from_slice(have),
            _ if read(&mut buf[..want], at) != want => return false,
            _ => {}
        }
        for k in 0..n as usize {
            let o = k * phentsize as usize;
            if u32::from_le_bytes([buf[o], buf[o + 1], buf[o + 2], buf[o + 3]]) == libc::PT_INTERP {
                return false;
            }
        }
        i += n;
    }
    // Only executables can be exec'd; a shared object without PT_INTERP would fail to exec.
    u16_at(16) == libc::ET_EXEC as u64 || u16_at(16) == libc::ET_DYN as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> bool {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(path).unwrap();
        is_static_executable(&mut |b, off| f.read_at(b, off).unwrap_or(0))
    }

    #[test]
    #[cfg_attr(miri, ignore)] // reads files
    fn dynamic_programs_and_scripts_are_not_static() {
        assert!(!file("/bin/sh"));
        assert!(!file("/usr/bin/env"));
        assert!(!file("/etc/passwd"));
    }

    #[test]
    fn short_and_lying_headers_are_not_static() {
        let mut elf = [0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[32..40].copy_from_slice(&u64::MAX.to_le_bytes()); // phoff
        elf[54] = 56;
        elf[56] = 3;
        let mut read = |b: &mut [u8], off: u64| {
            let off = off.min(elf.len() as u64) as usize;
            let n = b.len().min(elf.len() - off);
            b[..n].copy_from_slice(&elf[off..off + n]);
            n
        };
        assert!(!is_static_executable(&mut read));
        assert!(!is_static_executable(&mut |_, _| 0));
    }
}
