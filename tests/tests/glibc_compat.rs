//! The preload library loads on the glibc of older LTS distributions: it requires no symbol
//! version newer than GLIBC_2.18 (Debian 10 and RHEL 8 have 2.28, Ubuntu 18.04 has 2.27). It
//! finds the real functions without `dlsym` (moved to a new version in 2.34) and defines,
//! hidden, what the standard library and the unwinder would otherwise take from newer glibc
//! (`ringbuf-preload/src/c/compat.c`). Checked here on the built library's version needs; the
//! library was also run under Debian 11's glibc 2.31 loader (see RELIABILITY.md).

use std::process::Command;

use tests::harness::tools;

#[test]
fn the_preload_library_needs_no_glibc_version_newer_than_2_18() {
    let lib = &tools().preload;
    let o = Command::new("readelf")
        .args(["-V", "--wide"])
        .arg(lib)
        .output()
        .expect("readelf (binutils)");
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    let needs: Vec<(u32, u32)> = text
        .lines()
        .filter_map(|l| l.split("Name: GLIBC_").nth(1))
        .filter_map(|v| {
            let v = v.split_whitespace().next()?;
            let mut it = v.split('.').map(|n| n.parse::<u32>().ok());
            Some((it.next()??, it.next().flatten().unwrap_or(0)))
        })
        .collect();
    assert!(
        !needs.is_empty(),
        "readelf listed the library's version needs:\n{text}"
    );
    let newest = needs.iter().max().unwrap();
    assert!(
        *newest <= (2, 18),
        "the library needs GLIBC_{}.{}:\n{text}",
        newest.0,
        newest.1
    );
    let deps = Command::new("readelf")
        .args(["-d", "--wide"])
        .arg(lib)
        .output()
        .unwrap();
    let deps = String::from_utf8_lossy(&deps.stdout);
    let needed: Vec<&str> = deps.lines().filter(|l| l.contains("(NEEDED)")).collect();
    assert!(
        needed
            .iter()
            .all(|l| l.contains("libc.so.6") || l.contains("ld-linux")),
        "no dependency but libc: {needed:?}"
    );
}
