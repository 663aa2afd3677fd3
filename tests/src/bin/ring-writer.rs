//! Stress writer: `ring-writer RING WRITER_ID THREADS RECORDS_PER_THREAD`.
//!
//! Attaches to RING and writes numbered, checksummed records from THREADS threads. Prints, on
//! stdout, one line per thread when done: `THREAD written dropped`. Exits without detaching
//! when killed, which is the point of the crash tests.

use std::path::PathBuf;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 5 {
        eprintln!("usage: ring-writer RING WRITER_ID THREADS RECORDS_PER_THREAD");
        std::process::exit(2);
    }
    let ring = format::Ring::open(&PathBuf::from(&a[1])).unwrap_or_else(|e| {
        eprintln!("ring-writer: {e}");
        std::process::exit(2)
    });
    let id: u32 = a[2].parse().unwrap();
    let threads: u32 = a[3].parse().unwrap();
    let n: u64 = a[4].parse().unwrap();
    let w = format::Writer::attach(&ring).unwrap();
    std::thread::scope(|s| {
        for t in 0..threads {
            let w = &w;
            s.spawn(move || {
                let mut buf = Vec::new();
                let (mut ok, mut dropped) = (0u64, 0u64);
                for seq in 0..n {
                    tests::stress::encode(id, t, seq, &mut buf);
                    match w.write_bytes(format::KIND_USER, &buf) {
                        Ok(_) => ok += 1,
                        Err(_) => dropped += 1,
                    }
                }
                println!("{t} {ok} {dropped}");
            });
        }
    });
}
