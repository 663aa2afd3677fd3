//! Helpers shared by the end-to-end tests in `tests/tests/` and the stress writer binary.

pub mod harness;

/// A stress record: who wrote it, its number, and a checksum over the whole payload, so a
/// reader can tell a torn, stale or mixed-up record from a good one.
///
/// Layout: writer u32, thread u32, seq u64, filler bytes, checksum u64 (FNV-1a of the rest).
pub mod stress {
    /// Size of the fixed fields (writer, thread, seq, checksum).
    pub const FIXED: usize = 24;

    fn fnv(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        })
    }

    /// Payload length of record `seq` (varies from 24 to 24 + 200 bytes).
    pub fn len(seq: u64) -> usize {
        FIXED + (seq.wrapping_mul(2654435761) % 201) as usize
    }

    /// Encode record `seq` of (`writer`, `thread`) into `buf` (cleared first).
    pub fn encode(writer: u32, thread: u32, seq: u64, buf: &mut Vec<u8>) {
        buf.clear();
        buf.extend_from_slice(&writer.to_le_bytes());
        buf.extend_from_slice(&thread.to_le_bytes());
        buf.extend_from_slice(&seq.to_le_bytes());
        let n = len(seq) - FIXED;
        buf.extend((0..n).map(|i| (i as u64 ^ seq ^ writer as u64) as u8));
        let c = fnv(buf);
        buf.extend_from_slice(&c.to_le_bytes());
    }

    /// Decode and check a payload: `(writer, thread, seq)` if intact.
    pub fn decode(p: &[u8]) -> Option<(u32, u32, u64)> {
        if p.len() < FIXED {
            return None;
        }
        let (body, sum) = p.split_at(p.len() - 8);
        if fnv(body) != u64::from_le_bytes(sum.try_into().ok()?) {
            return None;
        }
        let w = u32::from_le_bytes(body[0..4].try_into().ok()?);
        let t = u32::from_le_bytes(body[4..8].try_into().ok()?);
        let s = u64::from_le_bytes(body[8..16].try_into().ok()?);
        (p.len() == len(s)).then_some((w, t, s))
    }
}
