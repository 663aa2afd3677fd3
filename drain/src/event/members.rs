//! An event's members one at a time, without building a JSON object: how the exporters put an
//! event's own fields into their formats (Chrome args, OpenTelemetry attributes) at millions of
//! events a second.
//!
//! Members come in schema order (the order of [`Event`]'s fields), absent ones left out, as
//! the line would have them. [`HEADER`] names the members every line has, for a view to leave
//! out what it says another way.

use std::io;

use serde::ser::{self, Impossible, Serialize, SerializeStruct, Serializer};
use serde_json::Value;

use super::Event;

/// The members every line has (the line's header), in order.
pub const HEADER: [&str; 12] = [
    "ts",
    "ts_unix_ns",
    "event_type",
    "session_id",
    "span_id",
    "parent_span",
    "parent_image",
    "component",
    "pid",
    "tid",
    "pos",
    "ring_id",
];

/// Members to leave out, by their place in the schema: made once ([`Skip::of`]) and used for
/// every event, so that leaving a member out costs a bit test rather than comparing names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skip(u128);

impl Skip {
    /// The members named (names the schema does not have are ignored).
    pub fn of(names: &[&str]) -> Skip {
        let mut bits = 0u128;
        for (k, field) in FIELDS.iter().enumerate() {
            if names.contains(field) {
                bits |= 1 << k;
            }
        }
        Skip(bits)
    }

    fn has(self, k: u32) -> bool {
        k < 128 && self.0 >> k & 1 == 1
    }
}

/// Every member of the schema, in order: what the derive of `Serialize` for [`Event`] names,
/// one call (`serialize_field` or `skip_field`) per field, whatever the event holds.
static FIELDS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    let mut names = vec![];
    let _ = Event::default().serialize(Members {
        sink: Names { names: &mut names },
        skip: Skip::default(),
        at: 0,
    });
    names
});

/// Records the names of the members (and [`Members`] the skipped ones).
struct Names<'n> {
    names: &'n mut Vec<&'static str>,
}

impl Sink for Names<'_> {
    fn member<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        _: &T,
    ) -> serde_json::Result<()> {
        self.names.push(key);
        Ok(())
    }

    fn skipped(&mut self, key: &'static str) {
        self.names.push(key);
    }

    fn end(self) -> serde_json::Result<()> {
        Ok(())
    }
}

/// Write `ev`'s members, except those in `skip`, as one JSON object to `out`.
///
/// ```
/// use drain::event::{write_members, Event, Skip, HEADER};
/// let line = r#"{"ts":"t","ts_unix_ns":1,"event_type":"file_open","session_id":null,
///   "span_id":null,"parent_span":null,"component":"telemetry","pid":7,"tid":7,"pos":0,
///   "ring_id":"r","path":"/etc/hosts","fd":3}"#;
/// let ev = Event::parse(line).unwrap();
/// let mut out = vec![];
/// write_members(&ev, Skip::of(&HEADER), &mut out).unwrap();
/// assert_eq!(out, br#"{"path":"/etc/hosts","fd":3}"#);
/// ```
pub fn write_members<W: io::Write>(ev: &Event<'_>, skip: Skip, mut out: W) -> io::Result<()> {
    let mut buf = Vec::with_capacity(512);
    append_members(ev, skip, &mut buf);
    out.write_all(&buf)
}

/// [`write_members`] appended to `out`: the same bytes, written directly (strings escaped
/// eight bytes at a time, as `serde_json` escapes them) rather than through `serde_json`'s
/// serializer. What the event holds that is not a string, integer, boolean, list of strings
/// or null (only `family` can) is written by `serde_json`.
pub fn append_members(ev: &Event<'_>, skip: Skip, out: &mut Vec<u8>) {
    out.push(b'{');
    // Writing into a Vec cannot fail.
    let _ = ev.serialize(Members {
        sink: Direct { out, first: true },
        skip,
        at: 0,
    });
}

/// Call `f` with each of `ev`'s members, except those in `skip`, as a JSON value.
pub fn for_each_member(ev: &Event<'_>, skip: Skip, f: impl FnMut(&'static str, Value)) {
    // Serializing an Event into values cannot fail: every member is a string, number,
    // bool, array of strings or null.
    let _ = ev.serialize(Members {
        sink: Values { f },
        skip,
        at: 0,
    });
}

/// Where [`Members`] puts each member it keeps.
trait Sink {
    fn member<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T)
        -> serde_json::Result<()>;
    /// A member the event does not hold (absent from its line).
    fn skipped(&mut self, _key: &'static str) {}
    fn end(self) -> serde_json::Result<()>;
}

/// Members handed to a closure as values.
struct Values<F: FnMut(&'static str, Value)> {
    f: F,
}

impl<F: FnMut(&'static str, Value)> Sink for Values<F> {
    fn member<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> serde_json::Result<()> {
        (self.f)(key, serde_json::to_value(v)?);
        Ok(())
    }

    fn end(self) -> serde_json::Result<()> {
        Ok(())
    }
}

/// A serializer that takes an event (a struct) apart into its members.
struct Members<K: Sink> {
    sink: K,
    skip: Skip,
    /// The place in the schema of the next member.
    at: u32,
}

impl<K: Sink> SerializeStruct for Members<K> {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> serde_json::Result<()> {
        let at = self.at;
        self.at += 1;
        if self.skip.has(at) {
            return Ok(());
        }
        self.sink.member(key, value)
    }

    fn skip_field(&mut self, key: &'static str) -> serde_json::Result<()> {
        self.at += 1;
        self.sink.skipped(key);
        Ok(())
    }

    fn end(self) -> serde_json::Result<()> {
        self.sink.end()
    }
}

/// What [`Members`] answers to anything but a struct (only an [`Event`] is taken apart).
fn refused<T>() -> serde_json::Result<T> {
    Err(ser::Error::custom(
        "only an event's members are taken apart",
    ))
}

/// Everything but a struct is refused.
macro_rules! refuse {
    ($($name:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $arg),*) -> serde_json::Result<()> {
            refused()
        })*
    };
}

/// The compound forms neither serializer takes (what is left of serde's required methods).
macro_rules! refuse_compounds {
    () => {
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> serde_json::Result<()> {
            refused()
        }
        fn serialize_tuple(self, _: usize) -> serde_json::Result<Self::SerializeTuple> {
            refused()
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> serde_json::Result<Self::SerializeTupleStruct> {
            refused()
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> serde_json::Result<Self::SerializeTupleVariant> {
            refused()
        }
        fn serialize_map(self, _: Option<usize>) -> serde_json::Result<Self::SerializeMap> {
            refused()
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> serde_json::Result<Self::SerializeStructVariant> {
            refused()
        }
    };
}

impl<K: Sink> Serializer for Members<K> {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = Impossible<(), serde_json::Error>;
    type SerializeTuple = Impossible<(), serde_json::Error>;
    type SerializeTupleStruct = Impossible<(), serde_json::Error>;
    type SerializeTupleVariant = Impossible<(), serde_json::Error>;
    type SerializeMap = Impossible<(), serde_json::Error>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), serde_json::Error>;

    fn serialize_struct(self, _: &'static str, _: usize) -> serde_json::Result<Self> {
        Ok(self)
    }

    refuse! {
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
        serialize_u64(u64), serialize_f32(f32), serialize_f64(f64), serialize_char(char),
        serialize_str(&str), serialize_bytes(&[u8]), serialize_none(), serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> serde_json::Result<()> {
        refused()
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> serde_json::Result<()> {
        refused()
    }
    fn serialize_seq(self, _: Option<usize>) -> serde_json::Result<Self::SerializeSeq> {
        refused()
    }
    refuse_compounds!();
}

/// Members written as a JSON object straight into a buffer (its `{` already written).
struct Direct<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl Sink for Direct<'_> {
    fn member<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> serde_json::Result<()> {
        let at = self.out.len();
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        // Member names are the schema's identifiers: nothing in them needs escaping.
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        let value = self.out.len();
        if v.serialize(Value1 { out: self.out }).is_err() {
            self.out.truncate(value);
            if let Err(e) = serde_json::to_writer(&mut *self.out, v) {
                self.out.truncate(at);
                return Err(e);
            }
        }
        Ok(())
    }

    fn end(self) -> serde_json::Result<()> {
        self.out.push(b'}');
        Ok(())
    }
}

/// Append `s` as a JSON string, escaped exactly as `serde_json` escapes it: `"` and `\\`,
/// the short escapes `\b \f \n \r \t`, other control characters as `\u00xx`; nothing
/// else.
pub fn append_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut i = 0;
    loop {
        let run = super::parse::plain_run(b, i);
        out.extend_from_slice(&b[i..run]);
        let Some(&c) = b.get(run) else {
            break;
        };
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(c >> 4)]);
                out.push(HEX[usize::from(c & 0xf)]);
            }
        }
        i = run + 1;
    }
    out.push(b'"');
}

/// One member's value written by [`Direct`]: strings, integers, booleans, null and lists of
/// those. Anything else is refused, and `serde_json` writes it instead.
struct Value1<'o> {
    out: &'o mut Vec<u8>,
}

impl Value1<'_> {
    fn int(self, v: impl itoa::Integer) -> serde_json::Result<()> {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        Ok(())
    }
}

/// Integer types, written with `itoa` as `serde_json` writes them.
macro_rules! ints {
    ($($name:ident($t:ty)),* $(,)?) => {
        $(fn $name(self, v: $t) -> serde_json::Result<()> {
            self.int(v)
        })*
    };
}

impl<'o> Serializer for Value1<'o> {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = List<'o>;
    type SerializeTuple = Impossible<(), serde_json::Error>;
    type SerializeTupleStruct = Impossible<(), serde_json::Error>;
    type SerializeTupleVariant = Impossible<(), serde_json::Error>;
    type SerializeMap = Impossible<(), serde_json::Error>;
    type SerializeStruct = Impossible<(), serde_json::Error>;
    type SerializeStructVariant = Impossible<(), serde_json::Error>;

    ints! {
        serialize_i8(i8), serialize_i16(i16), serialize_i32(i32), serialize_i64(i64),
        serialize_u8(u8), serialize_u16(u16), serialize_u32(u32), serialize_u64(u64),
    }

    fn serialize_bool(self, v: bool) -> serde_json::Result<()> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_str(self, v: &str) -> serde_json::Result<()> {
        append_str(self.out, v);
        Ok(())
    }
    fn serialize_none(self) -> serde_json::Result<()> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit(self) -> serde_json::Result<()> {
        self.serialize_none()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> serde_json::Result<()> {
        v.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> serde_json::Result<List<'o>> {
        self.out.push(b'[');
        Ok(List {
            out: self.out,
            first: true,
        })
    }

    refuse! {
        serialize_f32(f32), serialize_f64(f64), serialize_char(char),
        serialize_bytes(&[u8]), serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> serde_json::Result<()> {
        refused()
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> serde_json::Result<Self::SerializeStruct> {
        refused()
    }
    refuse_compounds!();
}

/// A list written by [`Value1`].
struct List<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl ser::SerializeSeq for List<'_> {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> serde_json::Result<()> {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        v.serialize(Value1 { out: self.out })
    }

    fn end(self) -> serde_json::Result<()> {
        self.out.push(b']');
        Ok(())
    }
}
