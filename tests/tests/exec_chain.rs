//! One process that execs again and again keeps one writer slot: each new image adopts the slot
//! its previous image held (found by pid and the previous image's span, which the preload passes
//! down), so a chain of execs never runs a ring's writer table out of slots, and no image of it
//! is left holding a slot that looks alive.

use std::process::Command;

use format::{CreateOptions, ProcLiveness, Ring};
use serde_json::Value;
use tests::harness::tools;

#[test]
fn an_exec_chain_in_one_process_keeps_one_writer_slot() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("chain.ring");
    let opts = CreateOptions {
        capacity: 1 << 20,
        writer_slots: 4,
        ..Default::default()
    };
    drop(Ring::create(&ring, &opts).unwrap());
    // Seven images in one process, each execing the next after a pause longer than a clock
    // tick (so that no two images of it take the same start-time bound), in a ring whose
    // writer table has four slots: without adoption the fifth image would find none free.
    let depth = 6;
    let mut script = String::from("exec true");
    for _ in 0..depth {
        script = format!("sleep 0.03; exec sh -c '{}'", script.replace('\'', "'\\''"));
    }
    let out = Command::new("sh")
        .args(["-c", &script])
        .env("LD_PRELOAD", &tools().preload)
        .env("SUBSTRATE_RING", &ring)
        .env_remove("SUBSTRATE_PARENT_IMAGE")
        .output()
        .unwrap();
    let images = depth + 2; // the first sh, `depth` more, and true
    assert!(out.status.success());

    let r = Ring::open_read_only(&ring).unwrap();
    let stats = r.stats();
    assert_eq!(stats.dropped(), 0, "no record lost for want of a slot");
    let o = Command::new(&tools().drain).arg(&ring).output().unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pid = &lines[0]["pid"];
    let chain_pid = pid.as_u64().unwrap() as u32;
    // The chain's process held one slot, claimed once per image; its `sleep` children held
    // others and released them.
    let mine: Vec<_> = r
        .writers(&ProcLiveness)
        .into_iter()
        .filter(|w| w.generation > 0 && w.pid == chain_pid)
        .collect();
    assert_eq!(mine.len(), 1, "one slot for the chain's process: {mine:?}");
    assert_eq!(mine[0].generation as usize, images, "{mine:?}");
    let starts = lines
        .iter()
        .filter(|l| l["event_type"] == "process_start" && &l["pid"] == pid)
        .count();
    assert_eq!(starts, images, "an image start per exec");
    let exits = lines
        .iter()
        .filter(|l| l["event_type"] == "process_exit" && &l["pid"] == pid)
        .count();
    assert_eq!(exits, 1, "the process ends once");
}
