//! Fuzz the ring reader with hostile memory.
//!
//! The first input byte picks the case: even, the rest of the input is a whole ring file
//! (header validation); odd, a valid small ring is created and the input overwrites its control
//! area and data area (the reader walking scribbled records). Either way: no panic, no hang, and
//! every record yielded lies within a block.
//!
//! Seeds: `cargo run --release -p format --example ring_seeds -- fuzz/corpus/reader`.
//! Run: `cd fuzz && TMPDIR=/dev/shm cargo +nightly fuzz run reader -- -max_total_time=600 -max_len=32768`
#![no_main]

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use format::mem::Mem;
use format::{CreateOptions, Item, Mode, Reader, ReaderOptions, Ring, Start};
use libfuzzer_sys::fuzz_target;

fn read_all(ring: &Ring) {
    let dead = |_: u32, _: u64| false;
    for start in [Start::Oldest, Start::Consumer] {
        let opts = ReaderOptions {
            start,
            unwritten_grace: Duration::ZERO,
            liveness: Box::new(dead),
        };
        let mut r = Reader::new(ring, opts);
        for _ in 0..10_000 {
            match r.poll() {
                Item::Record(rec) => assert!(rec.payload.len() as u64 <= ring.max_record()),
                Item::Lost(_) => {}
                Item::Waiting(_) => break,
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("ring-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("ring");
    let _ = std::fs::remove_file(&path);
    if which % 2 == 0 {
        std::fs::write(&path, rest).unwrap();
        if let Ok(ring) = Ring::open_read_only(&path) {
            read_all(&ring);
        }
        return;
    }
    let mode = if which & 2 == 0 {
        Mode::Discard
    } else {
        Mode::Overwrite
    };
    let opts = CreateOptions {
        capacity: 8192,
        block_size: 4096,
        mode,
        writer_slots: 2,
        ..Default::default()
    };
    let ring = Ring::create(&path, &opts).unwrap();
    let g = ring.geometry();
    let mem = ring.mem();
    // First 64 bytes: the control words (reserve, tail, consumer, ...), one per 8 bytes.
    let (ctl, body) = rest.split_at(rest.len().min(64));
    for (i, w) in ctl.chunks(8).enumerate() {
        let mut b = [0u8; 8];
        b[..w.len()].copy_from_slice(w);
        mem.store(g.control + 128 * i as u64, u64::from_le_bytes(b), Relaxed);
    }
    // The rest: the data area.
    let body = &body[..body.len().min(g.capacity as usize)];
    mem.write_bytes(g.data, body);
    read_all(&ring);
});
