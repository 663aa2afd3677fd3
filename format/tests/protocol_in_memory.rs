//! The protocol over private memory instead of a file mapping, so that it also runs under Miri,
//! which checks the `unsafe` underneath (`MapMem`'s raw-pointer atomics and copies) for
//! undefined behaviour: out-of-bounds or misaligned accesses, references into shared memory.
//!
//! Both modes, several laps, records of every size class, the reader side (`peek`,
//! `copy_record`, `scan`) after every few writes, and in overwrite mode a writer that dies
//! between its reservation and its stamp.
//!
//! Run under Miri: `cargo +nightly miri test -p format --test protocol_in_memory`

use std::sync::atomic::Ordering::{Relaxed, Release};

use format::layout::{self, ctl, slot_state, Mode};
use format::mem::{MapMem, Mem};
use format::protocol::{self, Geometry, Peek, Producer};

const KIND: u16 = 0x8000;

mod common;

/// Two writer slots, four blocks of 1 KiB.
fn geometry(mode: Mode) -> Geometry {
    common::small_geometry(mode, 4096, 1024)
}

/// Slot 0 is this (live) process, slot 1 a dead one.
fn alive(pid: u32, _: u64) -> bool {
    pid == 100
}

/// Private memory for `g`, viewed as a `MapMem`, with both slots attached.
fn memory(g: &Geometry) -> (Vec<u64>, MapMem) {
    let mut words = vec![0u64; ((g.data + g.capacity) / 8) as usize];
    let len = words.len() as u64 * 8;
    // SAFETY: the vector outlives every use of the view (both live in the test), is 8-aligned,
    // and is only accessed through the view from here on.
    let mem = unsafe { MapMem::new(words.as_mut_ptr().cast(), len) };
    for (i, pid) in [(0u16, 100u32), (1, 101)] {
        mem.store(
            g.slot_off(i),
            layout::slot_ctl(slot_state::ACTIVE, 1, pid),
            Release,
        );
    }
    (words, mem)
}

/// Read everything from `pos` on; every record must carry its own position (first 8 payload
/// bytes). Returns the new position and how many records were read.
fn read(mem: &MapMem, g: &Geometry, mut pos: u64) -> (u64, u64) {
    let mut buf = vec![0u8; g.block as usize];
    let mut got = 0;
    for _ in 0..10_000 {
        match protocol::peek(mem, g, pos) {
            Peek::Empty => return (pos, got),
            Peek::Skip(to) => pos = to,
            Peek::Behind { tail } => pos = tail,
            Peek::Header(w0) => {
                let span = layout::align_up(layout::rec_len(w0), 8);
                if layout::rec_flags(w0) & layout::rec::BUSY == 0 {
                    if let Some(len) = protocol::copy_record(mem, g, pos, w0, &mut buf) {
                        assert!(len >= 24);
                        assert_eq!(buf[16..24], pos.to_le_bytes(), "record at {pos}");
                        got += 1;
                    }
                }
                pos += span;
            }
            Peek::Unwritten | Peek::Corrupt => {
                let head = mem.load(g.ctl(ctl::RESERVE), Relaxed);
                pos = protocol::scan(mem, g, pos, head, g.capacity).unwrap_or(head);
            }
        }
    }
    panic!("reader did not settle");
}

fn write(p: &Producer<MapMem>, size: u64) -> bool {
    let Ok(c) = p.reserve(KIND, 16 + size, &alive) else {
        return false;
    };
    let mut payload = vec![0xA5u8; size as usize];
    payload[..8].copy_from_slice(&c.pos.to_le_bytes());
    p.mem.write_bytes(c.payload_off, &payload);
    p.commit(&c);
    true
}

#[test]
fn both_modes_over_several_laps_read_back_intact() {
    for mode in [Mode::Discard, Mode::Overwrite] {
        let g = geometry(mode);
        let (_words, mem) = memory(&g);
        let p = Producer::new(mem, g, 0);
        let (mut pos, mut read_total, mut written) = (0, 0, 0);
        for i in 0..120u64 {
            // 8 to 400 bytes of payload: several records a block, some padding at block ends.
            if write(&p, 8 + (i * 37) % 393) {
                written += 1;
            }
            if i % 5 == 4 {
                let (to, got) = read(&mem, &g, pos);
                pos = to;
                read_total += got;
                if mode == Mode::Discard {
                    mem.store(g.ctl(ctl::CONSUMER), pos, Release);
                }
            }
        }
        read_total += read(&mem, &g, pos).1;
        assert!(
            mem.load(g.ctl(ctl::RESERVE), Relaxed) > 2 * g.capacity,
            "{mode:?}: laps"
        );
        if mode == Mode::Discard {
            assert_eq!(read_total, written, "discard: every record read");
        } else {
            assert!(read_total > 0 && read_total <= written);
        }
    }
}

#[test]
fn overwrite_reclaims_past_a_writer_dead_before_its_stamp() {
    let g = geometry(Mode::Overwrite);
    let (_words, mem) = memory(&g);
    // Slot 1 (pid 101, dead) reserves and never stamps; its in-flight count stays 1.
    let dead = Producer::new(mem, g, 1);
    dead.reserve_range(16 + 64, &alive).unwrap();
    let p = Producer::new(mem, g, 0);
    for i in 0..100u64 {
        assert!(write(&p, 8 + (i * 13) % 200), "record {i} dropped");
    }
    assert!(
        mem.load(g.ctl(ctl::TAIL), Relaxed) > g.block,
        "the gap was reclaimed past"
    );
    let (_, got) = read(&mem, &g, 0);
    assert!(got > 0);
}
