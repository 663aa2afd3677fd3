//! Write seed inputs for the `reader` fuzz target (`fuzz/fuzz_targets/reader.rs`): small real
//! rings of both modes with records of many sizes, a BUSY record and, in overwrite mode,
//! several laps, in the target's two input forms (a whole ring file behind an even first byte;
//! the control words and the data area behind an odd one).
//!
//! Run: `cargo run --release -p format --example ring_seeds -- fuzz/corpus/reader`

use std::sync::atomic::Ordering::Relaxed;

use format::mem::Mem;
use format::{CreateOptions, Mode, Ring, Writer, KIND_USER};

fn main() {
    let Some(out) = std::env::args().nth(1) else {
        eprintln!("usage: ring_seeds DIR");
        std::process::exit(2);
    };
    let out = std::path::PathBuf::from(out);
    std::fs::create_dir_all(&out).expect("create the output directory");
    let tmp = tempfile::tempdir().expect("a temporary directory");
    for (k, mode) in [Mode::Discard, Mode::Overwrite].into_iter().enumerate() {
        let path = tmp.path().join(format!("ring-{k}"));
        // The shape the target uses: 8 KiB of data in 4 KiB blocks, 2 writer slots.
        let opts = CreateOptions {
            capacity: 8192,
            block_size: 4096,
            mode,
            writer_slots: 2,
            ..Default::default()
        };
        let ring = Ring::create(&path, &opts).expect("create a ring");
        let w = Writer::attach(&ring).expect("attach");
        let records = if mode == Mode::Overwrite { 300 } else { 40 };
        for i in 0..records {
            let _ = w.write_bytes(KIND_USER, &vec![i as u8; (i * 7) % 90]);
        }
        std::mem::forget(w.claim(KIND_USER, 24).expect("claim")); // left BUSY
        std::mem::forget(w); // and never detached
        let mut whole = vec![0u8];
        whole.extend_from_slice(&std::fs::read(&path).expect("read the ring"));
        std::fs::write(out.join(format!("whole-{k}")), whole).expect("write a seed");
        let (g, mem) = (ring.geometry(), ring.mem());
        let mut parts = vec![1u8 | (k as u8) << 1];
        for i in 0..8 {
            parts.extend_from_slice(&mem.load(g.control + 128 * i, Relaxed).to_le_bytes());
        }
        let mut data = vec![0u8; g.capacity as usize];
        mem.read_bytes(g.data, &mut data);
        parts.extend_from_slice(&data);
        std::fs::write(out.join(format!("parts-{k}")), parts).expect("write a seed");
    }
}
