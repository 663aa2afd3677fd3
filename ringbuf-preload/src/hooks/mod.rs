//! The interposed functions, one file per family. Every hook reads top to bottom: not
//! recording ([`crate::lifecycle::recording`]: inert, or inside another hook) → straight to the
//! real function; else call the real function, save its `errno` ([`crate::errno::Saved`]),
//! record, and return the real result, `errno` restored as the guard drops.

pub mod exec;
pub mod file;
pub mod fork;
pub mod meta;
pub mod net;
pub mod spawn;
