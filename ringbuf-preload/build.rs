//! Builds the C shim: the variadic entry points (`execl*`, `open*`, `clone`) that stable Rust
//! cannot define.
fn main() {
    println!("cargo:rerun-if-changed=src/c/shim.c");
    cc::Build::new()
        .file("src/c/shim.c")
        .flag_if_supported("-fvisibility=default")
        .flag_if_supported("-fno-stack-protector")
        .warnings(true)
        .extra_warnings(true)
        .compile("substrate_shim");
}
