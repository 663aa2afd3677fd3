//! Shared by the tests that run the protocol over memory of their own (the loom model, the
//! in-memory run for Miri) rather than over a ring file.

use format::layout::Mode;
use format::protocol::Geometry;

/// A small hand-made layout: control area at 0, two writer slots at 1024, the block table at
/// 1152, the data area at 2048 (`capacity` bytes in blocks of `block`, at most 56 blocks).
pub fn small_geometry(mode: Mode, capacity: u64, block: u64) -> Geometry {
    assert!(
        capacity / block * 16 <= 2048 - 1152,
        "the block table must fit"
    );
    Geometry {
        mode,
        control: 0,
        writers: 1024,
        slots: 2,
        blocks: 1024 + 128,
        data: 2048,
        capacity,
        block,
        announce: mode == Mode::Overwrite,
    }
}
