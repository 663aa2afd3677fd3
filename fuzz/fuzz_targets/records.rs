//! Fuzz the record decoder: any kind, any payload, any ring format version.
//! `AnyEvent::decode_version` must refuse or decode without panicking, and every variable field
//! it yields lies inside the payload.
//!
//! The first two input bytes pick the kind (its top bits the version, 1 to 4: version 1 and 2
//! rings have their own `process_start` layout); the rest is the payload. The stable counterpart,
//! run in CI, is `tests/tests/mutation_fuzz.rs`.
//! Run: `cd fuzz && cargo +nightly fuzz run records -- -max_total_time=600`
#![no_main]

use format::AnyEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((kind, payload)) = data.split_first_chunk::<2>() else {
        return;
    };
    let raw = u16::from_le_bytes(*kind);
    let (kind, version) = (raw % 16, u32::from(raw >> 14) + 1);
    if let Ok(ev) = AnyEvent::decode_version(version, kind, payload) {
        let _ = ev.ev().pid.get();
        if let Some(v) = ev.vars() {
            let range = payload.as_ptr_range();
            for field in v {
                assert!(range.start <= field.as_ptr() && field.as_ptr_range().end <= range.end);
            }
        }
    }
});
