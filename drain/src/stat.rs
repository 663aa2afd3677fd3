//! `substrate-drain stat RING`: header, capacity, fill, counters and writers, read-only.

use std::path::Path;
use std::process::ExitCode;

use format::layout::slot_state;
use format::{ids, DropReason, ProcLiveness, Ring};

/// Print the state of the ring at `path`.
pub fn run(path: &Path) -> ExitCode {
    let ring = match Ring::open_read_only(path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("substrate-drain: {}", drain::ring_error(path, &e));
            return ExitCode::from(2);
        }
    };
    let h = ring.header();
    let g = ring.geometry();
    let st = ring.stats();
    println!("ring        {}", path.display());
    println!("version     {}", h.version.get());
    println!("mode        {:?}", ring.mode());
    println!("session     {}", ids::uuid_string(&ring.session_id()));
    println!(
        "created     {} (pid {})",
        drain::timefmt::rfc3339(h.created_unix_ns.get() as i128),
        h.creator_pid.get()
    );
    println!(
        "capacity    {} bytes, block {} bytes, {} writer slots",
        g.capacity, g.block, g.slots
    );
    println!("reserved    {} bytes in all", st.reserve_pos);
    println!("consumed    {} (drain pid {})", st.consumer, st.drain_pid);
    println!(
        "fill        {} bytes ({:.1}%)",
        st.fill(),
        st.fill() as f64 * 100.0 / g.capacity as f64
    );
    let drops: Vec<String> = DropReason::ALL
        .iter()
        .map(|r| format!("{} {}", r.name(), st.drops[*r as usize]))
        .collect();
    println!("dropped     {} ({})", st.dropped(), drops.join(", "));
    if ring.mode() == format::Mode::Overwrite {
        println!(
            "overwritten {} records, {} bytes",
            st.overwritten_records, st.overwritten_bytes
        );
    }
    println!(
        "writers     {} attached, {} detached, {} reaped",
        st.attaches, st.detaches, st.reaped
    );
    for w in ring.writers(&ProcLiveness) {
        let state = match w.state {
            slot_state::ACTIVE => "active",
            slot_state::CLAIMING => "claiming",
            slot_state::DEAD => "dead",
            _ => continue,
        };
        let inflight = match w.inflight {
            0 => String::new(),
            n => format!(" ({n} in flight)"),
        };
        println!(
            "  slot {:<5} pid {:<8} {:<8} {} {}{inflight}",
            w.slot,
            w.pid,
            state,
            if w.alive { "alive" } else { "gone " },
            ids::span_string(&w.span)
        );
    }
    ExitCode::SUCCESS
}
