//! One pass over a line before it is read: is it *plain* (ASCII only, no backslash, no
//! control character), and where are its quotes.
//!
//! Nearly every line the drain writes is plain. In a plain line the line is valid UTF-8 (no
//! `from_utf8` needed), no string has an escape, and a string ends at the next quote: the
//! reader then finds each string's end with one bit scan ([`Quotes::next`]) instead of
//! looking at its bytes. A line that is not plain is read byte by byte, as before.
//!
//! Invariants:
//! - [`scan`] says `true` only if every byte of the line is below `0x80`, none is below
//!   `0x20`, and none is `\`. It may say `false` of a plain line (one longer than
//!   [`MAX_LINE`]): `false` only means "read it the general way".
//! - After a `true`, [`Quotes`] has a bit set for exactly the line's `"` bytes, and none
//!   past its end.
//! - The passes (AVX2 when the CPU has it, else SSE2, part of the x86-64 baseline; a byte at
//!   a time elsewhere) give the same answer: a test holds them to each other.

/// The longest line scanned (longer ones are read the general way): lines are a few hundred
/// bytes but for long command lines, and the masks live on the stack.
pub(super) const MAX_LINE: usize = 2048;

const WORDS: usize = MAX_LINE / 64;

use std::mem::MaybeUninit;

/// Where a plain line's quotes are: bit `i % 64` of word `i / 64` for byte `i`.
pub(super) struct Quotes {
    /// Words `..words` are written (by [`scan`]); the others are not read.
    masks: [MaybeUninit<u64>; WORDS],
    /// Words of `masks` that cover the line (at most [`WORDS`]).
    words: usize,
}

impl Quotes {
    /// No quotes (a line of no bytes), to be filled by [`scan`]. Costs nothing: the words
    /// are only written there.
    #[inline(always)]
    pub(super) fn new() -> Quotes {
        Quotes {
            masks: [const { MaybeUninit::uninit() }; WORDS],
            words: 0,
        }
    }

    /// The words that cover the line.
    #[inline(always)]
    fn words(&self) -> &[u64] {
        let written = &self.masks[..self.words.min(WORDS)];
        // SAFETY: `scan` writes every word below `words` before it sets `words`, and never
        // un-writes one; `MaybeUninit<u64>` has the layout of `u64`.
        unsafe { &*(written as *const [MaybeUninit<u64>] as *const [u64]) }
    }

    /// The first quote at or after byte `i`.
    #[inline(always)]
    pub(super) fn next(&self, i: usize) -> Option<usize> {
        let masks = self.words();
        let mut w = i / 64;
        let mut m = masks.get(w)? & (!0u64 << (i % 64));
        loop {
            if m != 0 {
                return Some(w * 64 + m.trailing_zeros() as usize);
            }
            w += 1;
            m = *masks.get(w)?;
        }
    }
}

/// Whether `line` is plain (see the module's invariants), noting its quotes in `q` when it
/// is (when it is not, `q` is not to be read: its masks may be partly written).
#[inline]
pub(super) fn scan(line: &[u8], q: &mut Quotes) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (just checked; std caches the answer).
            return unsafe { x86::scan_avx2(line, q) };
        }
        scan_with(line, q, x86::block_sse2)
    }
    #[cfg(not(target_arch = "x86_64"))]
    scan_with(line, q, block_portable)
}

/// [`scan`] with `block`, which maps 64 bytes to the quotes among them (bit `i` for byte
/// `i`) and a non-zero word if any of them needs attention.
#[inline(always)]
fn scan_with(line: &[u8], q: &mut Quotes, block: impl Fn(&[u8; 64]) -> (u64, u64)) -> bool {
    let len = line.len();
    if len > MAX_LINE {
        return false;
    }
    let mut other = 0;
    let mut words = 0;
    let mut chunks = line.chunks_exact(64);
    for (mask, chunk) in q.masks.iter_mut().zip(&mut chunks) {
        let Ok(chunk) = chunk.try_into() else {
            return false; // cannot be: the chunks are exact
        };
        let (quotes, o) = block(chunk);
        mask.write(quotes);
        other |= o;
        words += 1;
    }
    let rest = chunks.remainder().len();
    if rest > 0 {
        let (quotes, o) = match line.get(len.wrapping_sub(64)..).map(<&[u8; 64]>::try_from) {
            // The last 64 bytes, overlapping those already seen: the top `rest` bits are
            // the last word's.
            Some(Ok(last)) => {
                let (quotes, o) = block(last);
                (quotes >> (64 - rest), o)
            }
            // A line shorter than 64 bytes, padded with a byte that is neither a quote nor
            // one needing attention.
            _ => {
                let mut last = [b'a'; 64];
                last[..len].copy_from_slice(line);
                block(&last)
            }
        };
        let Some(mask) = q.masks.get_mut(words) else {
            return false; // cannot be: `len <= MAX_LINE`
        };
        mask.write(quotes);
        other |= o;
        words += 1;
    }
    if other != 0 {
        return false;
    }
    q.words = words;
    true
}

/// 64 bytes' quotes and bytes needing attention, a byte at a time.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn block_portable(b: &[u8; 64]) -> (u64, u64) {
    let (mut quotes, mut other) = (0u64, 0u64);
    for (i, &c) in b.iter().enumerate() {
        quotes |= u64::from(c == b'"') << i;
        other |= u64::from(!(0x20..0x80).contains(&c) || c == b'\\');
    }
    (quotes, other)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// [`super::block_portable`] with SSE2 (part of the x86-64 baseline), 16 bytes at a time.
    #[inline(always)]
    pub(super) fn block_sse2(b: &[u8; 64]) -> (u64, u64) {
        let (mut quotes, mut other) = (0u64, 0u64);
        for k in 0..4 {
            // SAFETY: SSE2 is part of the x86-64 baseline, so these instructions exist on
            // every CPU this code runs on; the load reads the 16 bytes `b[16k..16k + 16]`,
            // inside `b` (k < 4), with no alignment required (`loadu`).
            let (q, o) = unsafe {
                let v = _mm_loadu_si128(b.as_ptr().add(16 * k).cast::<__m128i>());
                let q = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
                // Signed: bytes from 0x80 (not ASCII) are negative, so below 0x20 as well.
                let low = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
                let bs = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
                (
                    _mm_movemask_epi8(q),
                    _mm_movemask_epi8(_mm_or_si128(low, bs)),
                )
            };
            quotes |= u64::from(q as u16) << (16 * k);
            other |= u64::from(o as u16);
        }
        (quotes, other)
    }

    /// [`super::scan`], 32 bytes at a time.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn scan_avx2(line: &[u8], q: &mut super::Quotes) -> bool {
        super::scan_with(line, q, |b: &[u8; 64]| {
            // SAFETY: the caller saw AVX2; the loads read the 32 bytes at 0 and at 32 of the
            // 64 of `b`, with no alignment required (`loadu`).
            unsafe {
                let p = b.as_ptr().cast::<__m256i>();
                let (lo, hi) = (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1)));
                let quote = _mm256_set1_epi8(b'"' as i8);
                let (ql, qh) = (_mm256_cmpeq_epi8(lo, quote), _mm256_cmpeq_epi8(hi, quote));
                // Signed: bytes from 0x80 (not ASCII) are negative, so below 0x20 as well.
                let space = _mm256_set1_epi8(0x20);
                let bs = _mm256_set1_epi8(b'\\' as i8);
                let other = _mm256_or_si256(
                    _mm256_or_si256(_mm256_cmpgt_epi8(space, lo), _mm256_cmpgt_epi8(space, hi)),
                    _mm256_or_si256(_mm256_cmpeq_epi8(lo, bs), _mm256_cmpeq_epi8(hi, bs)),
                );
                let quotes = u64::from(_mm256_movemask_epi8(ql) as u32)
                    | u64::from(_mm256_movemask_epi8(qh) as u32) << 32;
                (quotes, u64::from(_mm256_movemask_epi8(other) as u32))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn quotes_of(q: &Quotes, len: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(at) = q.next(i) {
            out.push(at);
            i = at + 1;
        }
        assert!(out.iter().all(|&at| at < len));
        out
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        // Mostly plain bytes, quotes often, now and then a byte that needs attention.
        let byte = prop_oneof![
            20 => 0x20u8..0x7f,
            5 => Just(b'"'),
            1 => any::<u8>(),
        ];
        prop::collection::vec(byte, 0..300)
    }

    proptest! {
        #[test]
        fn finds_every_quote_of_plain_lines_and_only_those(line in bytes()) {
            let plain = line.iter().all(|&c| (0x20..0x80).contains(&c) && c != b'\\');
            let want: Vec<usize> =
                (0..line.len()).filter(|&i| line[i] == b'"').collect();
            let mut q = Quotes::new();
            match scan(&line, &mut q).then_some(q) {
                Some(q) => {
                    prop_assert!(plain);
                    prop_assert_eq!(quotes_of(&q, line.len()), want);
                }
                None => prop_assert!(!plain),
            }
        }

        #[test]
        fn every_pass_is_the_portable_one(line in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut want = Quotes::new();
            let plain = scan_with(&line, &mut want, block_portable);
            let mut passes: Vec<(&str, Quotes, bool)> = Vec::new();
            let mut q = Quotes::new();
            let p = scan(&line, &mut q);
            passes.push(("scan", q, p));
            #[cfg(target_arch = "x86_64")]
            {
                let mut q = Quotes::new();
                let p = scan_with(&line, &mut q, x86::block_sse2);
                passes.push(("sse2", q, p));
            }
            for (name, q, p) in passes {
                prop_assert_eq!(p, plain, "{}", name);
                if plain {
                    prop_assert_eq!(q.words(), want.words(), "{}", name);
                }
            }
        }
    }

    #[test]
    fn long_lines_are_left_to_the_general_reader() {
        assert!(scan(&[b'a'; MAX_LINE], &mut Quotes::new()));
        assert!(!scan(&[b'a'; MAX_LINE + 1], &mut Quotes::new()));
        let mut at_end = vec![b'a'; MAX_LINE];
        at_end[MAX_LINE - 1] = b'"';
        let mut q = Quotes::new();
        assert!(scan(&at_end, &mut q));
        assert_eq!(q.next(0), Some(MAX_LINE - 1));
        assert_eq!(q.next(MAX_LINE), None);
    }
}
