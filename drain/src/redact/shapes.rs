//! Well-known token shapes, found wherever they are in the raw bytes of an argv item: as a word,
//! inside a word, inside quotes, comments or here-documents.
//!
//! A shape starts where the byte before it (if any) is not an ASCII letter or digit, so that
//! `task-…` is not taken for `sk-…` (`aws_secret_access_key` is looked for anywhere). The distinctive prefix (`ghp_`, `AKIA`, `xoxb-`…) is kept
//! and what follows it is masked; a JWT is masked whole; a private key block keeps its `BEGIN`
//! and `END` lines and loses its body.
//!
//! Every span reported is made of letters, digits and `_ - . / +` only (so it never holds a
//! quote or a backslash), except a key body, which is reported whole only when it holds no quote
//! character (else its base64 runs are reported one by one). One pass, no allocation.

use super::text::byte_set;

/// A prefix and the shape of the secret after it.
struct Prefixed {
    prefix: &'static [u8],
    /// Bytes the secret may hold.
    class: fn(u8) -> bool,
    /// Fewest bytes it has.
    min: usize,
    /// If set, exactly this many bytes, not followed by a letter or digit.
    exact: Option<usize>,
    /// Needs an upper case letter, a lower case letter and a digit (random-looking).
    mixed: bool,
}

const fn p(prefix: &'static [u8], class: fn(u8) -> bool, min: usize) -> Prefixed {
    Prefixed {
        prefix,
        class,
        min,
        exact: None,
        mixed: false,
    }
}

const PREFIXED: [Prefixed; 25] = [
    p(b"ghp_", alnum, 20),
    p(b"gho_", alnum, 20),
    p(b"ghu_", alnum, 20),
    p(b"ghs_", alnum, 20),
    p(b"ghr_", alnum, 20),
    p(b"github_pat_", word, 20),
    Prefixed {
        exact: Some(16),
        ..p(b"AKIA", upper_digit, 16)
    },
    Prefixed {
        exact: Some(16),
        ..p(b"ASIA", upper_digit, 16)
    },
    p(b"xoxb-", dashed, 10),
    p(b"xoxp-", dashed, 10),
    p(b"xoxa-", dashed, 10),
    p(b"xoxr-", dashed, 10),
    p(b"xoxs-", dashed, 10),
    p(b"xoxe-", dashed, 10),
    p(b"xapp-", dashed, 10),
    p(b"sk_live_", alnum, 10),
    p(b"rk_live_", alnum, 10),
    p(b"sk_test_", alnum, 10),
    p(b"rk_test_", alnum, 10),
    Prefixed {
        mixed: true,
        ..p(b"sk-", dashed_word, 20)
    },
    p(b"AIza", dashed_word, 35),
    p(b"npm_", alnum, 20),
    p(b"glpat-", dashed_word, 20),
    p(b"glrt-", dashed_word, 20),
    p(b"hf_", alnum, 30),
];

const AWS_SECRET: &[u8] = b"aws_secret_access_key";

/// The bytes a shape can start with: every other byte is passed over at once.
const STARTS: [bool; 256] = byte_set(b"-Aaeghnrsx");

/// Report the spans of `s` that are well-known secrets.
pub(crate) fn scan(s: &[u8], out: &mut impl FnMut(usize, usize)) {
    let mut i = 0;
    while i < s.len() {
        if !STARTS[usize::from(s[i])] {
            i += 1;
            continue;
        }
        let boundary = i == 0 || !s[i - 1].is_ascii_alphanumeric();
        let next = if boundary {
            at(s, i, out)
        } else if starts_ci(&s[i..], AWS_SECRET) {
            // Distinctive enough to be looked for anywhere (`printf '…\naws_secret_access_key=…'`).
            aws_secret(s, i, out)
        } else {
            None
        };
        i = next.unwrap_or(i + 1).max(i + 1);
    }
}

/// A shape starting at `i`: report it and return where scanning goes on.
fn at(s: &[u8], i: usize, out: &mut impl FnMut(usize, usize)) -> Option<usize> {
    let rest = &s[i..];
    let special = match rest.first()? {
        b'-' => private_key(s, i, out),
        b'e' => jwt(s, i, out),
        b'a' | b'A' if starts_ci(rest, AWS_SECRET) => aws_secret(s, i, out),
        _ => None,
    };
    special.or_else(|| prefixed(s, i, out))
}

fn prefixed(s: &[u8], i: usize, out: &mut impl FnMut(usize, usize)) -> Option<usize> {
    let rest = &s[i..];
    let shape = PREFIXED.iter().find(|p| rest.starts_with(p.prefix))?;
    let start = i + shape.prefix.len();
    let body = &s[start..];
    let n = body.iter().take_while(|&&c| (shape.class)(c)).count();
    let ok = n >= shape.min
        && shape.exact.is_none_or(|e| n == e)
        && (!shape.mixed || is_mixed(&body[..n]));
    if !ok {
        return None;
    }
    out(start, start + n);
    Some(start + n)
}

/// `eyJ…` `.` `eyJ…` `.` signature: a JSON Web Token, masked whole.
fn jwt(s: &[u8], i: usize, out: &mut impl FnMut(usize, usize)) -> Option<usize> {
    let header = b64url_part(s, i, 10)?;
    let payload = b64url_part(s, header.checked_add(1)?, 10)?;
    if s.get(header) != Some(&b'.') || s.get(payload) != Some(&b'.') {
        return None;
    }
    let sig = payload + 1;
    let end = sig + s[sig..].iter().take_while(|&&c| dashed_word(c)).count();
    out(i, end);
    Some(end)
}

/// A base64url run starting with `eyJ` at `i`, at least `min` long: where it ends.
fn b64url_part(s: &[u8], i: usize, min: usize) -> Option<usize> {
    let part = s.get(i..)?;
    if !part.starts_with(b"eyJ") {
        return None;
    }
    let n = part.iter().take_while(|&&c| dashed_word(c)).count();
    (n >= min).then_some(i + n)
}

/// `aws_secret_access_key`, then blanks, quotes, `=` or `:`, then the key.
fn aws_secret(s: &[u8], i: usize, out: &mut impl FnMut(usize, usize)) -> Option<usize> {
    let mut j = i + AWS_SECRET.len();
    let mut skipped = 0;
    while let Some(&c) = s.get(j) {
        if skipped == 8 || !matches!(c, b' ' | b'\t' | b'"' | b'\'' | b'=' | b':') {
            break;
        }
        j += 1;
        skipped += 1;
    }
    let n = s[j..]
        .iter()
        .take_while(|&&c| alnum(c) || c == b'/' || c == b'+')
        .count();
    if n < 16 {
        return None;
    }
    out(j, j + n);
    Some(j + n)
}

/// `-----BEGIN … PRIVATE KEY…-----`, body, `-----END …`: the body is masked (to the end of the
/// text when there is no `END`).
fn private_key(s: &[u8], i: usize, out: &mut impl FnMut(usize, usize)) -> Option<usize> {
    let rest = &s[i..];
    if !rest.starts_with(b"-----BEGIN ") {
        return None;
    }
    let label_start = b"-----BEGIN ".len();
    let label_len = rest
        .get(label_start..)?
        .iter()
        .take(80)
        .position(|&c| c == b'-' || c == b'\n')?;
    let label = &rest[label_start..label_start + label_len];
    let close = label_start + label_len;
    if !rest[close..].starts_with(b"-----") || find_seq(label, b"PRIVATE KEY").is_none() {
        return None;
    }
    let body_start = i + close + 5;
    let body_end = find_seq(&s[body_start..], b"-----END").map_or(s.len(), |k| body_start + k);
    let (a, b) = trim_body(s, body_start, body_end);
    if a < b {
        key_body(s, a, b, out);
    }
    Some(body_end.max(i + 1))
}

/// The body without the blanks and `\n` escapes around it.
fn trim_body(s: &[u8], mut a: usize, mut b: usize) -> (usize, usize) {
    loop {
        let body = &s[a..b];
        if body.first().is_some_and(|c| c.is_ascii_whitespace()) {
            a += 1;
        } else if body.starts_with(b"\\n") || body.starts_with(b"\\r") {
            a += 2;
        } else if body.last().is_some_and(|c| c.is_ascii_whitespace()) {
            b -= 1;
        } else if body.len() >= 2 && (body.ends_with(b"\\n") || body.ends_with(b"\\r")) {
            b -= 2;
        } else {
            return (a, b);
        }
    }
}

fn key_body(s: &[u8], a: usize, b: usize, out: &mut impl FnMut(usize, usize)) {
    let body = &s[a..b];
    if !body.iter().any(|c| matches!(c, b'\'' | b'"' | b'`')) {
        out(a, b);
        return;
    }
    // Quotes inside: mask the base64 runs alone, so that every quote stays.
    let mut k = 0;
    while k < body.len() {
        let n = body[k..]
            .iter()
            .take_while(|&&c| alnum(c) || matches!(c, b'+' | b'/' | b'='))
            .count();
        if n >= 8 {
            out(a + k, a + k + n);
        }
        k += n.max(1);
    }
}

fn alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

fn word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn dashed(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-'
}

fn dashed_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

fn upper_digit(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit()
}

fn is_mixed(s: &[u8]) -> bool {
    s.iter().any(u8::is_ascii_uppercase)
        && s.iter().any(u8::is_ascii_lowercase)
        && s.iter().any(u8::is_ascii_digit)
}

fn starts_ci(s: &[u8], p: &[u8]) -> bool {
    s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p))
}

fn find_seq(s: &[u8], pat: &[u8]) -> Option<usize> {
    super::rules::find_seq(s, pat)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(s: &str) -> Vec<&str> {
        let mut v = Vec::new();
        scan(s.as_bytes(), &mut |a, b| v.push(&s[a..b]));
        v
    }

    #[test]
    fn shapes_are_found_in_words_and_not_inside_others() {
        let gh = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
        assert_eq!(spans(gh), ["abcdefghijklmnopqrstuvwxyz0123456789"]);
        assert_eq!(
            spans(&format!("x={gh};")),
            ["abcdefghijklmnopqrstuvwxyz0123456789"]
        );
        assert!(spans(&format!("a{gh}")).is_empty());
        assert_eq!(spans("AKIAABCDEFGHIJKLMNOP"), ["ABCDEFGHIJKLMNOP"]);
        assert!(spans("AKIAABCDEFGHIJKLMNOPQ").is_empty());
        assert!(spans("task-Abcdefghij0123456789xyz").is_empty());
        assert_eq!(
            spans("sk-Abcdefghij0123456789xyz"),
            ["Abcdefghij0123456789xyz"]
        );
        assert!(spans("sk-learn-something-very-long-name").is_empty());
        assert_eq!(
            spans("t=eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.c2lnbmF0dXJl x"),
            ["eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.c2lnbmF0dXJl"]
        );
        assert_eq!(
            spans("aws_secret_access_key = \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\""),
            ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]
        );
    }

    #[test]
    fn key_blocks_lose_their_body() {
        let k = "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\ndef==\n-----END RSA PRIVATE KEY-----";
        assert_eq!(spans(k), ["MIIEabc\ndef=="]);
        assert_eq!(spans("-----BEGIN PRIVATE KEY-----\\nMIIE\\n"), ["MIIE"]);
        assert_eq!(
            spans("-----BEGIN OPENSSH PRIVATE KEY-----"),
            Vec::<&str>::new()
        );
        assert!(spans("-----BEGIN CERTIFICATE-----\nMIIE\n-----END CERTIFICATE-----").is_empty());
        assert_eq!(
            spans("'-----BEGIN EC PRIVATE KEY-----' 'MIIEabcdefgh' '-----END EC PRIVATE KEY-----'"),
            ["MIIEabcdefgh"]
        );
    }

    #[test]
    fn every_prefix_starts_with_a_start_byte() {
        for p in &PREFIXED {
            assert!(STARTS[usize::from(p.prefix[0])]);
        }
        for b in [b'-', b'e', b'a', b'A'] {
            assert!(STARTS[usize::from(b)]);
        }
    }

    #[test]
    fn odd_bytes_do_not_panic() {
        for s in [
            "",
            "-",
            "-----BEGIN ",
            "-----BEGIN PRIVATE KEY",
            "eyJ",
            "eyJabcdefghijk.",
            "sk-",
            "aws_secret_access_key",
        ] {
            let _ = spans(s);
        }
    }
}
