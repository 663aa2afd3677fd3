//! Session and span identifiers: UUIDv7 values, the `spn_` prefix of span ids, and their text
//! forms. The preload generates them, the drain prints them; both use this module.
//!
//! Text forms: a session id is a bare UUID (`0190f1c2-7a3b-7def-8123-456789abcdef`), a span id
//! is `spn_` followed by the same form. Parsing also accepts the 32 hex digits without dashes.

use crate::sys;

/// Prefix of span ids in text.
pub const SPAN_PREFIX: &str = "spn_";

/// Length of a UUID in text with dashes.
pub const UUID_TEXT_LEN: usize = 36;

/// A UUIDv7 from a Unix time in milliseconds and 10 random bytes (RFC 9562 §5.7): 48 bits of
/// time, version 7, 12 random bits, variant `10`, 62 random bits.
pub fn uuid_v7_from(unix_ms: u64, random: [u8; 10]) -> [u8; 16] {
    let mut u = [0u8; 16];
    u[..6].copy_from_slice(&unix_ms.to_be_bytes()[2..]);
    u[6] = 0x70 | (random[0] & 0x0f);
    u[7] = random[1];
    u[8] = 0x80 | (random[2] & 0x3f);
    u[9..].copy_from_slice(&random[3..]);
    u
}

/// A new UUIDv7 for now. Randomness comes from `getrandom(GRND_NONBLOCK)` (a raw syscall that
/// keeps `errno`); if the kernel refuses, from the clock, pid and thread id mixed together —
/// unique enough for span ids, which only need to differ within a session. No allocation.
pub fn new_uuid_v7() -> [u8; 16] {
    let now = sys::clock_ns(libc::CLOCK_REALTIME);
    let mut random = [0u8; 10];
    if !sys::getrandom(&mut random) {
        let mut x = now ^ ((sys::getpid() as u64) << 32) ^ sys::gettid() as u64;
        for chunk in random.chunks_mut(8) {
            // splitmix64
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
    uuid_v7_from(now / 1_000_000, random)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Write `u` as 36 characters of lower-case text with dashes.
pub fn format_uuid(u: &[u8; 16], out: &mut [u8; UUID_TEXT_LEN]) {
    let mut o = 0;
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[o] = b'-';
            o += 1;
        }
        out[o] = HEX[(b >> 4) as usize];
        out[o + 1] = HEX[(b & 15) as usize];
        o += 2;
    }
}

/// `u` as text with dashes.
pub fn uuid_string(u: &[u8; 16]) -> String {
    let mut b = [0u8; UUID_TEXT_LEN];
    format_uuid(u, &mut b);
    String::from_utf8_lossy(&b).into_owned()
}

/// `u` as a span id (`spn_…`).
pub fn span_string(u: &[u8; 16]) -> String {
    format!("{SPAN_PREFIX}{}", uuid_string(u))
}

/// Parse a UUID: 36 characters with dashes at 8, 13, 18, 23, or 32 hex digits. Either case.
pub fn parse_uuid(s: &[u8]) -> Option<[u8; 16]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let dashed = s.len() == 36;
    if !dashed && s.len() != 32 {
        return None;
    }
    let mut u = [0u8; 16];
    let mut n = 0;
    let mut i = 0;
    while i < s.len() {
        if dashed && matches!(i, 8 | 13 | 18 | 23) {
            if s[i] != b'-' {
                return None;
            }
            i += 1;
            continue;
        }
        let hi = digit(s[i])?;
        let lo = digit(*s.get(i + 1)?)?;
        u[n] = hi << 4 | lo;
        n += 1;
        i += 2;
    }
    (n == 16).then_some(u)
}

/// Parse a span id: `spn_` and a UUID. A bare UUID is accepted too.
pub fn parse_span(s: &[u8]) -> Option<[u8; 16]> {
    parse_uuid(s.strip_prefix(SPAN_PREFIX.as_bytes()).unwrap_or(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v7_has_version_variant_and_time() {
        let u = uuid_v7_from(0x0190_f1c2_7a3b, [0xff; 10]);
        assert_eq!(uuid_string(&u), "0190f1c2-7a3b-7fff-bfff-ffffffffffff");
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads the clock and getrandom")]
    fn new_ids_are_v7_and_differ() {
        let a = new_uuid_v7();
        let b = new_uuid_v7();
        assert_ne!(a, b);
        assert_eq!(a[6] >> 4, 7);
        assert_eq!(a[8] >> 6, 2);
    }

    #[test]
    fn text_round_trips_and_bad_text_is_refused() {
        let u = uuid_v7_from(0x0190_f1c2_7a3b, [0x5a; 10]);
        let s = span_string(&u);
        assert!(s.starts_with("spn_"));
        assert_eq!(parse_span(s.as_bytes()), Some(u));
        assert_eq!(
            parse_uuid(uuid_string(&u).replace('-', "").as_bytes()),
            Some(u)
        );
        assert_eq!(parse_uuid(b"0190f1c2-7a3b-7fff-bfff-fffffffffffg"), None);
        assert_eq!(parse_uuid(b"0190f1c2x7a3b-7fff-bfff-ffffffffffff"), None);
        assert_eq!(parse_uuid(b"short"), None);
    }
}
