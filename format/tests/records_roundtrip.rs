//! Round trip of every record type through a real ring: random fixed fields and var fields
//! (long paths, empty argv, non-UTF-8 bytes, sizes past the largest record, which must be cut
//! and flagged, never dropped).

use core::mem::offset_of;
use format::layout::RECORD_HEADER;
use format::records::{
    self, ev_flags, AnyEvent, Event, EventHeader, Kind, KindVisitor, VAR_PREFIX,
};
use format::{CreateOptions, Item, Reader, ReaderOptions, Ring, Start, Writer};
use proptest::prelude::*;
use zerocopy::{FromBytes, IntoBytes};

/// Write `fixed` + `vars` as event `E`, read it back, and check it field for field.
fn roundtrip<E: Event>(ring: &Ring, fixed_bytes: &[u8], vars: &[Vec<u8>]) {
    let Ok(fixed) = E::read_from_bytes(fixed_bytes) else {
        panic!("{} bytes for a {:?}", fixed_bytes.len(), E::KIND)
    };
    let w = Writer::attach(ring).unwrap();
    w.write_event(&fixed, vars.iter().map(|v| v.as_slice()))
        .expect("written (cut if too large)");
    let mut r = Reader::new(
        ring,
        ReaderOptions {
            start: Start::Consumer,
            ..Default::default()
        },
    );
    let Item::Record(rec) = r.poll() else {
        panic!("no record")
    };
    assert_eq!(rec.kind, E::KIND as u16);
    let (got, got_vars) = records::decode::<E>(rec.payload).unwrap();
    let got_vars: Vec<&[u8]> = got_vars.collect();
    // Fixed part: identical except var_count and the TRUNCATED flag the writer sets.
    let (g, f) = (got.as_bytes(), fixed.as_bytes());
    let (var_count, header) = (offset_of!(EventHeader, var_count), size_of::<EventHeader>());
    assert_eq!(&g[..var_count], &f[..var_count]);
    assert_eq!(&g[header..], &f[header..]);
    let truncated = got.ev().flags.get() & ev_flags::TRUNCATED != 0;
    assert_eq!(
        got.ev().flags.get() & !ev_flags::TRUNCATED,
        fixed.ev().flags.get() & !ev_flags::TRUNCATED
    );
    assert_eq!(got.ev().var_count.get() as usize, got_vars.len());
    // Var fields: a prefix of what was written, only the last one possibly cut.
    let total: usize = vars.iter().map(|v| v.len() + VAR_PREFIX).sum();
    let fits = size_of::<E>() + total + RECORD_HEADER as usize <= ring.max_record() as usize
        && vars.len() <= u16::MAX as usize;
    assert_eq!(truncated, !fits, "TRUNCATED iff it did not fit");
    if fits {
        assert_eq!(
            got_vars,
            vars.iter().map(|v| v.as_slice()).collect::<Vec<_>>()
        );
    } else {
        for (i, gv) in got_vars.iter().enumerate() {
            let want = &vars[i][..];
            if i + 1 < got_vars.len() {
                assert_eq!(*gv, want);
            } else {
                assert!(want.starts_with(gv));
            }
        }
    }
    // And through the any-kind decoder.
    let any = AnyEvent::decode(rec.kind, rec.payload).unwrap();
    assert_eq!(any.kind(), E::KIND);
    assert_eq!(
        any.ev().as_bytes()[..var_count],
        fixed.ev().as_bytes()[..var_count]
    );
    assert_eq!(
        any.vars().map(|v| v.count()),
        Kind::has_vars(E::KIND).then_some(got_vars.len())
    );
}

/// [`roundtrip`] for a kind chosen at run time.
struct RoundTrip<'a> {
    ring: &'a Ring,
    fixed: &'a [u8],
    vars: &'a [Vec<u8>],
}

impl KindVisitor for RoundTrip<'_> {
    type Output = ();
    fn visit<E: Event>(self) {
        roundtrip::<E>(self.ring, &self.fixed[..size_of::<E>()], self.vars)
    }
}

fn var_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop_oneof![
        Just(vec![]),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..20),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..5000), 0..4),
        // Past the largest record: 70 fields of 1 KiB into a 64 KiB record.
        Just((0..70).map(|i| vec![i as u8; 1024]).collect()),
        // Many empty fields.
        Just(vec![vec![]; 3000]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn every_record_type_round_trips(which in 0..Kind::ALL.len(), fixed in prop::collection::vec(any::<u8>(), 128), vars in var_strategy()) {
        let dir = tempfile::tempdir().unwrap();
        let opts = CreateOptions { capacity: 1 << 20, block_size: 64 << 10, writer_slots: 4, ..Default::default() };
        let ring = Ring::create(&dir.path().join("ring"), &opts).unwrap();
        // Fixed part from random bytes, but with a sane header (var_count is set by the writer).
        let mut fixed = fixed;
        let header = size_of::<EventHeader>();
        let ev = EventHeader { flags: 0.into(), ..EventHeader::read_from_bytes(&fixed[..header]).unwrap() };
        fixed[..header].copy_from_slice(ev.as_bytes());
        Kind::ALL[which].visit(RoundTrip { ring: &ring, fixed: &fixed, vars: &vars });
    }
}

/// A `SHIM_*` value: unset, substrate's forms, malformed, empty, or longer than kept.
fn shim_strategy() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        Just(Some(b"spn_0190f1c2-7a3b-7def-8123-456789abcdef".to_vec())),
        Just(Some(b"ses_0190f1c2-7a3b-7def-8123-456789abcdef".to_vec())),
        Just(Some(b"".to_vec())),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// A `process_start` as the preload writes it: `exe`, `cwd`, the two `SHIM_*` values (cut at
    /// `SHIM_VALUE_MAX`, flagged set in `start_flags`), then argv. Read back, each value is the
    /// one written (byte for byte up to the cut), unset stays unset, and argv is intact.
    #[test]
    fn process_start_keeps_shim_values_verbatim_and_bounded(
        span in shim_strategy(),
        session in shim_strategy(),
        argv in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8),
        parent_image in any::<[u8; 16]>(),
    ) {
        use records::{process_start_vars as pv, shim_value, start_flags, ProcessStart, SHIM_VALUE_MAX};
        let dir = tempfile::tempdir().unwrap();
        let opts = CreateOptions { capacity: 1 << 20, block_size: 64 << 10, writer_slots: 4, ..Default::default() };
        let ring = Ring::create(&dir.path().join("ring"), &opts).unwrap();
        let mut flags = start_flags::EXEC;
        if span.is_some() { flags |= start_flags::SHIM_PARENT_SPAN; }
        if session.is_some() { flags |= start_flags::SHIM_SESSION_ID; }
        let (span_kept, span_cut) = shim_value(span.as_deref().unwrap_or(b""));
        let (session_kept, session_cut) = shim_value(session.as_deref().unwrap_or(b""));
        let mut ev = ProcessStart { start_flags: flags.into(), parent_image, ..Default::default() };
        if span_cut || session_cut {
            ev.ev.flags = ev_flags::TRUNCATED.into();
        }
        let fixed: [&[u8]; 4] = [b"/bin/x", b"/tmp", span_kept, session_kept];
        let vars = fixed.into_iter().chain(argv.iter().map(|a| a.as_slice()));
        let w = Writer::attach(&ring).unwrap();
        w.write_event(&ev, vars).unwrap();
        let mut r = Reader::new(&ring, ReaderOptions { start: Start::Consumer, ..Default::default() });
        let Item::Record(rec) = r.poll() else { panic!("no record") };
        let Ok(AnyEvent::ProcessStart(got, got_vars)) = AnyEvent::decode(rec.kind, rec.payload) else {
            panic!("not a process_start")
        };
        prop_assert_eq!(got.parent_image, parent_image);
        prop_assert_eq!(got.ev.var_count.get() as usize, pv::ARGV + argv.len());
        let sv = got.split_vars(got_vars);
        prop_assert_eq!(sv.exe, b"/bin/x");
        prop_assert_eq!(sv.cwd, b"/tmp");
        let want = |v: &Option<Vec<u8>>| v.as_ref().map(|v| v[..v.len().min(SHIM_VALUE_MAX)].to_vec());
        prop_assert_eq!(sv.shim_parent_span.map(<[u8]>::to_vec), want(&span));
        prop_assert_eq!(sv.shim_session_id.map(<[u8]>::to_vec), want(&session));
        prop_assert_eq!(sv.argv.collect::<Vec<_>>(), argv.iter().map(|a| a.as_slice()).collect::<Vec<_>>());
        let long = |v: &Option<Vec<u8>>| v.as_ref().is_some_and(|v| v.len() > SHIM_VALUE_MAX);
        prop_assert_eq!(
            got.ev.flags.get() & ev_flags::TRUNCATED != 0,
            long(&span) || long(&session),
            "TRUNCATED iff a value was cut"
        );
    }
}
