//! Rules that look at one word (an argv item, or one shell word after quote removal) and name
//! the byte spans of it that are secret. They know nothing of the words around it: see
//! `command` for rules across words.
//!
//! Every rule is a single pass over the word (or a bounded number of passes), allocates
//! nothing, and reports spans that lie inside the word.

use super::data;

/// Flag names whose value is a secret: the name after its dashes is one of these, or ends with
/// `-` and one of these (`_` counts as `-`, case does not count).
const FLAG_SECRETS: [&[u8]; 12] = [
    b"password",
    b"passwd",
    b"pass",
    b"passphrase",
    b"token",
    b"secret",
    b"api-key",
    b"apikey",
    b"access-key",
    b"secret-key",
    b"account-key",
    b"bearer",
];

/// Flags that end like a secret one but are switches (`--no-password`, `--ask-pass`).
const FLAG_SWITCH_PREFIXES: [&[u8]; 3] = [b"no-", b"ask-", b"prompt-"];

/// Variable names whose value is a secret: ending with one of these (case does not count)…
const VAR_SUFFIXES: [&[u8]; 10] = [
    b"_TOKEN",
    b"_SECRET",
    b"_KEY",
    b"_PASSWORD",
    b"_PASSWD",
    b"_PASS",
    b"_PWD",
    b"_APIKEY",
    b"PASSWORD",
    b"PASSWD",
];

/// …or one of these.
const VAR_NAMES: [&[u8]; 5] = [b"TOKEN", b"SECRET", b"APIKEY", b"SSHPASS", b"PASS"];

/// Header names (after `_`→`-`, lower case) whose whole value is a secret, besides the ones
/// with a scheme (`Authorization`) and the cookies: exactly one of these…
const HEADER_NAMES: [&[u8]; 8] = [
    b"apikey",
    b"api-key",
    b"token",
    b"private-token",
    b"password",
    b"passwd",
    b"passphrase",
    b"secret",
];

/// …or ending with one of these.
const HEADER_SUFFIXES: [&[u8]; 5] = [b"-token", b"-key", b"-secret", b"-password", b"-apikey"];

/// URL query parameters whose value is a secret, besides the secret keys of `data`: ending
/// with one of these…
const QUERY_SUFFIXES: [&[u8]; 2] = [b"signature", b"credential"];

/// …or exactly one of these.
const QUERY_NAMES: [&[u8]; 3] = [b"key", b"sig", b"pwd"];

/// Words that are the scheme of an `Authorization` value, kept in front of the credentials.
const AUTH_SCHEMES: [&[u8]; 9] = [
    b"bearer",
    b"basic",
    b"token",
    b"digest",
    b"negotiate",
    b"bot",
    b"oauth",
    b"ntlm",
    b"aws4-hmac-sha256",
];

/// What kind of secret a header carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Header {
    /// `Authorization`, `Proxy-Authorization`: an optional scheme word, then the credentials.
    Auth,
    /// `Cookie`: the value of every `name=value` pair.
    Cookie,
    /// `Set-Cookie`: the value of the first pair (the rest are attributes).
    SetCookie,
    /// Any other secret header: the whole value.
    Plain,
}

/// Spans of `w` that are secret by the one-word rules: a secret flag's `=value`, a secret
/// variable's `=value`, a secret header's value, a URL's password and secret query values,
/// and secret values of data in the word (see `data`).
pub(crate) fn word(w: &[u8], out: &mut impl FnMut(usize, usize)) {
    flag_value(w, out);
    assignment_value(w, out);
    headers(w, out);
    urls(w, out);
    data::quoted_values(w, out);
    data::form_values(w, out);
    data::property_value(w, out);
}

/// `--password=VALUE`, `-token=VALUE`.
fn flag_value(w: &[u8], out: &mut impl FnMut(usize, usize)) {
    if w.first() != Some(&b'-') {
        return;
    }
    if let Some(eq) = find(w, b'=') {
        if is_secret_flag(&w[..eq]) && eq + 1 < w.len() {
            out(eq + 1, w.len());
        }
    }
}

/// `NAME_TOKEN=VALUE` and the like, as an argument or a shell assignment.
fn assignment_value(w: &[u8], out: &mut impl FnMut(usize, usize)) {
    if let Some(eq) = find(w, b'=') {
        if is_secret_var(&w[..eq]) && eq + 1 < w.len() {
            out(eq + 1, w.len());
        }
    }
}

/// A secret header at the start of the word, after a `-H` stuck to it, or after its first `=`
/// (`--header=…`, `http.extraHeader=…`).
fn headers(w: &[u8], out: &mut impl FnMut(usize, usize)) {
    for (kind, value) in header_names(w) {
        header_value(w, value, kind, out);
    }
}

/// The secret headers named in `w` (see [`headers`]): their kind and where their value starts.
fn header_names(w: &[u8]) -> impl Iterator<Item = (Header, usize)> + '_ {
    let dash_h = w.starts_with(b"-H").then_some(2);
    let eq = find(w, b'=').map(|k| k + 1);
    [Some(0), dash_h, eq]
        .into_iter()
        .flatten()
        .filter_map(|at| header_at(w, at))
}

/// A secret header name and its colon at `at`: its kind and where its value starts.
fn header_at(w: &[u8], at: usize) -> Option<(Header, usize)> {
    let rest = w.get(at..)?;
    let name_len = rest
        .iter()
        .take_while(|&&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        .count();
    let starts_alnum = rest.first().is_some_and(u8::is_ascii_alphanumeric);
    if !starts_alnum || rest.get(name_len) != Some(&b':') {
        return None;
    }
    let kind = secret_header(&rest[..name_len])?;
    let value = at + name_len + 1 + blanks(rest.get(name_len + 1..).unwrap_or_default());
    Some((kind, value))
}

/// The secret part of a header value that starts at `from` and runs to the end of `w`.
pub(crate) fn header_value(
    w: &[u8],
    from: usize,
    kind: Header,
    out: &mut impl FnMut(usize, usize),
) {
    let v = w.get(from..).unwrap_or_default();
    if v.is_empty() {
        return;
    }
    match kind {
        Header::Auth => {
            // A known scheme word is kept; without one, the whole value is the credentials.
            let word = v.iter().take_while(|c| !is_blank(**c)).count();
            let after = word + blanks(&v[word..]);
            if !is_auth_scheme(&v[..word]) {
                out(from, w.len());
            } else if after < v.len() {
                out(from + after, w.len());
            }
        }
        Header::Cookie => cookie_values(w, from, usize::MAX, out),
        Header::SetCookie => cookie_values(w, from, 1, out),
        Header::Plain => out(from, w.len()),
    }
}

/// The values of the first `limit` `name=value` pairs of a cookie list starting at `from`; a
/// pair without `=` is a value as a whole.
fn cookie_values(w: &[u8], from: usize, limit: usize, out: &mut impl FnMut(usize, usize)) {
    let mut start = from;
    let mut n = 0;
    while start < w.len() && n < limit {
        let end = find(&w[start..], b';').map_or(w.len(), |i| start + i);
        let pair_start = start + blanks(&w[start..end]);
        let value_start =
            find(&w[pair_start..end], b'=').map_or(pair_start, |i| pair_start + i + 1);
        if value_start < end {
            out(value_start, end);
        }
        n += 1;
        start = end + 1;
    }
}

/// The password of every URL with credentials (`scheme://user:PASSWORD@host`) and the values of
/// its secret query (or fragment) parameters. Each byte is looked at a bounded number of times.
fn urls(w: &[u8], out: &mut impl FnMut(usize, usize)) {
    let mut i = 0;
    while let Some(at) = find_seq(&w[i.min(w.len())..], b"://").map(|k| i + k) {
        let auth_start = at + 3;
        let auth_end = auth_start + span_until(&w[auth_start..], b"/?#");
        userinfo_password(w, auth_start, auth_end, out);
        i = query_values(w, auth_end, out).max(auth_start);
    }
}

fn userinfo_password(w: &[u8], start: usize, end: usize, out: &mut impl FnMut(usize, usize)) {
    let auth = &w[start..end];
    let Some(at) = auth.iter().rposition(|&c| c == b'@') else {
        return;
    };
    if let Some(colon) = find(&auth[..at], b':') {
        if colon + 1 < at {
            out(start + colon + 1, start + at);
        }
    }
}

/// Masks secret `name=value` parameters after the first `?` or `#` of the path that starts at
/// `from`; returns where the URL ends.
fn query_values(w: &[u8], from: usize, out: &mut impl FnMut(usize, usize)) -> usize {
    let end = from + span_until(&w[from..], b"");
    let url = &w[from..end];
    let Some(q) = url.iter().position(|&c| c == b'?' || c == b'#') else {
        return end;
    };
    let mut start = from + q + 1;
    while start < end {
        let stop = start + span_until(&w[start..end], b"&#;");
        let pair = &w[start..stop];
        if let Some(eq) = find(pair, b'=') {
            if is_secret_query(&pair[..eq]) && eq + 1 < pair.len() {
                out(start + eq + 1, stop);
            }
        }
        start = stop + 1;
    }
    end
}

/// Length of the prefix of `s` without blanks, quotes, `<`, `>`, `://` or any of `stops`.
fn span_until(s: &[u8], stops: &[u8]) -> usize {
    let mut n = 0;
    while let Some(&c) = s.get(n) {
        if is_blank(c) || matches!(c, b'"' | b'\'' | b'<' | b'>') || stops.contains(&c) {
            break;
        }
        if s[n..].starts_with(b"://") {
            break;
        }
        n += 1;
    }
    n
}

/// `--password`, `-token`, `--client-secret`, `--api_key`… (not `--password-file`,
/// `--no-password`).
pub(crate) fn is_secret_flag(w: &[u8]) -> bool {
    let name = match w {
        [b'-', b'-', rest @ ..] => rest,
        [b'-', rest @ ..] => rest,
        _ => return false,
    };
    let name_chars = name
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if name.is_empty()
        || !name_chars
        || FLAG_SWITCH_PREFIXES
            .iter()
            .any(|p| starts_with_norm(name, p))
    {
        return false;
    }
    FLAG_SECRETS
        .iter()
        .any(|s| is_or_ends_with_part(name, s, b'-'))
}

/// `GITHUB_TOKEN`, `PGPASSWORD`, `db_password`… (not `KEY_FILE`, `PATH`).
pub(crate) fn is_secret_var(name: &[u8]) -> bool {
    let ident = matches!(name.first(), Some(c) if c.is_ascii_alphabetic() || *c == b'_')
        && name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    ident
        && (VAR_SUFFIXES.iter().any(|s| ends_with_ci(name, s))
            || VAR_NAMES.iter().any(|n| name.eq_ignore_ascii_case(n)))
}

/// The kind of secret a header name carries, if any.
pub(crate) fn secret_header(name: &[u8]) -> Option<Header> {
    if eq_norm(name, b"authorization") || eq_norm(name, b"proxy-authorization") {
        Some(Header::Auth)
    } else if eq_norm(name, b"cookie") {
        Some(Header::Cookie)
    } else if eq_norm(name, b"set-cookie") {
        Some(Header::SetCookie)
    } else if HEADER_NAMES.iter().any(|n| eq_norm(name, n))
        || HEADER_SUFFIXES.iter().any(|s| ends_with_norm(name, s))
    {
        Some(Header::Plain)
    } else {
        None
    }
}

/// A secret header named in `w` with nothing after its colon (`Authorization:`,
/// `--header=Cookie:`): its value is in the following words.
pub(crate) fn header_without_value(w: &[u8]) -> Option<Header> {
    header_names(w)
        .find(|&(_, value)| value >= w.len())
        .map(|(kind, _)| kind)
}

pub(crate) fn is_auth_scheme(w: &[u8]) -> bool {
    AUTH_SCHEMES.iter().any(|s| w.eq_ignore_ascii_case(s))
}

fn is_secret_query(name: &[u8]) -> bool {
    data::is_secret_key(name)
        || QUERY_SUFFIXES.iter().any(|s| ends_with_ci(name, s))
        || QUERY_NAMES.iter().any(|n| name.eq_ignore_ascii_case(n))
}

pub(crate) fn is_blank(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

fn blanks(s: &[u8]) -> usize {
    s.iter().take_while(|&&c| c == b' ' || c == b'\t').count()
}

pub(crate) fn find(s: &[u8], c: u8) -> Option<usize> {
    s.iter().position(|&x| x == c)
}

pub(crate) fn find_seq(s: &[u8], pat: &[u8]) -> Option<usize> {
    if pat.is_empty() || s.len() < pat.len() {
        return None;
    }
    s.windows(pat.len()).position(|w| w == pat)
}

/// Lower case, `_` as `-`.
fn norm(c: u8) -> u8 {
    match c.to_ascii_lowercase() {
        b'_' => b'-',
        l => l,
    }
}

fn eq_norm(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| norm(*x) == norm(*y))
}

fn starts_with_norm(s: &[u8], p: &[u8]) -> bool {
    s.get(..p.len()).is_some_and(|h| eq_norm(h, p))
}

fn ends_with_norm(s: &[u8], p: &[u8]) -> bool {
    s.len() >= p.len() && eq_norm(&s[s.len() - p.len()..], p)
}

fn ends_with_ci(s: &[u8], p: &[u8]) -> bool {
    s.len() >= p.len() && s[s.len() - p.len()..].eq_ignore_ascii_case(p)
}

/// `s` is `part`, or ends with `sep` then `part` (normalized).
fn is_or_ends_with_part(s: &[u8], part: &[u8], sep: u8) -> bool {
    if eq_norm(s, part) {
        return true;
    }
    let n = part.len() + 1;
    s.len() > n && norm(s[s.len() - n]) == sep && ends_with_norm(s, part)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(w: &str) -> Vec<String> {
        let mut v = Vec::new();
        word(w.as_bytes(), &mut |a, b| v.push(w[a..b].to_string()));
        v
    }

    #[test]
    fn flags() {
        for f in [
            "--password",
            "-password",
            "--passwd",
            "--db-pass",
            "--token",
            "--api_key",
            "--API-KEY",
            "--client-secret",
            "--access-key",
            "--oauth2-bearer",
        ] {
            assert!(is_secret_flag(f.as_bytes()), "{f}");
        }
        for f in [
            "--token-file",
            "--password-file",
            "--no-password",
            "--ask-pass",
            "--bypass",
            "--max-tokens",
            "-p",
            "token",
            "--",
            "-",
            "--password-stdin",
            "-la ; --password",
        ] {
            assert!(!is_secret_flag(f.as_bytes()), "{f}");
        }
    }

    #[test]
    fn variables() {
        for v in [
            "GITHUB_TOKEN",
            "PGPASSWORD",
            "db_password",
            "AWS_SECRET_ACCESS_KEY",
            "MYSQL_PWD",
            "TOKEN",
            "SSHPASS",
        ] {
            assert!(is_secret_var(v.as_bytes()), "{v}");
        }
        for v in [
            "KEY_FILE", "PATH", "HOME", "a", "", "1_TOKEN", "MY-TOKEN", "OLDPWD",
        ] {
            assert!(!is_secret_var(v.as_bytes()), "{v}");
        }
    }

    #[test]
    fn one_word_spans() {
        assert_eq!(spans("--token=abc"), ["abc"]);
        assert_eq!(spans("--token="), Vec::<String>::new());
        assert_eq!(spans("MY_SECRET=s=1"), ["s=1"]);
        assert_eq!(spans("Authorization: Bearer x y"), ["x y"]);
        assert_eq!(spans("authorization:xyz"), ["xyz"]);
        assert_eq!(spans("Authorization: Bearer"), Vec::<String>::new());
        assert_eq!(spans("Authorization: Custom a b"), ["Custom a b"]);
        assert_eq!(spans("-HX-Api-Key: k"), ["k"]);
        assert_eq!(spans("--header=Cookie: a=1; b=2"), ["1", "2"]);
        assert_eq!(spans("Set-Cookie: s=1; Path=/"), ["1"]);
        assert_eq!(spans("https://u:p@h/x"), ["p"]);
        assert_eq!(spans("redis://:p@h"), ["p"]);
        assert_eq!(spans("https://u:p@ss@h/x"), ["p@ss"]);
        assert_eq!(spans("https://u@h/x?a=1&access_token=t#k"), ["t"]);
        assert_eq!(spans("a https://u:p@h b https://v:q@i"), ["p", "q"]);
        assert_eq!(spans("git@github.com:o/r.git"), Vec::<String>::new());
        assert_eq!(spans("https://h/x?q=1"), Vec::<String>::new());
        assert_eq!(spans("PATH=/usr/bin:/bin"), Vec::<String>::new());
        assert_eq!(spans(":://@:@://"), Vec::<String>::new());
    }
}
