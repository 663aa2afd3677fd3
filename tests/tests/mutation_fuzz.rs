//! Stable-toolchain fuzzing of the reader and the record decoder (CI has no nightly for
//! `cargo fuzz`, whose targets are in `fuzz/`): real rings written by the preload under real
//! programs are the seeds; each iteration mutates a copy (bit flips, random bytes over the
//! control area, the writer table and the data, header fields, truncation) and decodes it all
//! through the reader and `AnyEvent::decode`, then through the `substrate-drain` binary for a
//! sample. Nothing may panic, hang or allocate without bound; a bad header must be refused.
//!
//! `FUZZ_ITERS` sets the iterations (default 3000; a long run: `FUZZ_ITERS=200000 cargo test
//! --release -p tests --test mutation_fuzz`).

use std::process::Command;
use std::time::{Duration, Instant};

use format::{AnyEvent, EventHeader, Item, Kind, Reader, ReaderOptions, Ring, Start};
use tests::harness::{compile, env_knob, tools};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Seeds: rings written by the preload under real programs, both modes.
fn seeds(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let t = tools();
    let bin = compile(dir, "scenarios.c", "scenarios", &["-O2"]);
    let mut out = vec![];
    for (mode, args) in [
        ("discard", vec!["files", "/tmp"]),
        ("overwrite", vec!["numbered-opens", "3000", "0"]),
        ("discard", vec!["exec", "system", "X"]),
    ] {
        let ring = dir.join(format!("seed-{}.ring", out.len()));
        let o = Command::new(&t.drain)
            .args(["create", "--size", "128K", "--mode", mode])
            .arg(&ring)
            .output()
            .unwrap();
        assert!(o.status.success());
        let st = Command::new(&bin)
            .args(&args)
            .current_dir(dir)
            .env("LD_PRELOAD", &t.preload)
            .env("SUBSTRATE_RING", &ring)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        out.push(std::fs::read(&ring).unwrap());
    }
    out
}

fn decode_all(path: &std::path::Path) -> (u64, u64) {
    let Ok(ring) = Ring::open_read_only(path) else {
        return (0, 0);
    };
    let (mut records, mut lost) = (0, 0);
    for start in [Start::Oldest, Start::Consumer, Start::At(12345)] {
        let opts = ReaderOptions {
            start,
            unwritten_grace: Duration::ZERO,
            liveness: Box::new(|_: u32, _: u64| false),
        };
        let mut r = Reader::new(&ring, opts);
        let t = Instant::now();
        // Unoptimised builds poll less: a scribbled ring can make every poll scan a lap.
        let polls = if cfg!(debug_assertions) {
            20_000
        } else {
            200_000
        };
        for _ in 0..polls {
            match r.poll() {
                Item::Record(rec) => {
                    assert!(rec.payload.len() as u64 <= ring.max_record());
                    if let Ok(ev) = AnyEvent::decode(rec.kind, rec.payload) {
                        let _ = ev.ev().pid.get();
                    }
                    records += 1;
                }
                Item::Lost(_) => lost += 1,
                Item::Waiting(_) => break,
            }
        }
        // A hang detector, not a speed check: generous, and more so for unoptimised builds.
        let bound = Duration::from_secs(if cfg!(debug_assertions) { 30 } else { 5 });
        if t.elapsed() >= bound {
            // Keep the reproducer: the seeds come from real runs, so the mutant is not replayable.
            let keep = std::env::temp_dir().join("mutation_fuzz-slow.ring");
            let _ = std::fs::copy(path, &keep);
            panic!(
                "reader took {:?} from {start:?}; mutant kept at {}",
                t.elapsed(),
                keep.display()
            );
        }
    }
    (records, lost)
}

#[test]
fn mutated_real_rings_never_panic_or_hang_the_reader_or_the_drain() {
    let iters: u64 = env_knob("FUZZ_ITERS", 3000);
    let dir = tempfile::tempdir().unwrap();
    let seeds = seeds(dir.path());
    let path = dir.path().join("mutant.ring");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut opened, mut records, mut lost) = (0u64, 0u64, 0u64);
    for i in 0..iters {
        let mut b = seeds[rng.below(seeds.len())].clone();
        match rng.below(7) {
            0 => {
                for _ in 0..1 + rng.below(16) {
                    let at = rng.below(b.len());
                    b[at] ^= 1 << rng.below(8);
                }
            }
            1 => {
                // Random bytes somewhere past the header: control, writers, block table, data.
                let at = 144 + rng.below(b.len() - 144);
                let n = 1 + rng.below(64);
                for k in at..(at + n).min(b.len()) {
                    b[k] = rng.next() as u8;
                }
            }
            2 => {
                // A header field (but not the magic) set to something odd.
                let at = 8 + rng.below(128);
                let v = [0u64, 1, u32::MAX as u64, u64::MAX, rng.next()][rng.below(5)];
                for (k, byte) in v.to_le_bytes().iter().enumerate() {
                    if at + k < 144 {
                        b[at + k] = *byte;
                    }
                }
            }
            3 => b.truncate(rng.below(b.len())),
            4 => {
                // Record lengths and positions that lie: smash 8-byte words in the data area.
                let data = b.len() - (128 << 10);
                for _ in 0..1 + rng.below(8) {
                    let at = data + rng.below((128 << 10) / 8) * 8;
                    let v = rng.next();
                    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
                }
            }
            5 => {
                // Targeted: a position word (reserve, tail, consumer) set to what a hostile
                // program would try: past MAX_POS, the top bit, laps ahead, unaligned, zero.
                let ctl = 4096;
                let word = [0usize, 128, 256][rng.below(3)];
                let now = u64::from_le_bytes(b[ctl..ctl + 8].try_into().unwrap());
                let cap = 128u64 << 10;
                let v = [
                    1 << 62,
                    (1 << 62) + 8,
                    0x6000 << 48,
                    1 << 63,
                    u64::MAX - 7,
                    now + cap * (1 + rng.below(1000) as u64),
                    now.wrapping_sub(cap * (1 + rng.below(3) as u64)),
                    now + 1 + rng.below(7) as u64,
                    0,
                ][rng.below(9)];
                b[ctl + word..ctl + word + 8].copy_from_slice(&v.to_le_bytes());
            }
            _ => {
                // The control area's counters (reserve, tail, consumer, drops).
                let at = 4096 + rng.below(8 * 128 / 8) * 8;
                let v = [0u64, u64::MAX, 1 << 62, rng.next()][rng.below(4)];
                if at + 8 <= b.len() {
                    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
                }
            }
        }
        std::fs::write(&path, &b).unwrap();
        let (r, l) = decode_all(&path);
        opened += u64::from(r + l > 0);
        records += r;
        lost += l;
        if i % 500 == 0 {
            // The binary too: exit 0 or 2, one line of error, never a crash.
            let t = Instant::now();
            let o = Command::new(&tools().drain).arg(&path).output().unwrap();
            assert!(
                matches!(o.status.code(), Some(0) | Some(2)),
                "drain crashed on mutant {i}: {:?}",
                o.status
            );
            assert!(t.elapsed() < Duration::from_secs(10));
        }
    }
    eprintln!("mutation fuzz: {iters} mutants, {opened} decodable, {records} records and {lost} loss reports read");
}

#[test]
fn random_payloads_of_every_kind_decode_or_are_refused_never_read_out_of_bounds() {
    let iters: u64 = env_knob("FUZZ_ITERS", 3000u64) * 30;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut ok, mut refused) = (0u64, 0u64);
    let mut buf = vec![0u8; 512];
    for _ in 0..iters {
        let len = rng.below(buf.len());
        for b in &mut buf[..len] {
            *b = rng.next() as u8;
        }
        // Often a plausible var_count and lengths, so that decoding gets past the fixed part.
        let var_count = std::mem::offset_of!(EventHeader, var_count);
        if len > size_of::<EventHeader>() && rng.below(2) == 0 {
            buf[var_count] = rng.below(4) as u8;
            buf[var_count + 1] = 0;
        }
        let payload = &buf[..len];
        match AnyEvent::decode(Kind::ALL[rng.below(Kind::ALL.len())] as u16, payload) {
            Ok(ev) => {
                ok += 1;
                let _ = ev.ev().tid.get();
            }
            Err(_) => refused += 1,
        }
    }
    eprintln!("record decoder: {iters} random payloads, {ok} decoded, {refused} refused");
    assert!(ok > 0 && refused > 0);
}
