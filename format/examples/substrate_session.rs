//! How `substrate` traces a command: create the session ring with the `format` crate, run
//! `substrate-drain --follow` on it, start the command with the session environment, and stop
//! the drain once every traced process is gone. See `docs/INTEGRATION.md`.
//!
//! Run (after `cargo build --release`):
//! `cargo run --release -p format --example substrate_session -- sh -c 'ls / | wc -l'`
//! The trace is written to `session-trace.jsonl`.

use std::path::PathBuf;
use std::process::Command;

use format::{ids, CreateOptions, Mode, Ring};

fn main() {
    let cmd: Vec<String> = std::env::args().skip(1).collect();
    if cmd.is_empty() {
        eprintln!("usage: substrate_session CMD [ARGS...]");
        std::process::exit(2);
    }
    // The release artefacts: target/release/{substrate-drain, libringbuf_preload.so}.
    let release: PathBuf = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let drain = release.join("substrate-drain");
    let preload = release.join("libringbuf_preload.so");
    assert!(
        drain.exists() && preload.exists(),
        "run `cargo build --release` first"
    );

    // 1. The session ring: one per shell session, private to the user (0600, O_EXCL), in tmpfs.
    let session = ids::new_uuid_v7();
    let dir = std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/dev/shm".into());
    let ring_path =
        PathBuf::from(dir).join(format!("substrate-{}.ring", ids::uuid_string(&session)));
    let opts = CreateOptions {
        capacity: 64 << 20,
        mode: Mode::Discard,
        session_id: session,
        ..Default::default()
    };
    let ring = Ring::create(&ring_path, &opts).expect("create the session ring");

    // 2. The drain follows the ring into trace.jsonl until every writer is gone.
    let mut follower = Command::new(&drain)
        .args(["--follow", "--until-done", "-o", "session-trace.jsonl"])
        .arg(&ring_path)
        .spawn()
        .expect("start substrate-drain");

    // 3. The command, as substrate runs it: every line of its processes carries the command's
    //    span as `parent_span` (the preload passes SHIM_* through untouched).
    let command_span = ids::span_string(&ids::new_uuid_v7());
    let status = Command::new(&cmd[0])
        .args(&cmd[1..])
        .env("LD_PRELOAD", &preload)
        .env("SUBSTRATE_RING", &ring_path)
        .env("SHIM_SESSION_ID", ids::uuid_string(&session))
        .env("SHIM_PARENT_SPAN", &command_span)
        .status()
        .expect("run the command");

    // 4. Stop: the follower exits by itself once the command's processes are all gone.
    follower.wait().expect("wait for the drain");
    let stats = ring.stats();
    eprintln!(
        "command span {command_span}: exit {:?}, {} bytes recorded, {} records dropped; trace in session-trace.jsonl",
        status.code(),
        stats.reserve_pos,
        stats.dropped()
    );
    drop(ring);
    std::fs::remove_file(&ring_path).unwrap();
}
