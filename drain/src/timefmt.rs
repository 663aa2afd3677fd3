//! RFC 3339 timestamps in UTC with nanoseconds (`2026-11-27T05:10:00.123456789Z`), without a
//! date library: days since the epoch to a civil date (Howard Hinnant's algorithm).

use std::io::Write;

/// Formats timestamps, reusing the text up to the second of the previous call when the
/// second is the same (consecutive records mostly share it).
///
/// ```
/// let mut c = drain::timefmt::TsCache::default();
/// let mut s = String::new();
/// c.push(&mut s, 1_796_205_600_000_000_001);
/// assert_eq!(s, "2026-12-02T10:00:00.000000001Z");
/// assert_eq!(drain::timefmt::rfc3339(-1), "1969-12-31T23:59:59.999999999Z");
/// ```
#[derive(Default)]
pub struct TsCache {
    /// The second of `prefix`, since the epoch.
    sec: Option<i64>,
    /// `YYYY-MM-DDTHH:MM:SS.` of that second.
    prefix: Vec<u8>,
    /// The decimal digits of that second (when it is positive).
    sec_digits: Vec<u8>,
}

impl TsCache {
    /// Append the RFC 3339 form of `unix_ns` to `out` (no allocation in the same second).
    pub fn push(&mut self, out: &mut String, unix_ns: i128) {
        let mut b = Vec::with_capacity(40);
        self.push_bytes(&mut b, unix_ns);
        // Only ASCII digits and separators are written.
        out.push_str(&String::from_utf8_lossy(&b));
    }

    /// [`TsCache::push`] into a byte buffer.
    pub fn push_bytes(&mut self, out: &mut Vec<u8>, unix_ns: i128) {
        let nanos = self.second(unix_ns);
        out.extend_from_slice(&self.prefix);
        crate::json::push_padded(out, nanos, 9);
        out.push(b'Z');
    }

    /// The members `"ts":"<RFC 3339>","ts_unix_ns":<unix_ns>` (every line starts with them),
    /// the digits of the second shared by both and cached with it.
    pub(crate) fn push_members(&mut self, out: &mut Vec<u8>, unix_ns: i128) {
        let nanos = self.second(unix_ns);
        out.extend_from_slice(b"\"ts\":\"");
        out.extend_from_slice(&self.prefix);
        let at = out.len();
        crate::json::push_padded(out, nanos, 9);
        out.extend_from_slice(b"Z\",\"ts_unix_ns\":");
        if self.sec_digits.is_empty() {
            // Before one second after the epoch: no shared digits.
            crate::json::push_int(out, unix_ns);
        } else {
            out.extend_from_slice(&self.sec_digits);
            out.extend_from_within(at..at + 9);
        }
    }

    /// Make the cache hold the second of `unix_ns`; returns the nanoseconds within it.
    #[inline]
    fn second(&mut self, unix_ns: i128) -> u32 {
        // 64-bit division for every time of years 1678-2261 (128-bit division is a call).
        let (secs, nanos) = match i64::try_from(unix_ns) {
            Ok(ns) => (
                ns.div_euclid(1_000_000_000),
                ns.rem_euclid(1_000_000_000) as u32,
            ),
            Err(_) => (
                unix_ns.div_euclid(1_000_000_000) as i64,
                unix_ns.rem_euclid(1_000_000_000) as u32,
            ),
        };
        if self.sec != Some(secs) {
            let days = secs.div_euclid(86_400);
            let sod = secs.rem_euclid(86_400);
            let (y, m, d) = civil(days);
            self.prefix.clear();
            let _ = write!(
                self.prefix,
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.",
                sod / 3600,
                sod / 60 % 60,
                sod % 60
            );
            self.sec_digits.clear();
            // `unix_ns` is the second's digits then nine of nanoseconds: only for a
            // second that is positive and whose `secs` is the whole quotient (no i64 cut).
            if secs > 0 && unix_ns / 1_000_000_000 == secs as i128 {
                crate::json::push_u64(&mut self.sec_digits, secs as u64);
            }
            self.sec = Some(secs);
        }
        nanos
    }
}

/// Format Unix nanoseconds.
pub fn rfc3339(unix_ns: i128) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000) as i64;
    let nanos = unix_ns.rem_euclid(1_000_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn members_are_the_time_twice() {
        let mut c = super::TsCache::default();
        for ns in [
            0i128,
            1,
            999_999_999,
            1_000_000_000,
            1_000_000_001,
            1_796_205_600_000_000_001,
            1_796_205_600_999_999_999,
            1_796_205_601_000_000_000,
            -1,
            -1_000_000_000,
            -1_000_000_001,
            i64::MAX as i128,
            i64::MIN as i128,
            i64::MIN as i128 - 1,
            u64::MAX as i128,
            u64::MAX as i128 * 3,
            -(u64::MAX as i128),
        ] {
            let mut b = Vec::new();
            c.push_members(&mut b, ns);
            let want = format!("\"ts\":\"{}\",\"ts_unix_ns\":{ns}", super::rfc3339(ns));
            assert_eq!(String::from_utf8(b).unwrap(), want);
        }
    }

    #[test]
    fn known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            super::rfc3339(1_795_753_800_123_456_789),
            "2026-11-27T04:30:00.123456789Z"
        );
        assert_eq!(
            super::rfc3339(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
    }
}
