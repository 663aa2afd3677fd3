//! A small, fast JSON line writer: fields are appended to one reused byte buffer, with no
//! intermediate values. Strings are escaped per RFC 8259.
//!
//! Bytes that are not UTF-8 (paths and argv are arbitrary bytes on Linux) are written
//! losslessly: such a string has every `\` doubled and every byte that is not part of a valid
//! UTF-8 sequence written as the four characters `\xHH`; the line's `escaped` array names the
//! field (`path`, `argv[2]`). Strings that are valid UTF-8 are written as they are.
//!
//! This is the drain's hot path (a line has two paths, half a dozen integers and a
//! timestamp): strings are scanned eight bytes at a time for what needs escaping (and, for
//! bytes, for the first non-ASCII byte, after which the rest is validated as UTF-8 once), and
//! integers are written two digits at a time. The buffer only ever holds UTF-8.

use std::fmt::Write;

/// One JSON object being written.
pub struct Line {
    buf: Vec<u8>,
    first: bool,
    escaped: Vec<String>,
    /// Where the value of the last [`Line::bytes`] member is in `buf`, and whether it was
    /// escaped, for [`Line::repeat_bytes`].
    last_bytes: Option<(usize, usize, bool)>,
}

impl Default for Line {
    fn default() -> Self {
        Line::with_capacity(512)
    }
}

impl Line {
    /// A line whose buffer starts with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Line {
        Line {
            buf: Vec::with_capacity(n),
            first: true,
            escaped: Vec::new(),
            last_bytes: None,
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `w` is zero (exact as to whether one is, not as to which).
#[inline(always)]
fn has_zero(w: u64) -> u64 {
    w.wrapping_sub(ONES) & !w & HIGH
}

/// Whether any byte of the little-endian word `w` needs a look of its own: a control
/// character, `"`, `\`, DEL, or (`high`) a byte of a non-ASCII character.
#[inline(always)]
fn word_needs_look(w: u64, high: bool) -> bool {
    // Bytes below 0x20 (exact as to whether there is one, for a bound of at most 0x80).
    let ctrl = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    let quote = has_zero(w ^ (ONES * b'"' as u64));
    let backslash = has_zero(w ^ (ONES * b'\\' as u64));
    let del = has_zero(w ^ (ONES * 0x7f));
    let hi = if high { w & HIGH } else { 0 };
    ctrl | quote | backslash | del | hi != 0
}

/// The JSON escape of an ASCII byte that needs one, or `None`.
#[inline(always)]
fn escape_of(b: u8) -> Option<&'static [u8]> {
    Some(match b {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        b'\n' => b"\\n",
        b'\r' => b"\\r",
        b'\t' => b"\\t",
        0..=0x1f | 0x7f => b"\\u00",
        _ => return None,
    })
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Append `s` as a JSON string (quotes included). `check_utf8`: `s` may be any bytes; then
/// nothing is appended and `false` returned if it is not UTF-8. Without it, `s` is UTF-8.
fn push_json_bytes(buf: &mut Vec<u8>, s: &[u8], check_utf8: bool) -> bool {
    let mut high = check_utf8;
    let mark = buf.len();
    buf.push(b'"');
    let mut start = 0; // the first byte not appended yet
    let mut i = 0;
    loop {
        // Eight bytes at a time while none needs a look.
        while let Some(c) = s.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            if word_needs_look(u64::from_le_bytes(w), high) {
                break;
            }
            i += 8;
        }
        // Then the bytes of that word (or of the tail) one by one.
        let end = (i + 8).min(s.len());
        while i < end {
            let b = s[i];
            if b >= 0x80 {
                if high {
                    // The first non-ASCII byte: the rest is UTF-8 or the string is not.
                    if std::str::from_utf8(&s[i..]).is_err() {
                        buf.truncate(mark);
                        return false;
                    }
                    high = false;
                }
            } else if let Some(e) = escape_of(b) {
                buf.extend_from_slice(&s[start..i]);
                buf.extend_from_slice(e);
                if e.len() == 4 {
                    buf.extend_from_slice(&[HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
                }
                start = i + 1;
            }
            i += 1;
        }
        if i >= s.len() {
            break;
        }
    }
    buf.extend_from_slice(&s[start..]);
    buf.push(b'"');
    true
}

fn push_json_str(buf: &mut Vec<u8>, s: &str) {
    push_json_bytes(buf, s.as_bytes(), false);
}

/// Two decimal digits of each number below 100.
const DIGITS2: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Append the decimal digits of `v`, two at a time (the formatting machinery of `write!` costs
/// several times more, and every line has half a dozen integers).
#[inline]
pub(crate) fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    while v >= 100 {
        let r = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        tmp[i..i + 2].copy_from_slice(&DIGITS2[r..r + 2]);
    }
    if v >= 10 {
        let r = v as usize * 2;
        i -= 2;
        tmp[i..i + 2].copy_from_slice(&DIGITS2[r..r + 2]);
    } else {
        i -= 1;
        tmp[i] = b'0' + v as u8;
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Append the decimal digits of `v`.
pub(crate) fn push_int(buf: &mut Vec<u8>, v: i128) {
    if v < 0 {
        buf.push(b'-');
    }
    let u = v.unsigned_abs();
    if let Ok(w) = u64::try_from(u) {
        return push_u64(buf, w);
    }
    // Beyond 64 bits (no record field is; kept for completeness): the high digits, then
    // the low 19, zero-padded.
    const E19: u128 = 10_000_000_000_000_000_000;
    push_int(buf, (u / E19) as i128);
    let low = (u % E19) as u64;
    let mut tmp = Vec::with_capacity(20);
    push_u64(&mut tmp, low);
    buf.extend(std::iter::repeat_n(b'0', 19 - tmp.len()));
    buf.extend_from_slice(&tmp);
}

/// An integer member value (every integer type the records carry).
pub trait Int: Copy {
    /// Append its decimal digits.
    fn push_to(self, buf: &mut Vec<u8>);
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl Int for $t {
            #[inline]
            fn push_to(self, buf: &mut Vec<u8>) {
                push_u64(buf, self as u64)
            }
        }
    )*};
}
macro_rules! signed {
    ($($t:ty),*) => {$(
        impl Int for $t {
            #[inline]
            fn push_to(self, buf: &mut Vec<u8>) {
                if self < 0 {
                    buf.push(b'-');
                }
                push_u64(buf, self.unsigned_abs() as u64)
            }
        }
    )*};
}
unsigned!(u8, u16, u32, u64, usize);
signed!(i16, i32, i64);

impl Int for i128 {
    fn push_to(self, buf: &mut Vec<u8>) {
        push_int(buf, self)
    }
}

/// Append `v` as exactly `width` digits, zero-padded (`v` < 10^width, `width` ≤ 10).
pub(crate) fn push_padded(buf: &mut Vec<u8>, mut v: u32, width: usize) {
    let mut tmp = [b'0'; 10];
    let width = width.min(tmp.len());
    let mut i = width;
    while i >= 2 {
        let r = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        tmp[i..i + 2].copy_from_slice(&DIGITS2[r..r + 2]);
    }
    if i == 1 {
        tmp[0] = b'0' + (v % 10) as u8;
    }
    buf.extend_from_slice(&tmp[..width]);
}

/// `bytes` as text: itself when UTF-8 (`false`), else the escaped form (`true`).
#[cfg(test)]
fn text(bytes: &[u8]) -> (std::borrow::Cow<'_, str>, bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.into(), false),
        Err(_) => (escaped_text(bytes).into(), true),
    }
}

/// The escaped form of bytes that are not UTF-8: `\` doubled, each byte of no valid UTF-8
/// sequence as `\xHH`.
fn escaped_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(&chunk.valid().replace('\\', "\\\\"));
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

impl Line {
    /// Start a new line, reusing the buffer.
    pub fn begin(&mut self) {
        self.buf.clear();
        self.buf.push(b'{');
        self.first = true;
        self.escaped.clear();
        self.last_bytes = None;
    }

    /// Members that `f` appends to the buffer (JSON it vouches for), after a comma if some
    /// member came before.
    #[inline]
    pub fn members_with(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        f(&mut self.buf);
    }

    #[inline(always)]
    fn key(&mut self, k: &str) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(k.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    /// Append pre-rendered members (`"a":1,"b":"x"`), JSON in UTF-8 the caller vouches for.
    pub fn raw(&mut self, members: impl AsRef<[u8]>) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.extend_from_slice(members.as_ref());
    }

    /// `"k": "spn_<span as a UUID>"`.
    pub fn span(&mut self, k: &str, span: &[u8; 16]) {
        let mut text = [0u8; format::ids::UUID_TEXT_LEN];
        format::ids::format_uuid(span, &mut text);
        self.key(k);
        self.buf.push(b'"');
        self.buf
            .extend_from_slice(format::ids::SPAN_PREFIX.as_bytes());
        self.buf.extend_from_slice(&text);
        self.buf.push(b'"');
    }

    /// The members written since [`Line::begin`], without braces, `escaped` or newline.
    pub fn into_members(mut self) -> Vec<u8> {
        self.buf.drain(..1.min(self.buf.len()));
        self.buf
    }

    /// `"k": "s"`.
    #[inline]
    pub fn str(&mut self, k: &str, s: &str) {
        self.key(k);
        push_json_str(&mut self.buf, s);
    }

    /// `"k": "v"` for a name from this program's own tables (an event type, a call's name):
    /// ASCII that needs no escaping, written as it is.
    #[inline(always)]
    pub fn name(&mut self, k: &str, v: &'static str) {
        debug_assert!(v
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && escape_of(b).is_none()));
        self.key(k);
        self.buf.push(b'"');
        self.buf.extend_from_slice(v.as_bytes());
        self.buf.push(b'"');
    }

    /// `"k": "<bytes>"`, escaped losslessly when not UTF-8.
    pub fn bytes(&mut self, k: &str, b: &[u8]) {
        self.key(k);
        let start = self.buf.len();
        let escaped = !push_json_bytes(&mut self.buf, b, true);
        if escaped {
            self.escaped.push(k.to_string());
            push_json_str(&mut self.buf, &escaped_text(b));
        }
        self.last_bytes = Some((start, self.buf.len(), escaped));
    }

    /// `"k": "<bytes>"` where the bytes are those of the last [`Line::bytes`] member of this
    /// line (`abs_path` when it is `path`): its text is copied rather than scanned again.
    pub fn repeat_bytes(&mut self, k: &str, b: &[u8]) {
        match self.last_bytes {
            Some((start, end, escaped)) => {
                self.key(k);
                self.buf.extend_from_within(start..end);
                if escaped {
                    self.escaped.push(k.to_string());
                }
            }
            None => self.bytes(k, b),
        }
    }

    /// `"k": [strings]`, each escaped losslessly when not UTF-8.
    pub fn bytes_array<'a>(&mut self, k: &str, items: impl IntoIterator<Item = &'a [u8]>) {
        self.key(k);
        self.buf.push(b'[');
        for (i, b) in items.into_iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            if !push_json_bytes(&mut self.buf, b, true) {
                self.escaped.push(format!("{k}[{i}]"));
                push_json_str(&mut self.buf, &escaped_text(b));
            }
        }
        self.buf.push(b']');
    }

    /// `"k": [strings]` of text.
    pub fn str_array<S: AsRef<str>>(&mut self, k: &str, items: impl IntoIterator<Item = S>) {
        self.key(k);
        self.buf.push(b'[');
        for (i, s) in items.into_iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            push_json_str(&mut self.buf, s.as_ref());
        }
        self.buf.push(b']');
    }

    /// `"k": n`.
    #[inline(always)]
    pub fn int(&mut self, k: &str, n: impl Int) {
        self.key(k);
        n.push_to(&mut self.buf);
    }

    /// `"k": true/false`.
    pub fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.buf
            .extend_from_slice(if v { b"true" } else { b"false" });
    }

    /// `"k": null`.
    pub fn null(&mut self, k: &str) {
        self.key(k);
        self.buf.extend_from_slice(b"null");
    }

    /// Close the object (adding `escaped` if any string needed it) and return the line,
    /// newline included.
    pub fn end(&mut self) -> &[u8] {
        if !self.escaped.is_empty() {
            let e = std::mem::take(&mut self.escaped);
            self.str_array("escaped", &e);
            self.escaped = e;
        }
        self.buf.extend_from_slice(b"}\n");
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
            101,
            999,
            1000,
            i64::MIN as i128,
            i64::MAX as i128,
            u64::MAX as i128,
            u64::MAX as i128 + 1,
            10_000_000_000_000_000_000,
            100_000_000_000_000_000_000,
            i128::MIN,
            i128::MAX,
        ] {
            let mut s = Vec::new();
            push_int(&mut s, v);
            assert_eq!(String::from_utf8(s).unwrap(), v.to_string());
        }
        let mut x = 1u64;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            for v in [x, x >> 7, x >> 31, x >> 50, x % 1000] {
                let mut s = Vec::new();
                v.push_to(&mut s);
                (v as i64).push_to(&mut s);
                (v as i32).push_to(&mut s);
                (v as u16).push_to(&mut s);
                let want = format!("{v}{}{}{}", v as i64, v as i32, v as u16);
                assert_eq!(String::from_utf8(s).unwrap(), want);
            }
        }
        for v in [i64::MIN, i64::MAX, -1, 0] {
            let mut s = Vec::new();
            v.push_to(&mut s);
            assert_eq!(String::from_utf8(s).unwrap(), v.to_string());
        }
        let mut s = Vec::new();
        push_padded(&mut s, 7, 2);
        push_padded(&mut s, 1234, 9);
        push_padded(&mut s, 5, 1);
        push_padded(&mut s, 123, 3);
        assert_eq!(s, b"070000012345123");
    }

    /// The escaping the drain did before strings were scanned a word at a time: every string
    /// must come out the same.
    fn reference(k: &str, b: &[u8]) -> (String, bool) {
        let (t, esc) = text(b);
        let mut out = String::new();
        out.push('"');
        for ch in t.chars() {
            match ch {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\0'..='\x1f' | '\x7f' => {
                    let _ = write!(out, "\\u{:04x}", ch as u32);
                }
                c => out.push(c),
            }
        }
        out.push('"');
        let _ = k;
        (out, esc)
    }

    #[test]
    fn strings_are_escaped_as_the_reference_does() {
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"plain/ascii/path/of/some/length.h".to_vec(),
            b"q\"\\\n\r\t\x01\x1f\x7f ".to_vec(),
            "caf\u{e9}/\u{1f600}/\u{7ff}\u{800}".as_bytes().to_vec(),
            b"caf\xe9\\x".to_vec(),
            b"\xff".to_vec(),
            b"abcdefg\xc3".to_vec(),
            b"abcdefgh\xe2\x82".to_vec(),
            b"abcdefghijklmnop\"qrstuvw\\xyz01234567\x00".to_vec(),
            b"\xed\xa0\x80surrogate".to_vec(),
        ];
        // Every special byte at every offset of a few words, among ASCII and among UTF-8.
        for fill in [
            "abcdefghijklmnopqrstuvwxyz0123",
            "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
        ] {
            for pos in 0..24 {
                for special in [b'"', b'\\', 0, 0x1f, 0x20, 0x7f, 0x80, 0xc3, 0xff, b'\n'] {
                    let mut v = fill.as_bytes().to_vec();
                    let p = pos.min(v.len() - 1);
                    v[p] = special;
                    cases.push(v);
                }
            }
        }
        let mut x = 9u64;
        for len in 0..64 {
            let mut v = vec![];
            for _ in 0..len {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                v.push(match (x >> 60) % 4 {
                    0 => (x >> 33) as u8,
                    _ => b'a' + ((x >> 40) % 26) as u8,
                });
            }
            cases.push(v);
        }
        for c in &cases {
            let (want, esc) = reference("p", c);
            let mut l = Line::default();
            l.begin();
            l.bytes("p", c);
            let line = String::from_utf8(l.end().to_vec()).unwrap();
            let want_line = if esc {
                format!("{{\"p\":{want},\"escaped\":[\"p\"]}}\n")
            } else {
                format!("{{\"p\":{want}}}\n")
            };
            assert_eq!(line, want_line, "{c:?}");
            if let Ok(s) = std::str::from_utf8(c) {
                let mut b = Vec::new();
                push_json_str(&mut b, s);
                assert_eq!(String::from_utf8(b).unwrap(), want);
            }
        }
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
        let s = l.end().to_vec();
        let v: serde_json::Value = serde_json::from_slice(&s).unwrap();
        assert_eq!(v["a"], "q\"\\\n\u{1}");
        assert_eq!(v["p"], "caf\\xe9\\\\x");
        assert_eq!(v["argv"][1], "\\xff");
        assert_eq!(v["escaped"], serde_json::json!(["p", "argv[1]"]));
        assert_eq!(v["n"], -3);
    }
}
