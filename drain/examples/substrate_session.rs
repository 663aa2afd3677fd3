//! How `substrate` traces a command in-process, with no `substrate-drain` process: create the
//! session ring with the `format` crate, start the command with the session environment and
//! the preload, follow the ring with the `drain` library, and get each event as a typed value.
//! See `docs/INTEGRATION.md`.
//!
//! Run (after `cargo build --release`):
//! `cargo run --release -p drain --example substrate_session -- sh -c 'ls / | wc -l'`
//! Each event is printed on stdout, one line each.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use drain::event::{Event, EventSink};
use drain::follow::{Follower, Progress, Until};
use format::{ids, CreateOptions, Mode, Ring};

fn main() {
    let cmd: Vec<String> = std::env::args().skip(1).collect();
    if cmd.is_empty() {
        eprintln!("usage: substrate_session CMD [ARGS...]");
        std::process::exit(2);
    }
    // The preload: $SUBSTRATE_PRELOAD, else target/release/libringbuf_preload.so.
    let preload = std::env::var_os("SUBSTRATE_PRELOAD")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap();
            exe.parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("libringbuf_preload.so")
        });
    assert!(preload.exists(), "run `cargo build --release` first");

    // 1. The session ring: private to the user (0600, O_EXCL), in tmpfs.
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

    // 2. The command, as substrate runs it: its span encloses the command's processes.
    let command_span = ids::span_string(&ids::new_uuid_v7());
    let mut child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .env("LD_PRELOAD", &preload)
        .env("SUBSTRATE_RING", &ring_path)
        .env("SHIM_SESSION_ID", ids::uuid_string(&session))
        .env("SHIM_PARENT_SPAN", &command_span)
        .spawn()
        .expect("run the command");

    // 3. Follow in-process until the command has exited and its last traced process is gone.
    let mut events = EventSink::new(|ev: Event<'_>| {
        let what = ev
            .path
            .as_deref()
            .map(str::to_string)
            .or_else(|| ev.argv.as_ref().map(|a| a.join(" ")))
            .unwrap_or_default();
        println!("{:>7} {:<14} {what}", ev.pid.unwrap_or(0), ev.event_type);
    });
    let mut status = None;
    let mut done = |p: &mut Progress<'_>| {
        if status.is_none() {
            status = child.try_wait().expect("wait for the command");
        }
        status.is_some() && p.caught_up() && !p.traced_processes_alive()
    };
    let mut follower = Follower::new(&ring, drain::decode::Options { redact: true });
    let until = Until {
        follow: true,
        done: Some(&mut done),
        busy_wait: Duration::from_millis(200),
        publish: true,
    };
    follower.run(&mut events, until).expect("follow the ring");
    let status = match status {
        Some(s) => s,
        None => child.wait().expect("wait for the command"),
    };
    let s = follower.stats();
    eprintln!(
        "command span {command_span}: exit {:?}, {} events, {} processes, {} lost, {} dropped",
        status.code(),
        s.events,
        s.processes,
        s.lost,
        s.dropped
    );
    drop(follower);
    drop(ring);
    std::fs::remove_file(&ring_path).unwrap();
}
