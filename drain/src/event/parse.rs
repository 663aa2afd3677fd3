//! The fast reader of one `trace.jsonl` line into a borrowed [`Event`].
//!
//! `summary`, `export` and the other views read millions of lines; a generic JSON
//! deserializer spends most of its time allocating a `String` per member and dispatching
//! through visitors. This reader walks the line once and hands out slices of it: a string
//! member without escapes is borrowed (`Cow::Borrowed`), one with escapes is unescaped into
//! an owned string. Members the schema does not name are skipped.
//!
//! Invariants:
//! - It accepts what the `serde` derive of [`Event`] accepts and gives the same event
//!   (a test holds both to every line of real traces, and to generated events), with two
//!   differences: a member given twice keeps its last value (`serde` refuses the line), and
//!   arrays or objects nested more than [`MAX_DEPTH`] deep inside a member the schema does
//!   not name make the line unreadable (`serde` steps over any depth).
//! - Hostile input: it never panics, nesting of skipped values is bounded by [`MAX_DEPTH`],
//!   and work is linear in the line's length.
//! - Every string handed out is a slice of the (UTF-8) line between ASCII quotes, or built
//!   from it: it is valid UTF-8 by construction.

use std::borrow::Cow;
use std::fmt;

use super::scan::{self, Quotes};
use super::Event;

/// How deep arrays and objects nested inside a skipped member may go.
pub const MAX_DEPTH: u32 = 128;

/// Why a line is not an event: the byte offset and what was wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset in the line.
    pub at: usize,
    /// What was expected or found.
    pub what: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

impl std::error::Error for ParseError {}

type R<T> = Result<T, ParseError>;

/// Members every line must have (the non-`Option` fields of [`Event`]).
const TS: u8 = 1;
const TS_UNIX_NS: u8 = 2;
const EVENT_TYPE: u8 = 4;
const COMPONENT: u8 = 8;
const POS: u8 = 16;
const RING_ID: u8 = 32;
const REQUIRED: u8 = TS | TS_UNIX_NS | EVENT_TYPE | COMPONENT | POS | RING_ID;

/// What the reader saw of a line's form: where its own members are, when they can be
/// copied as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layout {
    /// The byte range of the members after the line's header (from the quote of the first
    /// name to the end of the last value; empty when there are none), when the line has the
    /// drain's own form: no whitespace between tokens, every member one the schema names,
    /// each once and in the schema's order (the header first), and no member but `family`
    /// given as `null`. Those bytes, between braces, are then the JSON object of the event's
    /// members after the header as [`crate::event::write_members`] writes it, but for how
    /// strings are escaped (they keep the line's escapes).
    pub rest: Option<(usize, usize)>,
    /// Whether the line is ASCII with no backslash and no control character: none of its
    /// strings has an escape, or a character `serde_json` escapes, so each string read from it
    /// is borrowed from it, and written as JSON by putting it between quotes as it is. (Noted
    /// however the line was read.)
    pub plain: bool,
}

/// Members in the header (the first of the schema), which [`Layout::rest`] leaves out.
const HEADER_MEMBERS: u32 = super::HEADER.len() as u32;

/// What [`Reader::member`] says of a member that cannot be copied (see [`Layout`]): one the
/// schema does not name, or an absent one written as `null`.
const NOT_COPIED: u32 = u32::MAX;

/// Parse one line (no newline; surrounding whitespace is allowed).
pub fn parse(line: &str) -> R<Event<'_>> {
    let mut ev = Event::default();
    parse_into(line, &mut ev).map(|()| ev)
}

/// [`parse`] into `ev`, which must be [`Event::default`] (filled in place: an event is large).
pub fn parse_into<'a>(line: &'a str, ev: &mut Event<'a>) -> R<()> {
    let mut quotes = Quotes::new();
    let plain = scan::scan(line.as_bytes(), &mut quotes);
    read_line::<false>(line, plain.then_some(&quotes), ev).map(|_| ())
}

/// [`parse_into`] of bytes (no newline), which must be UTF-8, noting the line's [`Layout`]
/// when `FORM`.
pub fn parse_bytes_into<'a, const FORM: bool>(line: &'a [u8], ev: &mut Event<'a>) -> R<Layout> {
    let mut quotes = Quotes::new();
    let plain = scan::scan(line, &mut quotes);
    let text = if plain {
        // SAFETY: `scan` found every byte of the line below 0x80: ASCII, which is UTF-8.
        unsafe { std::str::from_utf8_unchecked(line) }
    } else {
        std::str::from_utf8(line).map_err(|e| ParseError {
            at: e.valid_up_to(),
            what: "not UTF-8",
        })?
    };
    read_line::<FORM>(text, plain.then_some(&quotes), ev)
}

/// [`parse_into`], noting the line's [`Layout`] when `FORM` (it costs about a tenth of the
/// reading, so it is done only when asked for). `quotes`: the line's, if it is plain.
fn read_line<'a, const FORM: bool>(
    line: &'a str,
    quotes: Option<&Quotes>,
    ev: &mut Event<'a>,
) -> R<Layout> {
    let mut p = Reader {
        s: line,
        i: 0,
        quotes,
    };
    let mut seen = 0u8;
    // The line's form (see Layout): no whitespace or member that cannot be copied seen, the
    // place in the schema the next member must be at least at, where the members after the
    // header start and end.
    let mut plain = line.starts_with('{');
    let mut next_place = 0u32;
    let (mut rest_from, mut rest_to) = (usize::MAX, 0);
    // The header as the drain writes it is read without looking its names up; a line that
    // differs is read member by member from its start.
    let header = p.header(ev);
    if header.is_some() {
        seen = REQUIRED;
        next_place = HEADER_MEMBERS;
    } else {
        *ev = Event::default();
        p.i = 0;
        p.ws();
        p.expect(b'{')?;
        p.ws();
    }
    if header == Some(b'}') {
        // The header was the whole line (its `}` consumed).
    } else if header.is_none() && p.peek() == Some(b'}') {
        p.i += 1;
    } else {
        // A compact line (as the drain writes them) has no whitespace: each step looks for
        // its character first and for whitespace only if it is not there.
        loop {
            if p.peek() != Some(b'"') {
                p.ws();
                plain = false;
            }
            let start = p.i;
            let (key, packed) = p.name()?;
            if p.peek() == Some(b':') {
                p.i += 1;
            } else {
                p.ws();
                p.expect(b':')?;
                plain = false;
            }
            if p.peek() != Some(b'"') {
                let at = p.i;
                p.ws();
                plain &= p.i == at;
            }
            let (bits, place) = p.member(&key, packed, ev)?;
            seen |= bits;
            if FORM {
                plain &= place >= next_place && place != NOT_COPIED;
                next_place = place.wrapping_add(1);
                if place >= HEADER_MEMBERS {
                    rest_from = rest_from.min(start);
                    rest_to = p.i;
                }
            }
            let mut next = p.next();
            if matches!(next, Some(b' ' | b'\t' | b'\n' | b'\r')) {
                p.ws();
                next = p.next();
                plain = false;
            }
            match next {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return p.err_before("expected `,` or `}`"),
            }
        }
    }
    plain &= p.i == line.len();
    p.ws();
    if p.i != line.len() {
        return p.err("trailing characters");
    }
    if seen & REQUIRED != REQUIRED {
        return p.err("a member every line has is missing");
    }
    if !FORM {
        return Ok(Layout {
            rest: None,
            plain: quotes.is_some(),
        });
    }
    if rest_from == usize::MAX {
        // No member after the header: nothing to copy (an empty range before the `}`).
        (rest_from, rest_to) = (p.i - 1, p.i - 1);
    }
    Ok(Layout {
        rest: plain.then_some((rest_from, rest_to)),
        plain: quotes.is_some(),
    })
}

/// A cursor over the line.
struct Reader<'a, 'q> {
    s: &'a str,
    i: usize,
    /// The line's quotes, when it is plain ([`scan`]): no escapes, and a string ends at the
    /// next quote.
    quotes: Option<&'q Quotes>,
}

impl<'a> Reader<'a, '_> {
    fn bytes(&self) -> &'a [u8] {
        self.s.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn err<T>(&self, what: &'static str) -> R<T> {
        Err(ParseError { at: self.i, what })
    }

    /// An error at the byte just consumed.
    fn err_before<T>(&self, what: &'static str) -> R<T> {
        Err(ParseError {
            at: self.i.saturating_sub(1),
            what,
        })
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> R<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            self.err(match c {
                b'{' => "expected `{`",
                b':' => "expected `:`",
                b'"' => "expected a string",
                _ => "unexpected character",
            })
        }
    }

    /// Consume `word` (a literal) if it is next.
    fn literal(&mut self, word: &[u8]) -> bool {
        // Most values are not the literal: their first byte says so.
        if self.peek() != word.first().copied() {
            return false;
        }
        if self.bytes()[self.i..].starts_with(word) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    /// The twelve members of the header (all of [`super::HEADER`], in order), compact, from
    /// the line's `{`: read into `ev` without looking their names up. Then the byte after
    /// them (`,` or `}`, consumed); `None` if the line has another form (what was read is
    /// then to be dropped).
    #[inline(always)]
    fn header(&mut self, ev: &mut Event<'a>) -> Option<u8> {
        self.word(b"{\"ts\":")?;
        ev.ts = self.string().ok()?;
        self.word(b",\"ts_unix_ns\":")?;
        ev.ts_unix_ns = self.int().ok()?;
        self.word(b",\"event_type\":")?;
        ev.event_type = self.string().ok()?;
        self.word(b",\"session_id\":")?;
        ev.session_id = self.opt_string().ok()?;
        self.word(b",\"span_id\":")?;
        ev.span_id = self.opt_string().ok()?;
        self.word(b",\"parent_span\":")?;
        ev.parent_span = self.opt_string().ok()?;
        self.word(b",\"parent_image\":")?;
        ev.parent_image = self.opt_string().ok()?;
        self.word(b",\"component\":")?;
        ev.component = self.string().ok()?;
        self.word(b",\"pid\":")?;
        ev.pid = self.opt_int().ok()?;
        self.word(b",\"tid\":")?;
        ev.tid = self.opt_int().ok()?;
        self.word(b",\"pos\":")?;
        ev.pos = self.uint().ok()?;
        self.word(b",\"ring_id\":")?;
        ev.ring_id = self.string().ok()?;
        self.next().filter(|c| matches!(c, b',' | b'}'))
    }

    /// Consume `w` if it is next.
    #[inline(always)]
    fn word(&mut self, w: &[u8]) -> Option<()> {
        let next = self.bytes().get(self.i..self.i + w.len())?;
        (next == w).then(|| self.i += w.len())
    }

    /// A member name, and it packed ([`pack`]). A name of at most 15 plain bytes (every
    /// name the schema has but two) is found and packed in one 16-byte window.
    #[inline(always)]
    fn name(&mut self) -> R<(Cow<'a, str>, u128)> {
        let b = self.bytes();
        let start = self.i + 1;
        if let (Some(b'"'), Some(lo), Some(hi)) =
            (self.peek(), word_at(b, start), word_at(b, start + 8))
        {
            // The first byte that ends a plain ASCII name, in the low word, else the high one.
            let ends = |w: u64| ends_run(w) | (w & HIGHS);
            let len = match (ends(lo), ends(hi)) {
                (e, _) if e != 0 => e.trailing_zeros() / 8,
                (_, e) => 8 + e.trailing_zeros() / 8, // 16 when neither word has one
            } as usize;
            let word = if len < 8 { lo } else { hi };
            if len < 16 && (word >> (len % 8 * 8)) as u8 == b'"' {
                self.i = start + len + 1;
                let w = u128::from(hi) << 64 | u128::from(lo);
                let keep = (1u128 << (len * 8)) - 1;
                return Ok((
                    Cow::Borrowed(&self.s[start..start + len]),
                    (w & keep) | !keep,
                ));
            }
        }
        let key = self.string()?;
        let packed = pack(key.as_bytes());
        Ok((key, packed))
    }

    /// Store one member's value (or skip a member the schema does not name): the bit of a
    /// required member it set, and its place in the schema ([`NOT_COPIED`]: not named there,
    /// or a `null` that [`Layout`] does not copy).
    #[inline(always)]
    fn member(&mut self, key: &str, packed: u128, ev: &mut Event<'a>) -> R<(u8, u32)> {
        /// One arm per member, found by the packed name's slot in a perfect hash table
        /// ([`slot_of`]) and chosen by its place in the schema (then, for a name longer than
        /// a packed word, checked whole). The list is in the schema's order (that of
        /// [`Event`]'s fields).
        macro_rules! dispatch {
            ($($field:ident: $read:ident $(=> $bit:ident)?,)*) => {{
                #[allow(non_upper_case_globals, non_camel_case_types, dead_code)]
                mod names {
                    /// Each member's place in the schema.
                    pub enum Place { $($field,)* }
                    /// The places as constants (to match on).
                    pub mod place {
                        $(pub const $field: u8 = super::Place::$field as u8;)*
                    }
                    /// The names, and packed, by place.
                    pub const NAMES: &[&str] = &[$(stringify!($field),)*];
                    pub const PACKED: &[u128] = &[$(super::pack(stringify!($field).as_bytes()),)*];
                    /// The place of the name in each slot (`u8::MAX`: none); building it
                    /// fails the build if two names share a slot.
                    pub const SLOTS: [u8; 256] = super::slots(PACKED);
                }
                use names::place;
                let at = names::SLOTS[slot_of(packed)];
                // A packed name is exact only when both names fit a word whole; a longer one
                // (`supervised_reason`) packs like its 16-byte prefix.
                let found = match (names::PACKED.get(usize::from(at)), names::NAMES.get(usize::from(at))) {
                    (Some(&p), Some(name)) => {
                        p == packed && ((key.len() <= 16 && name.len() <= 16) || key == *name)
                    }
                    _ => false,
                };
                // `null` is written for an absent member of the header, and may be given
                // for `family`; for any other it is an absent member written out.
                let null = self.peek() == Some(b'n');
                match if found { at } else { u8::MAX } {
                    $(place::$field => {
                        ev.$field = self.$read()?;
                        let place = u32::from(place::$field);
                        let copied_null = null && place >= HEADER_MEMBERS
                            && place != u32::from(place::family);
                        Ok((0 $(| $bit)?, if copied_null { NOT_COPIED } else { place }))
                    })*
                    _ => self.skip(0).map(|()| (0, NOT_COPIED)),
                }
            }};
        }
        dispatch! {
            ts: string => TS,
            ts_unix_ns: int => TS_UNIX_NS,
            event_type: string => EVENT_TYPE,
            session_id: opt_string,
            span_id: opt_string,
            parent_span: opt_string,
            parent_image: opt_string,
            component: string => COMPONENT,
            pid: opt_int,
            tid: opt_int,
            pos: uint => POS,
            ring_id: string => RING_ID,
            truncated: opt_bool,
            escaped: opt_strings,
            redacted: opt_bool,
            path_unreadable: opt_bool,
            argv_unreadable: opt_bool,
            envp_unreadable: opt_bool,
            addr_unreadable: opt_bool,
            times_unreadable: opt_bool,
            name_unreadable: opt_bool,
            op: opt_string,
            path: opt_string,
            abs_path: opt_string,
            new_path: opt_string,
            abs_new_path: opt_string,
            target: opt_string,
            dirfd: opt_int,
            dirfd2: opt_int,
            flags: opt_int,
            access: opt_string,
            mode: opt_int,
            length: opt_int,
            length_low32: opt_int,
            uid: opt_int,
            gid: opt_int,
            atime: opt_string,
            mtime: opt_string,
            size: opt_uint,
            fd: opt_int,
            result: opt_int,
            errno: opt_int,
            ppid: opt_int,
            exe: opt_string,
            argv: opt_strings,
            cwd: opt_string,
            via: opt_string,
            how: opt_string,
            exit_code: opt_int,
            signal: opt_int,
            child_pid: opt_int,
            untraced: opt_bool,
            untraced_reason: opt_string,
            supervised: opt_bool,
            supervised_reason: opt_string,
            family: present,
            addr: opt_string,
            port: opt_int,
            name: opt_string,
            service: opt_string,
            addrs: opt_strings,
            naddrs: opt_int,
            base: opt_uint,
            at_start: opt_bool,
            count: opt_uint,
            reason: opt_string,
            exact: opt_bool,
            bytes: opt_uint,
            kind: opt_uint,
        }
    }

    /// A member whose `null` is kept apart from its absence (`family`).
    fn present(&mut self) -> R<Option<serde_json::Value>> {
        self.value().map(Some)
    }

    /// `null` (then `None`) or a value read by `f`.
    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> R<T>) -> R<Option<T>> {
        if self.literal(b"null") {
            Ok(None)
        } else {
            f(self).map(Some)
        }
    }

    #[inline(always)]
    fn opt_string(&mut self) -> R<Option<Cow<'a, str>>> {
        if self.peek() == Some(b'"') {
            return self.string().map(Some);
        }
        self.opt(Self::string)
    }

    fn opt_int(&mut self) -> R<Option<i64>> {
        self.opt(Self::int)
    }

    fn opt_uint(&mut self) -> R<Option<u64>> {
        self.opt(Self::uint)
    }

    fn opt_bool(&mut self) -> R<Option<bool>> {
        self.opt(|p| {
            if p.literal(b"true") {
                Ok(true)
            } else if p.literal(b"false") {
                Ok(false)
            } else {
                p.err("expected a boolean")
            }
        })
    }

    fn opt_strings(&mut self) -> R<Option<Vec<Cow<'a, str>>>> {
        self.opt(|p| {
            p.expect(b'[')?;
            let mut v = Vec::new();
            p.ws();
            if p.peek() == Some(b']') {
                p.i += 1;
                return Ok(v);
            }
            loop {
                p.ws();
                v.push(p.string()?);
                p.ws();
                match p.next() {
                    Some(b',') => continue,
                    Some(b']') => return Ok(v),
                    _ => return p.err_before("expected `,` or `]`"),
                }
            }
        })
    }

    /// Any JSON value, as `serde_json` reads it (the rare `family` member).
    fn value(&mut self) -> R<serde_json::Value> {
        let start = self.i;
        self.skip(0)?;
        serde_json::from_str(&self.s[start..self.i]).or_else(|_| self.err("invalid value"))
    }

    /// A JSON integer that fits `u64`: digits, no sign, fraction or exponent.
    #[inline(always)]
    fn uint(&mut self) -> R<u64> {
        // The common case inline: 1 to 19 digits (no overflow), no leading zero, no fraction
        // or exponent after them.
        let (start, b) = (self.i, self.bytes());
        let (n, end) = digits(b, start);
        let ok = matches!(end - start, 1..=19)
            && (end - start == 1 || b[start] != b'0')
            && !matches!(b.get(end), Some(b'.' | b'e' | b'E'));
        if ok {
            self.i = end;
            return Ok(n);
        }
        self.any_uint()
    }

    /// [`Reader::uint`] of any run of digits, or an error.
    #[inline(never)]
    fn any_uint(&mut self) -> R<u64> {
        let start = self.i;
        let b = self.bytes();
        // Up to 19 digits cannot overflow: read without checks, then check a longer run.
        let (mut n, end) = digits(b, start);
        self.i = end;
        let digits = end - start;
        if digits > 19 {
            n = 0;
            for (k, &d) in b[start..self.i].iter().enumerate() {
                n = match n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(d - b'0')))
                {
                    Some(n) => n,
                    None => {
                        self.i = start + k;
                        return self.err("integer out of range");
                    }
                };
            }
        }
        if digits == 0 {
            return self.err("expected an integer");
        }
        if digits > 1 && self.bytes()[start] == b'0' {
            return Err(ParseError {
                at: start,
                what: "invalid number (leading zero)",
            });
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return self.err("expected an integer, found a fraction or exponent");
        }
        Ok(n)
    }

    /// A JSON integer that fits `i64`.
    fn int(&mut self) -> R<i64> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let start = self.i;
        let n = self.uint()?;
        let v = if negative {
            // serde_json reads `-0` as a float, which no integer member takes.
            (n != 0).then(|| 0i64.checked_sub_unsigned(n)).flatten()
        } else {
            i64::try_from(n).ok()
        };
        match v {
            Some(v) => Ok(v),
            None => Err(ParseError {
                at: start,
                what: "integer out of range",
            }),
        }
    }

    /// A JSON string: borrowed from the line when it has no escapes.
    #[inline(always)]
    fn string(&mut self) -> R<Cow<'a, str>> {
        // A plain line: the string is all up to the next quote, and every index is a
        // character boundary (the line is ASCII).
        if let (Some(quotes), Some(b'"')) = (self.quotes, self.peek()) {
            let start = self.i + 1;
            if let Some(end) = quotes.next(start).filter(|&end| end <= self.s.len()) {
                // SAFETY: `start <= end` (the next quote at or after `start`) and `end` is in
                // the line; the line is plain, all ASCII, so every index is a character
                // boundary.
                let s = unsafe { self.s.get_unchecked(start..end) };
                self.i = end + 1;
                return Ok(Cow::Borrowed(s));
            }
        }
        self.any_string()
    }

    /// [`Reader::string`] byte by byte, for a line that is not plain (or a string that is not
    /// well formed).
    #[inline(never)]
    fn any_string(&mut self) -> R<Cow<'a, str>> {
        self.expect(b'"')?;
        let start = self.i;
        self.i = plain_run(self.bytes(), self.i);
        match self.peek() {
            Some(b'"') => {
                let s = &self.s[start..self.i];
                self.i += 1;
                Ok(Cow::Borrowed(s))
            }
            Some(b'\\') => self.escaped(start).map(Cow::Owned),
            Some(_) => self.err("control character in a string"),
            None => self.err("unterminated string"),
        }
    }

    /// The rest of a string that has an escape at `self.i`; `start` is just after its quote.
    fn escaped(&mut self, start: usize) -> R<String> {
        let mut out = String::with_capacity(self.i - start + 16);
        out.push_str(&self.s[start..self.i]);
        loop {
            match self.next() {
                Some(b'"') => return Ok(out),
                Some(b'\\') => {
                    let c = match self.next() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => self.unicode_escape()?,
                        _ => return self.err_before("invalid escape"),
                    };
                    out.push(c);
                }
                Some(_) => {
                    // Back up and copy the plain run that starts here.
                    let run = self.i - 1;
                    self.i = plain_run(self.bytes(), run);
                    if self.i == run {
                        return self.err("control character in a string");
                    }
                    out.push_str(&self.s[run..self.i]);
                }
                None => return self.err("unterminated string"),
            }
        }
    }

    /// The character of a `\uXXXX` escape (the `\u` consumed), joining a surrogate pair.
    fn unicode_escape(&mut self) -> R<char> {
        let hi = self.hex4()?;
        let code = match hi {
            0xD800..=0xDBFF => {
                if !self.literal(b"\\u") {
                    return self.err("lone leading surrogate in hex escape");
                }
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return self.err("invalid low surrogate in hex escape");
                }
                0x10000 + ((u32::from(hi) - 0xD800) << 10) + (u32::from(lo) - 0xDC00)
            }
            0xDC00..=0xDFFF => return self.err("lone trailing surrogate in hex escape"),
            c => u32::from(c),
        };
        char::from_u32(code).map_or_else(|| self.err("invalid hex escape"), Ok)
    }

    fn hex4(&mut self) -> R<u16> {
        let mut v = 0u16;
        for _ in 0..4 {
            let d = match self.next() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return self.err_before("invalid hex escape"),
            };
            v = v << 4 | u16::from(d);
        }
        Ok(v)
    }

    /// Step over one value of any type (a member the schema does not name).
    fn skip(&mut self, depth: u32) -> R<()> {
        if depth > MAX_DEPTH {
            return self.err("nested too deeply");
        }
        match self.peek() {
            Some(b'"') => self.skip_string(),
            Some(b'{') => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    self.string()?;
                    self.ws();
                    self.expect(b':')?;
                    self.ws();
                    self.skip(depth + 1)?;
                    self.ws();
                    match self.next() {
                        Some(b',') => continue,
                        Some(b'}') => return Ok(()),
                        _ => return self.err_before("expected `,` or `}`"),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    self.skip(depth + 1)?;
                    self.ws();
                    match self.next() {
                        Some(b',') => continue,
                        Some(b']') => return Ok(()),
                        _ => return self.err_before("expected `,` or `]`"),
                    }
                }
            }
            Some(b't') if self.literal(b"true") => Ok(()),
            Some(b'f') if self.literal(b"false") => Ok(()),
            Some(b'n') if self.literal(b"null") => Ok(()),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => self.err("expected a value"),
        }
    }

    /// Step over a string the schema does not name, checking it as `serde_json` does when it
    /// ignores one: escapes well formed, no control characters, any `\uXXXX` (a lone
    /// surrogate included).
    fn skip_string(&mut self) -> R<()> {
        self.expect(b'"')?;
        loop {
            self.i = plain_run(self.bytes(), self.i);
            match self.next() {
                Some(b'"') => return Ok(()),
                Some(b'\\') => match self.next() {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {}
                    Some(b'u') => {
                        self.hex4()?;
                    }
                    _ => return self.err_before("invalid escape"),
                },
                Some(_) => return self.err_before("control character in a string"),
                None => return self.err("unterminated string"),
            }
        }
    }

    /// Step over a JSON number of any form.
    fn number(&mut self) -> R<()> {
        let digits = |p: &mut Self| {
            let s = p.i;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.i += 1;
            }
            p.i - s
        };
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let start = self.i;
        let n = digits(self);
        if n == 0 || (n > 1 && self.bytes()[start] == b'0') {
            return self.err("invalid number");
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return self.err("invalid number");
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return self.err("invalid number");
            }
        }
        Ok(())
    }
}

/// A member name as a number: its first 16 bytes, little-endian, padded with `0xFF` (a byte
/// UTF-8 never holds, so two names of at most 16 bytes pack alike only if they are equal).
const fn pack(name: &[u8]) -> u128 {
    let mut w = [0xFFu8; 16];
    let mut i = 0;
    while i < name.len() && i < 16 {
        w[i] = name[i];
        i += 1;
    }
    u128::from_le_bytes(w)
}

/// The slot of a packed member name in a table of 256: a multiplicative hash, its multiplier
/// chosen (by a search) so that the schema's names all have slots of their own ([`slots`]
/// checks it when the program is built).
const fn slot_of(packed: u128) -> usize {
    let (lo, hi) = (packed as u64, (packed >> 64) as u64);
    ((lo ^ hi.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0x729D_E186_56E6_462D) >> 56)
        as usize
}

/// The table of [`slot_of`]: the index in `names` of the name in each slot, `u8::MAX` for
/// none. Two names in one slot fail the build (evaluated as a constant).
const fn slots(names: &[u128]) -> [u8; 256] {
    let mut t = [u8::MAX; 256];
    let mut i = 0;
    while i < names.len() {
        let s = slot_of(names[i]);
        assert!(
            t[s] == u8::MAX,
            "two member names share a slot: search for another multiplier"
        );
        assert!(i < u8::MAX as usize);
        t[s] = i as u8;
        i += 1;
    }
    t
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The 8 bytes at `i` as a little-endian word, if the line has them.
fn word_at(b: &[u8], i: usize) -> Option<u64> {
    let w: [u8; 8] = b.get(i..i + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(w))
}

/// The run of decimal digits at `start` in `b`: its value (wrapped past `u64`) and end.
/// Eight bytes at a time while `b` has eight left, then one at a time.
#[inline(always)]
fn digits(b: &[u8], start: usize) -> (u64, usize) {
    let mut n: u64 = 0;
    let mut end = start;
    while let Some(w) = word_at(b, end) {
        let (k, v) = leading_digits(w);
        n = n.wrapping_mul(POW10[k]).wrapping_add(v);
        end += k;
        if k < 8 {
            return (n, end);
        }
    }
    while let Some(d @ b'0'..=b'9') = b.get(end).copied() {
        n = n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
        end += 1;
    }
    (n, end)
}

/// Powers of ten up to eight.
const POW10: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// The decimal digits `w` (8 bytes, little-endian: the first byte lowest) starts with: how
/// many (0 to 8) and their value.
#[inline(always)]
fn leading_digits(w: u64) -> (usize, u64) {
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    let threes = ONES * 0x30;
    // A byte is a digit if its high nibble is 3, and still is with 6 added (0x30 to 0x39).
    // A carry out of a byte from 0xFA only reaches bytes after it, past the first non-digit.
    let other =
        ((w & HIGH_NIBBLES) ^ threes) | ((w.wrapping_add(ONES * 6) & HIGH_NIBBLES) ^ threes);
    let k = (other.trailing_zeros() / 8) as usize; // 8 when all are digits
    if k == 0 {
        return (0, 0);
    }
    // The digits' values moved to the top bytes (the bytes after them drop out), then
    // joined in pairs, fours and eights.
    let d = (w & (ONES * 0x0F)) << (8 * (8 - k));
    let d = d.wrapping_mul(10 << 8 | 1) >> 8;
    let d = (d & 0x00FF_00FF_00FF_00FF).wrapping_mul(100 << 16 | 1) >> 16;
    let d = (d & 0x0000_FFFF_0000_FFFF).wrapping_mul(10_000 << 32 | 1) >> 32;
    (k, d)
}

/// The bytes of `w` (8, little-endian) that end a plain run of string bytes (a quote, a
/// backslash or a control character), each with its high bit set. The lowest set bit is
/// exact: a borrow only runs upward from a byte that matched.
fn ends_run(w: u64) -> u64 {
    // A byte of `x` below `n` (n <= 128) sets its high bit.
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
    below(w, 0x20)
        | below(w ^ (ONES * u64::from(b'"')), 1)
        | below(w ^ (ONES * u64::from(b'\\')), 1)
}

/// The end of the run of string bytes from `i` that need no attention: the index of the first
/// quote, backslash or control character (or the end). Eight bytes at a time.
pub(super) fn plain_run(b: &[u8], mut i: usize) -> usize {
    while let Some(w) = word_at(b, i) {
        let hit = ends_run(w);
        if hit != 0 {
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    /// What `serde`'s derive makes of a line: the reference this reader is held to.
    fn reference(line: &str) -> Result<Event<'static>, String> {
        serde_json::from_str::<Event<'static>>(line).map_err(|e| e.to_string())
    }

    /// This reader and the reference give the same event for `l`, or both refuse it.
    fn read_alike(l: &str, what: &str) {
        match (parse(l), reference(l)) {
            (Ok(ours), Ok(theirs)) => assert_eq!(ours, theirs, "{what}"),
            (Err(_), Err(_)) => {}
            (ours, theirs) => panic!("{what}: ours {ours:?}, serde {theirs:?}"),
        }
    }

    const STRINGS: [&str; 30] = [
        "session_id",
        "span_id",
        "parent_span",
        "parent_image",
        "op",
        "path",
        "abs_path",
        "new_path",
        "abs_new_path",
        "target",
        "access",
        "atime",
        "mtime",
        "exe",
        "cwd",
        "via",
        "how",
        "untraced_reason",
        "supervised_reason",
        "addr",
        "name",
        "service",
        "reason",
        "ts",
        "event_type",
        "ring_id",
        "component",
        "path",
        "op",
        "name",
    ];
    const INTS: [&str; 20] = [
        "pid",
        "tid",
        "dirfd",
        "dirfd2",
        "flags",
        "mode",
        "length",
        "length_low32",
        "uid",
        "gid",
        "fd",
        "result",
        "errno",
        "ppid",
        "exit_code",
        "signal",
        "child_pid",
        "port",
        "naddrs",
        "ts_unix_ns",
    ];
    const UINTS: [&str; 6] = ["size", "base", "count", "bytes", "kind", "pos"];
    const BOOLS: [&str; 13] = [
        "truncated",
        "redacted",
        "path_unreadable",
        "argv_unreadable",
        "envp_unreadable",
        "addr_unreadable",
        "times_unreadable",
        "name_unreadable",
        "untraced",
        "supervised",
        "at_start",
        "exact",
        "untraced",
    ];
    const LISTS: [&str; 3] = ["argv", "addrs", "escaped"];

    /// Strings that need every kind of escape, and none.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z/._-]{0,40}",
            "\\PC{0,12}",
            "[\\x00-\\x1f\"\\\\/\u{7f}é€😀]{0,12}",
            Just("a\"b\\c\nd\te\u{1}f😀".to_string()),
        ]
    }

    /// A value for `member`, of its type or (sometimes) of another.
    fn value_for(member: &'static str) -> BoxedStrategy<Value> {
        let right = if STRINGS.contains(&member) {
            text().prop_map(Value::from).boxed()
        } else if INTS.contains(&member) {
            any::<i64>().prop_map(Value::from).boxed()
        } else if UINTS.contains(&member) {
            any::<u64>().prop_map(Value::from).boxed()
        } else if BOOLS.contains(&member) {
            any::<bool>().prop_map(Value::from).boxed()
        } else if LISTS.contains(&member) {
            proptest::collection::vec(text(), 0..4)
                .prop_map(Value::from)
                .boxed()
        } else {
            prop_oneof![Just(json!("inet")), Just(json!(10)), Just(json!(null))].boxed()
        };
        prop_oneof![
            8 => right,
            1 => Just(Value::Null),
            1 => prop_oneof![
                Just(json!(1.5)), Just(json!(-1)), Just(json!("7")), Just(json!([1, {"a": []}])),
                Just(json!(u64::MAX)), Just(json!(true)),
            ],
        ]
        .boxed()
    }

    fn member() -> impl Strategy<Value = &'static str> {
        let all: Vec<&'static str> = STRINGS
            .iter()
            .chain(&INTS)
            .chain(&UINTS)
            .chain(&BOOLS)
            .chain(&LISTS)
            .chain(&[
                "family",
                "unknown_member",
                "Path",
                "",
                "supervised_reaso",
                "times_unreadableX",
            ])
            .copied()
            .collect();
        proptest::sample::select(all)
    }

    /// A JSON object like a line: the members every line has (mostly), then others.
    fn line() -> impl Strategy<Value = String> {
        let required = (
            text(),
            any::<i64>(),
            text(),
            any::<u64>(),
            text(),
            prop::bool::weighted(0.95),
        );
        let others = proptest::collection::vec(
            member().prop_flat_map(|m| value_for(m).prop_map(move |v| (m, v))),
            0..12,
        );
        (required, others, any::<bool>()).prop_map(
            |((ts, tsn, ty, pos, ring, all), others, pretty)| {
                let mut m = Map::new();
                m.insert("ts".into(), ts.into());
                m.insert("ts_unix_ns".into(), tsn.into());
                m.insert("event_type".into(), ty.into());
                m.insert("component".into(), "telemetry".into());
                m.insert("pos".into(), pos.into());
                if all {
                    m.insert("ring_id".into(), ring.into());
                }
                for (k, v) in others {
                    m.insert(k.into(), v);
                }
                let v = Value::Object(m);
                if pretty {
                    serde_json::to_string_pretty(&v).unwrap()
                } else {
                    v.to_string()
                }
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Every object the reference reads, this reader reads alike; what it refuses, this
        /// reader refuses.
        #[test]
        fn reads_what_serde_reads(l in line()) {
            match (parse(&l), reference(&l)) {
                (Ok(ours), Ok(theirs)) => {
                    // Written again in the schema's order (the header as the drain writes
                    // it, read without looking its names up): read alike.
                    let again = serde_json::to_string(&ours).unwrap();
                    prop_assert_eq!(parse(&again).unwrap(), reference(&again).unwrap());
                    prop_assert_eq!(ours, theirs);
                }
                (Err(_), Err(_)) => {}
                (ours, theirs) => prop_assert!(false, "{l}\nours: {ours:?}\nserde: {theirs:?}"),
            }
        }

        /// A plain line's strings are all borrowed from it (so an event of one that has no
        /// lists owns no memory: the views skip its drop), and a line is plain exactly when
        /// it is ASCII with no backslash or control character.
        #[test]
        fn a_plain_lines_strings_are_borrowed(l in line()) {
            for form in [false, true] {
                let mut ev = Event::default();
                let read = if form {
                    parse_bytes_into::<true>(l.as_bytes(), &mut ev)
                } else {
                    parse_bytes_into::<false>(l.as_bytes(), &mut ev)
                };
                let Ok(layout) = read else { continue };
                let plain = l.len() <= scan::MAX_LINE
                    && l.bytes().all(|c| (0x20..0x80).contains(&c) && c != b'\\');
                prop_assert_eq!(layout.plain, plain, "{}", l);
                if layout.plain {
                    prop_assert_eq!(ev.owned_strings(), 0, "{}", l);
                }
            }
        }

        /// Whenever the reader says a line's members after the header can be copied, they
        /// are those members: as JSON, what the event's own serialization has for them.
        /// Lines `serde_json` writes from an event always have that form.
        #[test]
        fn copied_members_are_the_events_own(l in line()) {
            let mut ev = Event::default();
            let Ok(layout) = parse_bytes_into::<true>(l.as_bytes(), &mut ev) else {
                return Ok(());
            };
            let mut want = serde_json::to_value(&ev).unwrap();
            for k in crate::event::HEADER {
                want.as_object_mut().unwrap().remove(k);
            }
            if let Some((from, to)) = layout.rest {
                let copied: Value = serde_json::from_str(&format!("{{{}}}", &l[from..to])).unwrap();
                prop_assert_eq!(&copied, &want, "{}", l);
            }
            let written = serde_json::to_string(&ev).unwrap();
            let mut again = Event::default();
            let layout = parse_bytes_into::<true>(written.as_bytes(), &mut again).unwrap();
            let (from, to) = layout.rest.expect("serde_json's line has the drain's form");
            let copied: Value =
                serde_json::from_str(&format!("{{{}}}", &written[from..to])).unwrap();
            prop_assert_eq!(copied, want);
        }

        /// The exporters' direct writer writes an event's members as `serde_json` would:
        /// byte for byte when none is left out, and without just those left out otherwise.
        #[test]
        fn members_are_written_as_serde_writes_them(l in line(), s in text()) {
            let mut out = vec![];
            crate::event::append_str(&mut out, &s);
            prop_assert_eq!(out, serde_json::to_vec(&s).unwrap());
            let Ok(ev) = parse(&l) else {
                return Ok(());
            };
            let mut out = vec![];
            crate::event::append_members(&ev, crate::event::Skip::default(), &mut out);
            prop_assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&ev).unwrap()
            );
            let skip = ["ts", "pos", "path", "argv", "family", "no_such_member"];
            let mut out = vec![];
            crate::event::append_members(&ev, crate::event::Skip::of(&skip), &mut out);
            let mut want = serde_json::to_value(&ev).unwrap();
            for k in skip {
                want.as_object_mut().unwrap().remove(k);
            }
            prop_assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), want);
        }

        /// Damaged lines: never a panic, and no line accepted that the reference refuses
        /// (but for a member given twice, which this reader allows).
        #[test]
        fn damaged_lines(l in line(), at in any::<prop::sample::Index>(), byte in any::<u8>(), how in 0..3u8) {
            let mut b = l.into_bytes();
            let i = at.index(b.len());
            match how {
                0 => b[i] = byte,
                1 => b.insert(i, byte),
                _ => { b.remove(i); }
            }
            let Ok(l) = String::from_utf8(b) else { return Ok(()); };
            match (parse(&l), reference(&l)) {
                (Ok(ours), Ok(theirs)) => prop_assert_eq!(ours, theirs),
                (Err(_), Err(_)) => {}
                (Ok(_), Err(e)) if e.contains("duplicate field") => {}
                (ours, theirs) => prop_assert!(false, "{l}\nours: {ours:?}\nserde: {theirs:?}"),
            }
        }
    }

    #[test]
    fn members_are_copied_only_from_lines_in_the_drains_form() {
        let head = r#""ts":"t","ts_unix_ns":1,"event_type":"file_open","session_id":null,"span_id":null,"parent_span":null,"component":"telemetry","pid":1,"tid":1,"pos":2,"ring_id":"r""#;
        let rest = |l: &str| {
            let mut ev = Event::default();
            let layout = parse_bytes_into::<true>(l.as_bytes(), &mut ev).unwrap();
            layout.rest.map(|(a, b)| l[a..b].to_string())
        };
        let copied = r#""op":"open","path":"a\"b","flags":0,"fd":3"#;
        assert_eq!(
            rest(&format!("{{{head},{copied}}}")).as_deref(),
            Some(copied)
        );
        assert_eq!(rest(&format!("{{{head}}}")).as_deref(), Some(""));
        for l in [
            format!("{{{head}, {copied}}}"),                 // whitespace
            format!(" {{{head},{copied}}}"),                 // whitespace before
            format!("{{{head},{copied}}} "),                 // and after
            format!(r#"{{{head},"op" : "open"}}"#),          // around the colon
            format!(r#"{{{head},"path":"a","op":"open"}}"#), // out of order
            format!(r#"{{{head},"op":"open","op":"x"}}"#),   // twice
            format!(r#"{{{head},"op":"open","other":1}}"#),  // a member not in the schema
            format!(r#"{{{head},"errno":null}}"#),           // an absent member written out
            format!(r#"{{"op":"open",{head}}}"#),            // the header not first
        ] {
            assert_eq!(rest(&l), None, "{l}");
        }
        // `family` may be null (it says "unspecified"), and is copied.
        let family = r#""family":null,"addr":"x""#;
        assert_eq!(
            rest(&format!("{{{head},{family}}}")).as_deref(),
            Some(family)
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!(
            r#"{{"ts":"","ts_unix_ns":0,"event_type":"x","component":"telemetry","pos":0,"ring_id":"r","junk":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn unicode_escapes_as_serde_reads_them() {
        for esc in [
            r"\ud83d\ude00",
            r"\u00e9\u0041\u0000",
            r"\ud83d",
            r"\ude00",
            r"\ud83d\u0041",
            r"\uD83D\uDE00",
            r"\u12",
            r"\u12g4",
            r"\x",
            r"\/\b\f\n\r\t",
        ] {
            let l = format!(
                r#"{{"ts":"","ts_unix_ns":0,"event_type":"x","component":"telemetry","pos":0,"ring_id":"r","path":"a{esc}b"}}"#
            );
            read_alike(&l, esc);
        }
    }

    #[test]
    fn members_the_schema_does_not_name_and_near_names_as_serde_reads_them() {
        let base = r#""ts":"","ts_unix_ns":0,"event_type":"x","component":"telemetry","pos":0,"ring_id":"r""#;
        for extra in [
            r#""zz":"\ud800""#,
            r#""zz":"\ud83d\ude00\q""#,
            r#""zz":["\udc00",{"a":"\u12"}]"#,
            r#""supervised_reaso":"x""#,
            r#""supervised_reaso":1"#,
            r#""supervised_reason":"static""#,
            r#""times_unreadableX":5"#,
            r#""pid":-0"#,
            r#""pid":-1"#,
            r#""zz":-0"#,
        ] {
            read_alike(&format!("{{{base},{extra}}}"), extra);
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let l = r#"{"ts":"a","ts_unix_ns":1,"event_type":"file_open","component":"telemetry","pos":0,"ring_id":"r","path":"/x\ty"}"#;
        let ev = parse(l).unwrap();
        assert!(matches!(ev.ts, Cow::Borrowed("a")));
        assert!(matches!(ev.path, Some(Cow::Owned(ref p)) if p == "/x\ty"));
    }

    proptest! {
        /// Integers of every length (to past `u64`, where the unchecked reading stops), with
        /// leading zeros, signs and what may follow them, read as serde reads them.
        #[test]
        fn integers_of_every_length_as_serde_reads_them(
            digits in "-?[0-9]{0,22}",
            after in prop::sample::select(vec!["", ".5", "e3", "x", "\"", "1234567890"]),
            member in prop::sample::select(vec!["pid", "size", "fd", "bytes"]),
        ) {
            let base = r#""ts":"a","ts_unix_ns":1,"event_type":"e","component":"c","pos":0,"ring_id":"r""#;
            let l = format!("{{{base},\"{member}\":{digits}{after}}}");
            read_alike(&l, &l);
        }
    }

    #[test]
    fn leading_digits_of_a_word() {
        for k in 0..=8usize {
            for fill in [b'/', b':', b'"', b'a', 0xFF, b'0', b' '] {
                let mut b = [fill; 8];
                let digits: Vec<u8> = (0..k).map(|i| b'0' + ((i * 7 + 3) % 10) as u8).collect();
                b[..k].copy_from_slice(&digits);
                let want_k = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let want: u64 = std::str::from_utf8(&b[..want_k])
                    .unwrap()
                    .parse()
                    .unwrap_or(0);
                assert_eq!(
                    leading_digits(u64::from_le_bytes(b)),
                    (want_k, want),
                    "{b:?}"
                );
            }
        }
    }
}
