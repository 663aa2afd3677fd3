//! Fuzz the record decoder: any kind, any payload. `AnyEvent::decode` must refuse or decode
//! without panicking, and every variable field it yields lies inside the payload.
//!
//! The first two input bytes pick the kind; the rest is the payload. The stable counterpart,
//! run in CI, is `tests/tests/mutation_fuzz.rs`.
//! Run: `cd fuzz && cargo +nightly fuzz run records -- -max_total_time=600`
#![no_main]

use format::AnyEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((kind, payload)) = data.split_first_chunk::<2>() else {
        return;
    };
    let kind = u16::from_le_bytes(*kind) % 16;
    if let Ok(ev) = AnyEvent::decode(kind, payload) {
        let _ = ev.ev().pid.get();
        if let Some(v) = ev.vars() {
            let range = payload.as_ptr_range();
            for field in v {
                assert!(range.start <= field.as_ptr() && field.as_ptr_range().end <= range.end);
            }
        }
    }
});
