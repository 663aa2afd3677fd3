//! The interposed functions, one file per family. Every hook reads top to bottom: inert or
//! guarded → straight to the real function; else call the real function, save `errno`,
//! record, restore `errno`, return the real result.

pub mod exec;
pub mod file;
pub mod fork;
pub mod meta;
pub mod net;
pub mod spawn;
