//! The exported names of the variadic functions (`execl`, `execlp`, `execle`, `open`,
//! `open64`, `openat`, `openat64`, `clone`).
//!
//! Their bodies are in C (`c/shim.c`), because stable Rust cannot read C variadic arguments;
//! but a Rust `cdylib` exports only symbols Rust defines. Each name here is a naked function
//! whose only instruction is a tail jump to the hidden C function: registers (including the
//! vector-register count `%al` of a variadic call) and the stack reach the C code exactly as
//! the caller left them.

macro_rules! trampolines {
    ($($name:ident => $target:ident;)*) => {$(
        extern "C" {
            fn $target();
        }

        #[doc = concat!("`", stringify!($name), "`: jumps to the C shim.")]
        ///
        /// # Safety
        /// Same contract as the C function of this name.
        #[unsafe(naked)]
        #[no_mangle]
        pub unsafe extern "C" fn $name() {
            #[cfg(target_arch = "x86_64")]
            core::arch::naked_asm!("jmp {t}", t = sym $target);
            #[cfg(target_arch = "aarch64")]
            core::arch::naked_asm!("b {t}", t = sym $target);
        }
    )*};
}

trampolines! {
    execl => substrate_c_execl;
    execlp => substrate_c_execlp;
    execle => substrate_c_execle;
    open => substrate_c_open;
    open64 => substrate_c_open64;
    openat => substrate_c_openat;
    openat64 => substrate_c_openat64;
    clone => substrate_c_clone;
}

#[cfg(test)]
mod tests {
    use crate::hooks::file::open_sym;
    use format::records::proc_op;

    /// The codes the shim passes to the hooks come from the header `build.rs` generates, and
    /// that header carries the values Rust compiled.
    #[test]
    fn shim_codes_are_the_generated_rust_constants() {
        let header = include_str!(concat!(env!("OUT_DIR"), "/substrate_consts.h"));
        let shim = include_str!("c/shim.c");
        let defined = |name: &str| -> Option<i64> {
            header.lines().find_map(|l| {
                let (n, v) = l.strip_prefix("#define ")?.split_once(' ')?;
                (n == name).then(|| v.parse().ok())?
            })
        };
        let codes: [(&str, i64); 7] = [
            ("SUBSTRATE_PROC_OP_EXECL", proc_op::EXECL.into()),
            ("SUBSTRATE_PROC_OP_EXECLP", proc_op::EXECLP.into()),
            ("SUBSTRATE_PROC_OP_EXECLE", proc_op::EXECLE.into()),
            ("SUBSTRATE_OPEN_SYM_OPEN", open_sym::OPEN.into()),
            ("SUBSTRATE_OPEN_SYM_OPEN64", open_sym::OPEN64.into()),
            ("SUBSTRATE_OPEN_SYM_OPENAT", open_sym::OPENAT.into()),
            ("SUBSTRATE_OPEN_SYM_OPENAT64", open_sym::OPENAT64.into()),
        ];
        for (name, v) in codes {
            assert_eq!(defined(name), Some(v), "{name} in substrate_consts.h");
        }
        // Each hook call in the shim passes one of those names, never a number of its own.
        let mut calls = 0;
        for hook in ["substrate_execl_hook(", "substrate_open_hook("] {
            for (i, _) in shim.match_indices(hook) {
                let arg = shim[i + hook.len()..]
                    .split(',')
                    .next()
                    .unwrap_or("")
                    .trim();
                if arg.starts_with("int ") {
                    continue; // the declaration
                }
                assert!(
                    codes.iter().any(|(n, _)| *n == arg),
                    "shim.c passes {arg} to {hook}"
                );
                calls += 1;
            }
        }
        assert_eq!(calls, codes.len());
    }
}
