//! A shell tokenizer for redaction: it splits a script (the argument of `sh -c`, or any argument
//! holding blanks, quotes or operators) into simple commands and their words, and hands them to
//! a [`Sink`].
//!
//! It follows POSIX sh and bash closely enough to find words (blanks are space, tab and carriage
//! return): single quotes, double quotes, `$'…'`, backslash escapes and line continuations; the
//! separators `;` `&` `|` `&&` `||` newline `(` `)`; redirections (`>f`, `2>&1`, `<<<w`, `&>f`), whose targets are delivered as
//! commands of their own and whose descriptor digits are dropped; here-documents, whose lines are
//! delivered as loose text; comments, also loose text; and expansions: `$NAME`, `${…}`,
//! `$((…))`, and the command substitutions `$(…)`, `` `…` ``, `<(…)`, `>(…)`, which are parsed as
//! scripts of their own (their commands are delivered too) and stay in the word they are part of.
//!
//! Invariants:
//! - it never fails: unbalanced quotes or parentheses run to the end of the text, bytes that
//!   are not UTF-8 are ordinary bytes;
//! - every byte of a word is pushed with the range of the source it came from (see [`Text`]),
//!   and the bytes the source marks as expansions stay expansions, so that an expansion parsed
//!   at an outer level is not parsed again;
//! - nesting is bounded by [`MAX_DEPTH`]: deeper substitutions are delivered as loose text at
//!   that depth (the sink masks them whole), so the stack stays small whatever the input;
//! - every step consumes at least one byte.
//!
//! It is not a shell: `case` patterns (`a)`), aliases, `{a,b}` braces and the like are not
//! understood, and arithmetic is skipped.

use std::borrow::Cow;

use super::text::{Origin, Text};

/// Deepest nesting of scripts inside scripts (substitutions, `-c` strings, quoted strings).
pub(crate) const MAX_DEPTH: usize = 24;

/// What the tokenizer finds.
pub(crate) trait Sink {
    /// The words of one simple command in order (or a redirection target alone).
    fn command(&mut self, words: &[Text<'_>], depth: usize);
    /// Text that is not commands: a comment, a here-document line, or a script too deep.
    fn loose(&mut self, text: &Text<'_>, depth: usize);
}

/// Tokenize `src` as a script at nesting `depth`.
pub(crate) fn parse(src: &Text<'_>, depth: usize, sink: &mut impl Sink) {
    let mut lx = Lexer {
        src,
        s: &src.bytes,
        i: 0,
    };
    lx.script(depth, Close::End, sink);
}

/// What ends a script.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Close {
    End,
    Paren,
    Backtick,
}

/// Where the word being read goes when it ends.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Target {
    #[default]
    Arg,
    Redirect,
    /// A here-document delimiter (`true`: `<<-`, leading tabs stripped).
    Heredoc(bool),
}

/// A word being read.
#[derive(Default)]
struct WordBuf {
    cooked: Vec<u8>,
    origin: Vec<(usize, usize)>,
    expansions: Vec<(usize, usize)>,
    started: bool,
    quoted: bool,
}

impl WordBuf {
    fn push(&mut self, byte: u8, origin: (usize, usize), expansion: bool) {
        let at = self.cooked.len();
        self.cooked.push(byte);
        self.origin.push(origin);
        if expansion {
            match self.expansions.last_mut() {
                Some(last) if last.1 == at => last.1 = at + 1,
                _ => self.expansions.push((at, at + 1)),
            }
        }
    }

    fn into_text(self, item: usize) -> Text<'static> {
        Text {
            bytes: Cow::Owned(self.cooked),
            item,
            origin: Origin::Map(self.origin),
            expansions: self.expansions,
        }
    }
}

/// The simple command being read.
#[derive(Default)]
struct Cmd {
    words: Vec<Text<'static>>,
    word: WordBuf,
    target: Target,
    heredocs: Vec<(Vec<u8>, bool)>,
}

struct Lexer<'t, 'a> {
    src: &'t Text<'a>,
    s: &'t [u8],
    i: usize,
}

impl Lexer<'_, '_> {
    fn script(&mut self, depth: usize, close: Close, sink: &mut impl Sink) {
        let mut c = Cmd::default();
        let mut parens = 0usize;
        while let Some(&b) = self.s.get(self.i) {
            let next = self.s.get(self.i + 1).copied();
            match b {
                b'`' if close == Close::Backtick => {
                    self.i += 1;
                    break;
                }
                b')' if close == Close::Paren && parens == 0 => {
                    self.i += 1;
                    break;
                }
                // A carriage return too (CRLF scripts), unlike a shell: the value before it is
                // the same, and a word holding one is then always split (see `Text`).
                b' ' | b'\t' | b'\r' => {
                    self.end_word(&mut c, sink, depth);
                    self.i += 1;
                }
                b'\n' => {
                    self.separator(&mut c, sink, depth);
                    self.heredoc_bodies(&mut c, sink, depth);
                }
                b'(' => {
                    parens += 1;
                    self.separator(&mut c, sink, depth);
                }
                b')' => {
                    parens = parens.saturating_sub(1);
                    self.separator(&mut c, sink, depth);
                }
                b';' | b'|' => self.separator(&mut c, sink, depth),
                b'&' if next == Some(b'>') => self.redirect(&mut c, sink, depth),
                b'&' => self.separator(&mut c, sink, depth),
                b'<' | b'>' if next == Some(b'(') => self.word_piece(&mut c.word, depth, sink),
                b'<' | b'>' => self.redirect(&mut c, sink, depth),
                b'#' if !c.word.started => self.comment(sink, depth),
                _ => self.word_piece(&mut c.word, depth, sink),
            }
        }
        self.end_word(&mut c, sink, depth);
        Self::flush(&mut c, sink, depth);
    }

    /// A one-byte separator: the word and the command end.
    fn separator(&mut self, c: &mut Cmd, sink: &mut impl Sink, depth: usize) {
        self.end_word(c, sink, depth);
        Self::flush(c, sink, depth);
        self.i += 1;
    }

    fn end_word(&mut self, c: &mut Cmd, sink: &mut impl Sink, depth: usize) {
        if !c.word.started {
            return;
        }
        let w = std::mem::take(&mut c.word).into_text(self.src.item);
        match std::mem::take(&mut c.target) {
            Target::Arg => c.words.push(w),
            Target::Redirect => sink.command(std::slice::from_ref(&w), depth),
            Target::Heredoc(strip) => c.heredocs.push((w.bytes.into_owned(), strip)),
        }
    }

    fn flush(c: &mut Cmd, sink: &mut impl Sink, depth: usize) {
        if !c.words.is_empty() {
            sink.command(&c.words, depth);
            c.words.clear();
        }
        c.target = Target::Arg;
    }

    /// A redirection operator at `i` (`<`, `>`, or `&` before `>`).
    fn redirect(&mut self, c: &mut Cmd, sink: &mut impl Sink, depth: usize) {
        let w = &c.word;
        let descriptor = w.started
            && !w.quoted
            && !w.cooked.is_empty()
            && w.cooked.iter().all(u8::is_ascii_digit);
        if descriptor {
            c.word = WordBuf::default();
        } else {
            self.end_word(c, sink, depth);
        }
        let first = self.s.get(self.i).copied();
        self.i += 1;
        let mut target = Target::Redirect;
        if first == Some(b'&') {
            self.skip_if(b'>');
            self.skip_if(b'>');
        } else if first == Some(b'<') && self.skip_if(b'<') {
            if !self.skip_if(b'<') {
                target = Target::Heredoc(self.skip_if(b'-'));
            }
        } else {
            self.skip_if(b'>');
        }
        if target == Target::Redirect && !self.skip_if(b'&') {
            self.skip_if(b'|');
        }
        c.target = target;
    }

    fn skip_if(&mut self, b: u8) -> bool {
        let hit = self.s.get(self.i) == Some(&b);
        if hit {
            self.i += 1;
        }
        hit
    }

    /// After a newline: the bodies of the here-documents opened on the line, as loose lines.
    fn heredoc_bodies(&mut self, c: &mut Cmd, sink: &mut impl Sink, depth: usize) {
        for (delim, strip) in std::mem::take(&mut c.heredocs) {
            while self.i < self.s.len() {
                let start = self.i;
                let end = self.s[start..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(self.s.len(), |k| start + k);
                self.i = (end + 1).min(self.s.len());
                let line = &self.s[start..end];
                let tabs = if strip {
                    line.iter().take_while(|&&b| b == b'\t').count()
                } else {
                    0
                };
                if line[tabs..] == delim[..] {
                    break;
                }
                sink.loose(&self.src.slice(start, end), depth);
            }
        }
    }

    /// `#…` to the end of the line.
    fn comment(&mut self, sink: &mut impl Sink, depth: usize) {
        let start = self.i + 1;
        let end = self.s[self.i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.s.len(), |k| self.i + k);
        sink.loose(&self.src.slice(start, end), depth);
        self.i = end.max(self.i + 1);
    }

    /// One piece of a word: an escape, a quoted string, an expansion or a plain byte.
    fn word_piece(&mut self, w: &mut WordBuf, depth: usize, sink: &mut impl Sink) {
        let i = self.i;
        let Some(&b) = self.s.get(i) else {
            self.i += 1;
            return;
        };
        if b == b'\\' && self.s.get(i + 1) == Some(&b'\n') {
            self.i += 2; // a line continuation: nothing, not even the start of a word
            return;
        }
        w.started = true;
        if let Some(end) = self.outer_expansion_at(i) {
            self.expansion(w, i, end);
            self.i = end;
            return;
        }
        match b {
            b'\\' => match self.s.get(i + 1) {
                Some(&n) => self.escape(w, n),
                None => self.literal(w, b),
            },
            b'\'' => self.single(w),
            b'"' => self.double(w, depth, sink),
            b'$' => self.dollar(w, depth, sink, false),
            b'`' => self.substitution(w, 1, Close::Backtick, depth, sink),
            b'<' | b'>' => self.substitution(w, 2, Close::Paren, depth, sink),
            _ => self.literal(w, b),
        }
    }

    /// The byte at `i` as itself.
    fn literal(&mut self, w: &mut WordBuf, b: u8) {
        self.push(w, self.i, self.i + 1, b);
        self.i += 1;
    }

    /// A backslash at `i` and the byte `n` it escapes.
    fn escape(&mut self, w: &mut WordBuf, n: u8) {
        self.push(w, self.i, self.i + 2, n);
        self.i += 2;
    }

    fn push(&self, w: &mut WordBuf, a: usize, b: usize, byte: u8) {
        w.push(byte, self.src.source(a, b), self.in_outer_expansion(a));
    }

    /// Bytes `a..b` as an expansion of the word.
    fn expansion(&self, w: &mut WordBuf, a: usize, b: usize) {
        for k in a..b.min(self.s.len()) {
            w.push(self.s[k], self.src.source(k, k + 1), true);
        }
    }

    /// The end of the expansion of the source text that starts at `i`, if one does.
    fn outer_expansion_at(&self, i: usize) -> Option<usize> {
        let x = &self.src.expansions;
        let k = x.partition_point(|&(s, _)| s < i);
        x.get(k).filter(|&&(s, e)| s == i && e > i).map(|&(_, e)| e)
    }

    fn in_outer_expansion(&self, i: usize) -> bool {
        let x = &self.src.expansions;
        let k = x.partition_point(|&(_, e)| e <= i);
        x.get(k).is_some_and(|&(s, _)| s <= i)
    }

    /// `'…'`: every byte as itself, to the next `'` or the end.
    fn single(&mut self, w: &mut WordBuf) {
        w.quoted = true;
        self.i += 1;
        while let Some(&b) = self.s.get(self.i) {
            if b == b'\'' {
                self.i += 1;
                return;
            }
            self.literal(w, b);
        }
    }

    /// `"…"`: backslash escapes only `$ \` " \\` and newline; expansions stay live.
    fn double(&mut self, w: &mut WordBuf, depth: usize, sink: &mut impl Sink) {
        w.quoted = true;
        self.i += 1;
        while let Some(&b) = self.s.get(self.i) {
            let next = self.s.get(self.i + 1).copied();
            if let Some(end) = self.outer_expansion_at(self.i) {
                self.expansion(w, self.i, end);
                self.i = end;
                continue;
            }
            match b {
                b'"' => {
                    self.i += 1;
                    return;
                }
                b'\\' if next == Some(b'\n') => self.i += 2,
                b'\\' if matches!(next, Some(b'$' | b'`' | b'"' | b'\\')) => {
                    self.escape(w, next.unwrap_or(b'\\'))
                }
                b'$' => self.dollar(w, depth, sink, true),
                b'`' => self.substitution(w, 1, Close::Backtick, depth, sink),
                _ => self.literal(w, b),
            }
        }
    }

    /// `$…` at `i`.
    fn dollar(&mut self, w: &mut WordBuf, depth: usize, sink: &mut impl Sink, in_dq: bool) {
        let i = self.i;
        let s = self.s;
        match s.get(i + 1).copied() {
            Some(b'(') if s.get(i + 2) == Some(&b'(') => self.skipped(w, i, b'(', b')'),
            Some(b'(') => self.substitution(w, 2, Close::Paren, depth, sink),
            Some(b'{') => self.skipped(w, i, b'{', b'}'),
            Some(b'\'') if !in_dq => self.ansi_c(w),
            Some(b'"') if !in_dq => {
                self.i += 1;
                self.double(w, depth, sink);
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                let n = s[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                    .count();
                self.expansion(w, i, i + 1 + n);
                self.i = i + 1 + n;
            }
            Some(c) if c.is_ascii_digit() || b"@*#?$!-".contains(&c) => {
                self.expansion(w, i, i + 2);
                self.i = i + 2;
            }
            _ => self.literal(w, b'$'),
        }
    }

    /// `$((…))` or `${…}` at `i`: an expansion, not parsed.
    fn skipped(&mut self, w: &mut WordBuf, i: usize, open: u8, close: u8) {
        let end = skip_balanced(self.s, i + 1, open, close);
        self.expansion(w, i, end);
        self.i = end;
    }

    /// `$'…'`: backslash escapes the next byte, to the next unescaped `'`.
    fn ansi_c(&mut self, w: &mut WordBuf) {
        w.quoted = true;
        self.i += 2;
        while let Some(&b) = self.s.get(self.i) {
            match (b, self.s.get(self.i + 1)) {
                (b'\'', _) => {
                    self.i += 1;
                    return;
                }
                (b'\\', Some(&n)) => self.escape(w, n),
                _ => self.literal(w, b),
            }
        }
    }

    /// A command substitution whose opening (`open` bytes) is at `i`: its commands go to the
    /// sink, and all of it is an expansion of the word.
    fn substitution(
        &mut self,
        w: &mut WordBuf,
        open: usize,
        close: Close,
        depth: usize,
        sink: &mut impl Sink,
    ) {
        let start = self.i;
        self.i += open;
        if depth + 1 < MAX_DEPTH {
            self.script(depth + 1, close, sink);
        } else {
            let end = match close {
                Close::Backtick => self.s[self.i..]
                    .iter()
                    .position(|&b| b == b'`')
                    .map_or(self.s.len(), |k| self.i + k + 1),
                _ => skip_balanced(self.s, start + open - 1, b'(', b')'),
            };
            let closing = if close == Close::Backtick { b'`' } else { b')' };
            let closed = end > self.i && self.s.get(end - 1) == Some(&closing);
            let inner_end = if closed { end - 1 } else { end };
            sink.loose(&self.src.slice(self.i, inner_end), MAX_DEPTH);
            self.i = end.max(self.i);
        }
        self.expansion(w, start, self.i);
    }
}

/// The index after the `close` that balances the `open` at `at`, skipping quoted strings and
/// escapes; the end of `s` if there is none.
fn skip_balanced(s: &[u8], at: usize, open: u8, close: u8) -> usize {
    let mut depth = 0usize;
    let mut k = at;
    while let Some(&c) = s.get(k) {
        match c {
            b'\\' => k += 1,
            b'\'' | b'"' => {
                k += s
                    .get(k + 1..)
                    .and_then(|r| r.iter().position(|&x| x == c))
                    .map_or(s.len(), |n| n + 1);
            }
            _ if c == open => depth += 1,
            _ if c == close => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return k + 1;
                }
            }
            _ => {}
        }
        k += 1;
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commands as lists of words, loose texts as `#text`.
    #[derive(Default)]
    struct Log(Vec<Vec<String>>);

    impl Sink for Log {
        fn command(&mut self, words: &[Text<'_>], _: usize) {
            let ws = words
                .iter()
                .map(|w| String::from_utf8_lossy(&w.bytes).into_owned())
                .collect();
            self.0.push(ws);
        }
        fn loose(&mut self, t: &Text<'_>, _: usize) {
            self.0
                .push(vec![format!("#{}", String::from_utf8_lossy(&t.bytes))]);
        }
    }

    fn cmds(s: &str) -> Vec<Vec<String>> {
        let mut log = Log::default();
        parse(&Text::item(0, s.as_bytes()), 0, &mut log);
        log.0
    }

    fn c(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn quotes_separators_and_words() {
        assert_eq!(
            cmds(r#"a 'b c'"d\"e" f\ g;h&&i||j|k&l"#),
            [
                c(&["a", "b cd\"e", "f g"]),
                c(&["h"]),
                c(&["i"]),
                c(&["j"]),
                c(&["k"]),
                c(&["l"])
            ]
        );
        // A comment is delivered when it is read, the command it ends when it ends.
        assert_eq!(
            cmds("x=1 y\nz # c d\nw"),
            [c(&["x=1", "y"]), c(&["# c d"]), c(&["z"]), c(&["w"])]
        );
        assert_eq!(cmds("''"), [c(&[""])]);
        assert_eq!(cmds("a \\\n b"), [c(&["a", "b"])]);
    }

    #[test]
    fn substitutions_are_scripts_and_stay_in_their_word() {
        assert_eq!(
            cmds("a=$(b c; d) \"e $(f 'g h')\" `i j`"),
            [
                c(&["b", "c"]),
                c(&["d"]),
                c(&["f", "g h"]),
                c(&["i", "j"]),
                c(&["a=$(b c; d)", "e $(f 'g h')", "`i j`"])
            ]
        );
        assert_eq!(
            cmds("diff <(a b) x"),
            [c(&["a", "b"]), c(&["diff", "<(a b)", "x"])]
        );
        assert_eq!(
            cmds("echo $((1+2)) ${x:-a b}"),
            [c(&["echo", "$((1+2))", "${x:-a b}"])]
        );
    }

    #[test]
    fn redirections_and_heredocs() {
        assert_eq!(
            cmds("a 2>&1 >out b <<<'h s' c"),
            [c(&["1"]), c(&["out"]), c(&["h s"]), c(&["a", "b", "c"])]
        );
        assert_eq!(
            cmds("cat <<-EOF >f\n\tx y\n\tEOF\nz"),
            [c(&["f"]), c(&["cat"]), c(&["#\tx y"]), c(&["z"])]
        );
        assert_eq!(cmds("a &>f b"), [c(&["f"]), c(&["a", "b"])]);
    }

    #[test]
    fn unbalanced_input_runs_to_the_end() {
        assert_eq!(cmds("a 'b c"), [c(&["a", "b c"])]);
        assert_eq!(cmds("a \"b $(c d"), [c(&["c", "d"]), c(&["a", "b $(c d"])]);
        assert_eq!(cmds("a)b("), [c(&["a"]), c(&["b"])]);
        for s in [
            "\\", "$", "$(", "`", "<(", "${", "$((", "'", "\"", "<<", "<<E\nx", "2>", "$'\\",
        ] {
            let _ = cmds(s);
        }
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let deep = "$(".repeat(10_000);
        let v = cmds(&deep);
        assert!(
            v.iter().any(|c| c[0].starts_with('#')),
            "the deepest part is loose"
        );
    }
}
