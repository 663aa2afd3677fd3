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
