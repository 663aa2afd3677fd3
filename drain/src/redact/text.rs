//! Texts the rules look at, and where their bytes came from.
//!
//! A [`Text`] is a byte string plus, for each byte, the range of bytes of one original argv item
//! it was read from. An argv item is its own text (identity origin). A shell word is its value
//! after quote removal ("cooked"): `'ab'"c"` is `abc`, and its `a` comes from byte 1 of the item.
//!
//! Invariants, which make a masked item differ from the original only in the masked bytes:
//! - every origin range lies inside its item and ranges of successive bytes do not go backwards;
//! - an origin range covers whole escapes (`\"` is one byte of the text, two of the item), so
//!   removing it never leaves a backslash that would escape something else;
//! - quote characters and line continuations belong to no byte's range, so a masked span is
//!   written as one piece per run of contiguous ranges: the first piece becomes the mask, the
//!   others become empty, and every quote around and between them is kept.
//!
//! A text from the shell also knows which of its bytes are expansions (`$NAME`, `${…}`, `$(…)`,
//! `` `…` ``): a span made only of expansions is not a secret written in the command line and is
//! left alone; a span that cuts an expansion is widened to take all of it, so that no `$(` is
//! left without its `)`.

use std::borrow::Cow;

/// One replacement in an argv item: bytes `start..end` become the mask, or nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Edit {
    pub item: usize,
    pub start: usize,
    pub end: usize,
    pub mask: bool,
}

/// Where the bytes of a text came from.
#[derive(Clone, Debug)]
pub(crate) enum Origin {
    /// Byte `i` is byte `base + i` of the item.
    Shift(usize),
    /// Byte `i` came from bytes `map[i].0..map[i].1` of the item.
    Map(Vec<(usize, usize)>),
}

/// A byte string, its origin in argv item `item`, and its expansions (sorted, disjoint).
#[derive(Clone, Debug)]
pub(crate) struct Text<'a> {
    pub bytes: Cow<'a, [u8]>,
    pub item: usize,
    pub origin: Origin,
    pub expansions: Vec<(usize, usize)>,
}

impl<'a> Text<'a> {
    /// A whole argv item.
    pub fn item(item: usize, bytes: &'a [u8]) -> Self {
        Text {
            bytes: Cow::Borrowed(bytes),
            item,
            origin: Origin::Shift(0),
            expansions: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the text holds, outside its expansions, a blank, a quote or an operator:
    /// something that tokenizing it (again) would split, remove or turn into an expansion.
    /// Backslashes and `$` are not counted (`a\\` and `a$` tokenize to themselves), so that
    /// tokenizing a word again and again always ends.
    pub fn has_shell_syntax(&self) -> bool {
        let mut x = self.expansions.iter().peekable();
        self.bytes.iter().enumerate().any(|(i, &c)| {
            while x.next_if(|&&(_, e)| e <= i).is_some() {}
            let in_expansion = x.peek().is_some_and(|&&(s, _)| s <= i);
            is_shell_syntax(c) && !in_expansion
        })
    }

    /// The item range that bytes `a..b` of this text (a < b) came from, as one range. It is
    /// exact when the bytes are contiguous in the item; otherwise it is the range of the last
    /// byte alone, which never reaches over a quote character.
    pub fn source(&self, a: usize, b: usize) -> (usize, usize) {
        match &self.origin {
            Origin::Shift(base) => (base + a, base + b),
            Origin::Map(m) => {
                let Some(run) = m.get(a..b) else {
                    return (0, 0);
                };
                let contiguous = run.windows(2).all(|w| w[0].1 == w[1].0);
                match (run.first(), run.last()) {
                    (Some(f), Some(l)) if contiguous => (f.0, l.1),
                    (_, Some(l)) => *l,
                    _ => (0, 0),
                }
            }
        }
    }

    /// A part of this text (bytes `a..b`) as a text of its own, without expansions.
    pub fn slice(&self, a: usize, b: usize) -> Text<'static> {
        let b = b.min(self.len());
        let a = a.min(b);
        let origin = match &self.origin {
            Origin::Shift(base) => Origin::Shift(base + a),
            Origin::Map(m) => Origin::Map(m.get(a..b).unwrap_or_default().to_vec()),
        };
        Text {
            bytes: Cow::Owned(self.bytes.get(a..b).unwrap_or_default().to_vec()),
            item: self.item,
            origin,
            expansions: Vec::new(),
        }
    }

    /// Mask bytes `a..b` of this text: push the item edits that do it.
    pub fn mask(&self, a: usize, b: usize, edits: &mut Vec<Edit>) {
        let b = b.min(self.len());
        if a >= b {
            return;
        }
        let Some((a, b)) = self.widen(a, b) else {
            return;
        };
        match &self.origin {
            Origin::Shift(base) => edits.push(self.edit(base + a, base + b, true)),
            Origin::Map(m) => self.mask_mapped(m.get(a..b).unwrap_or_default(), edits),
        }
    }

    /// Mask all of this text.
    pub fn mask_all(&self, edits: &mut Vec<Edit>) {
        self.mask(0, self.len(), edits);
    }

    fn edit(&self, start: usize, end: usize, mask: bool) -> Edit {
        Edit {
            item: self.item,
            start,
            end,
            mask,
        }
    }

    /// One edit per run of contiguous origins: the mask for the first, nothing for the others.
    fn mask_mapped(&self, ranges: &[(usize, usize)], edits: &mut Vec<Edit>) {
        let mut first = true;
        let mut run: Option<(usize, usize)> = None;
        for &(s, e) in ranges {
            run = match run {
                Some((rs, re)) if re == s => Some((rs, e)),
                Some((rs, re)) => {
                    edits.push(self.edit(rs, re, first));
                    first = false;
                    Some((s, e))
                }
                None => Some((s, e)),
            };
        }
        if let Some((rs, re)) = run {
            edits.push(self.edit(rs, re, first));
        }
    }

    /// `a..b` widened over the expansions it cuts; `None` if it holds nothing but expansions.
    fn widen(&self, mut a: usize, mut b: usize) -> Option<(usize, usize)> {
        let x = &self.expansions;
        if x.is_empty() {
            return Some((a, b));
        }
        // Expansions are sorted and disjoint: the ones touching a..b are a contiguous run.
        let from = x.partition_point(|&(_, e)| e <= a);
        let to = x.partition_point(|&(s, _)| s < b);
        let touching = x.get(from..to).unwrap_or_default();
        if let (Some(f), Some(l)) = (touching.first(), touching.last()) {
            a = a.min(f.0);
            b = b.max(l.1);
        }
        let mut covered = a;
        for &(s, e) in touching {
            if s > covered {
                return Some((a, b));
            }
            covered = covered.max(e);
        }
        (covered < b).then_some((a, b))
    }
}

/// Blanks, quotes and operators (see [`Text::has_shell_syntax`]).
pub(crate) const SHELL_SYNTAX: &[u8] = b" \t\n\r'\"`;|&<>()";

const IS_SHELL_SYNTAX: [bool; 256] = byte_set(SHELL_SYNTAX);

pub(crate) fn is_shell_syntax(c: u8) -> bool {
    IS_SHELL_SYNTAX[usize::from(c)]
}

/// A table of the bytes of `bytes`, for tests that cost one load.
pub(crate) const fn byte_set(bytes: &[u8]) -> [bool; 256] {
    let mut set = [false; 256];
    let mut k = 0;
    while k < bytes.len() {
        set[bytes[k] as usize] = true;
        k += 1;
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(bytes: &[u8], map: Vec<(usize, usize)>, x: Vec<(usize, usize)>) -> Text<'static> {
        Text {
            bytes: Cow::Owned(bytes.to_vec()),
            item: 0,
            origin: Origin::Map(map),
            expansions: x,
        }
    }

    fn e(start: usize, end: usize, mask: bool) -> Edit {
        Edit {
            item: 0,
            start,
            end,
            mask,
        }
    }

    #[test]
    fn a_span_across_quotes_is_one_mask_and_empty_pieces() {
        // `a'bc'd` cooked to `abcd`
        let t = mapped(b"abcd", vec![(0, 1), (2, 3), (3, 4), (5, 6)], vec![]);
        let mut v = Vec::new();
        t.mask(0, 4, &mut v);
        assert_eq!(v, [e(0, 1, true), e(2, 4, false), e(5, 6, false)]);
    }

    #[test]
    fn expansions_alone_are_kept_and_cut_ones_are_widened() {
        // `x$Yz`: the expansion is bytes 1..3
        let t = mapped(b"x$Yz", (0..4).map(|i| (i, i + 1)).collect(), vec![(1, 3)]);
        let mut v = Vec::new();
        t.mask(1, 3, &mut v);
        assert!(v.is_empty());
        t.mask(2, 4, &mut v);
        assert_eq!(v, [e(1, 4, true)]);
    }

    #[test]
    fn out_of_range_spans_are_clamped() {
        let t = Text::item(3, b"abc");
        let mut v = Vec::new();
        t.mask(2, 99, &mut v);
        t.mask(5, 9, &mut v);
        assert_eq!(
            v,
            [Edit {
                item: 3,
                start: 2,
                end: 3,
                mask: true
            }]
        );
    }
}
