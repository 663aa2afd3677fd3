//! Builds the C shim: the variadic entry points (`execl*`, `open*`, `clone`) that stable Rust
//! cannot define, and the old-glibc compatibility definitions (`src/c/compat.c`).
//!
//! Also links the unwinder statically (`libgcc_eh.a`, whole): otherwise every traced process
//! would load `libgcc_s.so.1`, whose constructor probes the CPU with `cpuid` — a trap to the
//! hypervisor on virtual machines — adding a measurable share to every fork+exec.
use std::process::Command;

fn main() {
    if let Ok(o) = Command::new("cc")
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    {
        let p = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if let Some(dir) = std::path::Path::new(&p)
            .parent()
            .filter(|_| p.starts_with('/'))
        {
            println!("cargo:rustc-link-search=native={}", dir.display());
            println!("cargo:rustc-link-lib=static:+whole-archive=gcc_eh");
        }
    }
    println!("cargo:rerun-if-changed=src/c/shim.c");
    println!("cargo:rerun-if-changed=src/c/compat.c");
    // Linked whole: compat.c's definitions must be in the link before the standard library
    // that references them (see that file).
    let out = std::env::var("OUT_DIR").unwrap();
    println!("cargo:rustc-link-search=native={out}");
    println!("cargo:rustc-link-lib=static:+whole-archive=substrate_shim");
    cc::Build::new()
        .cargo_metadata(false)
        .file("src/c/shim.c")
        .file("src/c/compat.c")
        .flag_if_supported("-fvisibility=default")
        .flag_if_supported("-fno-stack-protector")
        .warnings(true)
        .extra_warnings(true)
        .compile("substrate_shim");
}
