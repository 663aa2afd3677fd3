//! A small, fast JSON line writer: fields are appended to one reused `String`, with no
//! intermediate values. Strings are escaped per RFC 8259.
//!
//! Bytes that are not UTF-8 (paths and argv are arbitrary bytes on Linux) are written
//! losslessly: such a string has every `\` doubled and every byte that is not part of a valid
//! UTF-8 sequence written as the four characters `\xHH`; the line's `escaped` array names the
//! field (`path`, `argv[2]`). Strings that are valid UTF-8 are written as they are.

use std::fmt::Write;

/// One JSON object being written.
pub struct Line {
    buf: String,
    first: bool,
    escaped: Vec<String>,
}

impl Default for Line {
    fn default() -> Self {
        Line {
            buf: String::with_capacity(512),
            first: true,
            escaped: Vec::new(),
        }
    }
}

fn push_json_str(buf: &mut String, s: &str) {
    buf.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..=0x1f | 0x7f => None,
            _ => continue,
        };
        buf.push_str(&s[start..i]);
        match esc {
            Some(e) => buf.push_str(e),
            None => {
                let _ = write!(buf, "\\u{:04x}", b);
            }
        }
        start = i + 1;
    }
    buf.push_str(&s[start..]);
    buf.push('"');
}

/// An integer member value (every integer type the records carry).
pub trait Int: Copy {
    /// The value, widened.
    fn wide(self) -> i128;
}

macro_rules! ints {
    ($($t:ty),*) => {$(
        impl Int for $t {
            #[inline]
            fn wide(self) -> i128 {
                self as i128
            }
        }
    )*};
}
ints!(u8, u16, u32, u64, usize, i16, i32, i64, i128);

/// Append the decimal digits of `v` (the formatting machinery of `write!` costs several
/// times more, and every line has half a dozen integers).
pub(crate) fn push_int(buf: &mut String, v: i128) {
    if v < 0 {
        buf.push('-');
    }
    let mut u = v.unsigned_abs();
    let mut tmp = [0u8; 40];
    let mut i = tmp.len();
    // u64 arithmetic for the usual values; i128 division only beyond.
    while u > u64::MAX as u128 {
        i -= 1;
        tmp[i] = b'0' + (u % 10) as u8;
        u /= 10;
    }
    let mut w = u as u64;
    loop {
        i -= 1;
        tmp[i] = b'0' + (w % 10) as u8;
        w /= 10;
        if w == 0 {
            break;
        }
    }
    for &d in &tmp[i..] {
        buf.push(d as char);
    }
}

/// Append `v` as exactly `width` digits, zero-padded (`v` < 10^width).
pub(crate) fn push_padded(buf: &mut String, mut v: u32, width: usize) {
    let mut tmp = [b'0'; 10];
    let mut i = width.min(tmp.len());
    while i > 0 {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    for &d in &tmp[..width.min(10)] {
        buf.push(d as char);
    }
}

/// `bytes` as text: itself when UTF-8 (`false`), else the escaped form (`true`).
pub fn text(bytes: &[u8]) -> (std::borrow::Cow<'_, str>, bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.into(), false),
        Err(_) => {
            let mut out = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                out.push_str(&chunk.valid().replace('\\', "\\\\"));
                for b in chunk.invalid() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
            (out.into(), true)
        }
    }
}

impl Line {
    /// Start a new line, reusing the buffer.
    pub fn begin(&mut self) {
        self.buf.clear();
        self.buf.push('{');
        self.first = true;
        self.escaped.clear();
    }

    /// Start a string member whose text the caller appends to [`Line::buf_mut`] (text that
    /// needs no escaping), then closes with [`Line::end_str`].
    pub fn key_only(&mut self, k: &str) {
        self.key(k);
        self.buf.push('"');
    }

    /// The buffer, for [`Line::key_only`].
    pub fn buf_mut(&mut self) -> &mut String {
        &mut self.buf
    }

    /// Close a member opened with [`Line::key_only`].
    pub fn end_str(&mut self) {
        self.buf.push('"');
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.buf.push(',');
        }
        self.first = false;
        self.buf.push('"');
        self.buf.push_str(k);
        self.buf.push_str("\":");
    }

    /// Append pre-rendered members (`"a":1,"b":"x"`), JSON the caller vouches for.
    pub fn raw(&mut self, members: &str) {
        if !self.first {
            self.buf.push(',');
        }
        self.first = false;
        self.buf.push_str(members);
    }

    /// `"k": "s"`.
    pub fn str(&mut self, k: &str, s: &str) {
        self.key(k);
        push_json_str(&mut self.buf, s);
    }

    /// `"k": "<bytes>"`, escaped losslessly when not UTF-8.
    pub fn bytes(&mut self, k: &str, b: &[u8]) {
        let (t, esc) = text(b);
        if esc {
            self.escaped.push(k.to_string());
        }
        self.str(k, &t);
    }

    /// `"k": [strings]`, each escaped losslessly when not UTF-8.
    pub fn bytes_array<'a>(&mut self, k: &str, items: impl IntoIterator<Item = &'a [u8]>) {
        self.key(k);
        self.buf.push('[');
        for (i, b) in items.into_iter().enumerate() {
            if i > 0 {
                self.buf.push(',');
            }
            let (t, esc) = text(b);
            if esc {
                self.escaped.push(format!("{k}[{i}]"));
            }
            push_json_str(&mut self.buf, &t);
        }
        self.buf.push(']');
    }

    /// `"k": [strings]` of text.
    pub fn str_array<S: AsRef<str>>(&mut self, k: &str, items: impl IntoIterator<Item = S>) {
        self.key(k);
        self.buf.push('[');
        for (i, s) in items.into_iter().enumerate() {
            if i > 0 {
                self.buf.push(',');
            }
            push_json_str(&mut self.buf, s.as_ref());
        }
        self.buf.push(']');
    }

    /// `"k": n`.
    pub fn int(&mut self, k: &str, n: impl Int) {
        self.key(k);
        push_int(&mut self.buf, n.wide());
    }

    /// `"k": true/false`.
    pub fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.buf.push_str(if v { "true" } else { "false" });
    }

    /// `"k": null`.
    pub fn null(&mut self, k: &str) {
        self.key(k);
        self.buf.push_str("null");
    }

    /// Close the object (adding `escaped` if any string needed it) and return the line,
    /// newline included.
    pub fn end(&mut self) -> &str {
        if !self.escaped.is_empty() {
            let e = std::mem::take(&mut self.escaped);
            self.str_array("escaped", &e);
            self.escaped = e;
        }
        self.buf.push_str("}\n");
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_written_as_display_would() {
        for v in [
            0i128,
            7,
            -1,
            10,
            99,
            100,
            i64::MIN as i128,
            i64::MAX as i128,
            u64::MAX as i128,
            u64::MAX as i128 + 1,
            i128::MIN,
            i128::MAX,
        ] {
            let mut s = String::new();
            push_int(&mut s, v);
            assert_eq!(s, v.to_string());
        }
        let mut s = String::new();
        push_padded(&mut s, 7, 2);
        push_padded(&mut s, 1234, 9);
        assert_eq!(s, "07000001234");
    }

    #[test]
    fn lines_are_valid_json_and_non_utf8_round_trips() {
        let mut l = Line::default();
        l.begin();
        l.str("a", "q\"\\\n\u{1}");
        l.bytes("p", b"caf\xe9\\x");
        l.bytes_array("argv", [b"ok".as_slice(), b"\xff"]);
        l.int("n", -3);
        l.null("z");
        let s = l.end().to_string();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["a"], "q\"\\\n\u{1}");
        assert_eq!(v["p"], "caf\\xe9\\\\x");
        assert_eq!(v["argv"][1], "\\xff");
        assert_eq!(v["escaped"], serde_json::json!(["p", "argv[1]"]));
        assert_eq!(v["n"], -3);
    }
}
