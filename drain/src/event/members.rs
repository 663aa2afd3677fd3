//! An event's members one at a time, without building a JSON object: how the exporters put an
//! event's own fields into their formats (Chrome args, OpenTelemetry attributes) at millions of
//! events a second.
//!
//! Members come in schema order (the order of [`Event`]'s fields), absent ones left out, as
//! the line would have them. [`HEADER`] names the members every line has, for a view to leave
//! out what it says another way.

use std::io;

use serde::ser::{self, Impossible, Serialize, SerializeMap, SerializeStruct, Serializer};
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

/// Write `ev`'s members, except those in `skip`, as one JSON object to `out`.
///
/// ```
/// let line = r#"{"ts":"t","ts_unix_ns":1,"event_type":"file_open","session_id":null,
///   "span_id":null,"parent_span":null,"component":"telemetry","pid":7,"tid":7,"pos":0,
///   "ring_id":"r","path":"/etc/hosts","fd":3}"#;
/// let ev = drain::event::Event::parse(line).unwrap();
/// let mut out = vec![];
/// drain::event::write_members(&ev, &drain::event::HEADER, &mut out).unwrap();
/// assert_eq!(out, br#"{"path":"/etc/hosts","fd":3}"#);
/// ```
pub fn write_members<W: io::Write>(ev: &Event<'_>, skip: &[&str], out: W) -> io::Result<()> {
    let mut json = serde_json::Serializer::new(out);
    let map = (&mut json).serialize_map(None).map_err(io::Error::other)?;
    ev.serialize(Members {
        sink: JsonObject { map },
        skip,
    })
    .map_err(io::Error::other)
}

/// Call `f` with each of `ev`'s members, except those in `skip`, as a JSON value.
pub fn for_each_member(ev: &Event<'_>, skip: &[&str], f: impl FnMut(&'static str, Value)) {
    // Serializing an Event into values cannot fail: every member is a string, number,
    // bool, array of strings or null.
    let _ = ev.serialize(Members {
        sink: Values { f },
        skip,
    });
}

/// Where [`Members`] puts each member it keeps.
trait Sink {
    fn member<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T)
        -> serde_json::Result<()>;
    fn end(self) -> serde_json::Result<()>;
}

/// Members written as a JSON object.
struct JsonObject<'j, W: io::Write> {
    map: serde_json::ser::Compound<'j, W, serde_json::ser::CompactFormatter>,
}

impl<W: io::Write> Sink for JsonObject<'_, W> {
    fn member<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> serde_json::Result<()> {
        self.map.serialize_entry(key, v)
    }

    fn end(self) -> serde_json::Result<()> {
        SerializeMap::end(self.map)
    }
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
struct Members<'s, K: Sink> {
    sink: K,
    skip: &'s [&'s str],
}

impl<K: Sink> SerializeStruct for Members<'_, K> {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> serde_json::Result<()> {
        if self.skip.contains(&key) {
            return Ok(());
        }
        self.sink.member(key, value)
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

impl<'s, K: Sink> Serializer for Members<'s, K> {
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
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> serde_json::Result<()> {
        refused()
    }
    fn serialize_seq(self, _: Option<usize>) -> serde_json::Result<Self::SerializeSeq> {
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
}
