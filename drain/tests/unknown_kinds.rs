//! A record of a kind this drain does not know (written by a newer preload, as `ObjectLoad`
//! records reach a drain built before kind 12): one `lost` line with reason `corrupt` and the
//! kind, and every record around it decoded as usual. This is what lets a new kind be added
//! without a new format version (`format/RING.md`, "Adding a record kind").

use format::records::{exit_how, EventHeader, ProcessExit};
use format::{Item, Reader, ReaderOptions, Ring, Writer};

#[test]
fn unknown_kinds_are_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let ring = Ring::create(&dir.path().join("r.ring"), &Default::default()).unwrap();
    let w = Writer::attach(&ring).unwrap();
    let exit = |pid: u32| ProcessExit {
        ev: EventHeader {
            // One image per pid: a second end of one image is not written again.
            span: [pid as u8; 16],
            pid: pid.into(),
            tid: pid.into(),
            ..Default::default()
        },
        how: exit_how::EXIT.into(),
        ..Default::default()
    };
    const UNKNOWN: u16 = 0x7ffe;
    w.write_event(&exit(1), std::iter::empty()).unwrap();
    w.write_bytes(UNKNOWN, &[0; 56]).unwrap();
    w.write_event(&exit(2), std::iter::empty()).unwrap();

    let mut dec = drain::decode::Decoder::new(&ring, drain::decode::Options { redact: true });
    let mut reader = Reader::new(&ring, ReaderOptions::default());
    let mut out = Vec::new();
    loop {
        let item = reader.poll();
        if matches!(item, Item::Waiting(_)) {
            break;
        }
        dec.item(&ring, &item, &mut out).unwrap();
    }
    dec.flush_pending(&ring, None, &mut out).unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let what: Vec<(String, serde_json::Value)> = lines
        .iter()
        .map(|l| {
            (
                l["event_type"].as_str().unwrap().to_string(),
                l["pid"].clone(),
            )
        })
        .collect();
    assert_eq!(
        what,
        [
            ("process_exit".to_string(), 1.into()),
            ("lost".to_string(), serde_json::Value::Null),
            ("process_exit".to_string(), 2.into()),
        ],
        "{lines:?}"
    );
    assert_eq!(lines[1]["reason"], "corrupt");
    assert_eq!(lines[1]["kind"], UNKNOWN);
    assert_eq!(lines[1]["count"], 1);
    assert_eq!((dec.stats.events, dec.stats.lost), (2, 1));
}
