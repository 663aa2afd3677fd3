//! Secrets keyed by name inside data written in one word: JSON or Python-dict strings
//! (`{"password": "x"}`), form bodies (`user=me&token=x`) and dotted properties
//! (`-Ddb.password=x`, `--set auth.token=x`, `--env=DB_PASSWORD=x`).
//!
//! A key is secret when, lower-cased and with `_` as `-`, it ends with one of [`KEY_SUFFIXES`]
//! (`password`, `accessToken`, `client_secret`, `apiKey`…) or is one of [`KEY_NAMES`]. Keys
//! ending otherwise (`token_type`, `max_tokens`, `password_file`) are not.
//!
//! Each function is one pass over the word and reports spans inside it; a JSON value span never
//! holds its own quotes.

use super::rules::{find, is_secret_var};

/// Endings of a secret key (normalized: lower case, `_` as `-`).
const KEY_SUFFIXES: [&[u8]; 13] = [
    b"password",
    b"passwd",
    b"passphrase",
    b"token",
    b"secret",
    b"apikey",
    b"api-key",
    b"secretkey",
    b"secret-key",
    b"accesskey",
    b"access-key",
    b"account-key",
    b"credentials",
];

/// Secret keys by themselves.
const KEY_NAMES: [&[u8]; 2] = [b"pass", b"pw"];

/// Whether a key of structured data names a secret.
pub(crate) fn is_secret_key(name: &[u8]) -> bool {
    let norm = |c: &u8| match c.to_ascii_lowercase() {
        b'_' => b'-',
        l => l,
    };
    let ends = |s: &[u8]| {
        name.len() >= s.len()
            && name[name.len() - s.len()..]
                .iter()
                .map(norm)
                .eq(s.iter().copied())
    };
    KEY_SUFFIXES.iter().any(|s| ends(s))
        || KEY_NAMES.iter().any(|n| name.len() == n.len() && ends(n))
}

/// `"key": "value"` and `'key': 'value'` pairs with a secret key: the value inside its quotes.
pub(crate) fn quoted_values(w: &[u8], out: &mut impl FnMut(usize, usize)) {
    let mut k = 0;
    while let Some(open) = w
        .get(k..)
        .and_then(|r| r.iter().position(|&c| c == b'"' || c == b'\''))
    {
        let open = k + open;
        let quote = w[open];
        let Some(close) = find(&w[open + 1..], quote).map(|n| open + 1 + n) else {
            return;
        };
        k = close + 1;
        let colon = k + blanks(&w[k..]);
        if w.get(colon) != Some(&b':') || !is_secret_key(&w[open + 1..close]) {
            continue;
        }
        let value = colon + 1 + blanks(&w[colon + 1..]);
        if let Some(&vq) = w.get(value).filter(|&&c| c == b'"' || c == b'\'') {
            let end = string_end(w, value + 1, vq);
            if value + 1 < end {
                out(value + 1, end);
            }
            k = (end + 1).max(k);
        }
    }
}

/// Where the string whose content starts at `from` and is closed by `quote` ends (the index
/// of the closing quote, or the end of the word); backslash escapes the next byte.
fn string_end(w: &[u8], from: usize, quote: u8) -> usize {
    let mut k = from;
    while let Some(&c) = w.get(k) {
        if c == quote {
            return k;
        }
        k += if c == b'\\' { 2 } else { 1 };
    }
    w.len()
}

/// `name=value&name=value` (a form body, not a URL): the values of secret names. The body is
/// the word, or what follows the `=` of a leading option (`--data=…`).
pub(crate) fn form_values(w: &[u8], out: &mut impl FnMut(usize, usize)) {
    if find(w, b'&').is_none() || super::rules::find_seq(w, b"://").is_some() {
        return;
    }
    let from = match (w.first(), find(w, b'=')) {
        (Some(b'-'), Some(eq)) => eq + 1,
        _ => 0,
    };
    let mut start = from;
    while start < w.len() {
        let stop = find(&w[start..], b'&').map_or(w.len(), |n| start + n);
        let pair = &w[start..stop];
        if let Some(eq) = find(pair, b'=') {
            if is_secret_key(&pair[..eq]) && eq + 1 < pair.len() {
                out(start + eq + 1, stop);
            }
        }
        start = stop + 1;
    }
}

/// `NAME=value` where the name is a dotted property (`db.password`), after `-D` (`-Dx.token=`),
/// or the value of an option that sets a variable (`--env=DB_PASSWORD=x`): the value.
pub(crate) fn property_value(w: &[u8], out: &mut impl FnMut(usize, usize)) {
    let Some(eq) = find(w, b'=') else {
        return;
    };
    let name = w.strip_prefix(b"-D").map_or(&w[..eq], |_| &w[2..eq]);
    let is_name = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-');
    let last = name.rsplit(|&c| c == b'.').next().unwrap_or(name);
    let dotted = name.contains(&b'.') || w.starts_with(b"-D");
    if dotted && !name.is_empty() && name.iter().all(is_name) && is_secret_key(last) {
        if eq + 1 < w.len() {
            out(eq + 1, w.len());
        }
        return;
    }
    // `--env=NAME=value`, `--build-arg=NAME=value`: the part after the first `=`.
    if w.first() == Some(&b'-') {
        let rest = &w[eq + 1..];
        if let Some(eq2) = find(rest, b'=') {
            if is_secret_var(&rest[..eq2]) && eq2 + 1 < rest.len() {
                out(eq + 1 + eq2 + 1, w.len());
            }
        }
    }
}

fn blanks(s: &[u8]) -> usize {
    s.iter().take_while(|&&c| c == b' ' || c == b'\t').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(w: &str, f: fn(&[u8], &mut dyn FnMut(usize, usize))) -> Vec<&str> {
        let mut v = Vec::new();
        f(w.as_bytes(), &mut |a, b| v.push(&w[a..b]));
        v
    }

    fn json(w: &[u8], out: &mut dyn FnMut(usize, usize)) {
        quoted_values(w, &mut |a, b| out(a, b));
    }

    fn form(w: &[u8], out: &mut dyn FnMut(usize, usize)) {
        form_values(w, &mut |a, b| out(a, b));
    }

    fn prop(w: &[u8], out: &mut dyn FnMut(usize, usize)) {
        property_value(w, &mut |a, b| out(a, b));
    }

    #[test]
    fn keys() {
        for k in [
            "password",
            "accessToken",
            "client_secret",
            "apiKey",
            "db-passwd",
            "pass",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            assert!(is_secret_key(k.as_bytes()), "{k}");
        }
        for k in [
            "token_type",
            "max_tokens",
            "password_file",
            "bypass",
            "key",
            "user",
            "",
        ] {
            assert!(!is_secret_key(k.as_bytes()), "{k}");
        }
    }

    #[test]
    fn json_and_dicts() {
        assert_eq!(
            spans(r#"{"user":"me","password":"p\"w","n":1}"#, json),
            [r#"p\"w"#]
        );
        assert_eq!(
            spans("{'apiKey': 'k', 'token_type': 'bearer'}", json),
            ["k"]
        );
        assert_eq!(
            spans(r#"{"token": 5, "secret": ""}"#, json),
            Vec::<&str>::new()
        );
        assert_eq!(spans(r#"{"token": "abc"#, json), ["abc"]);
        assert_eq!(spans(r#"""':"'"#, json), Vec::<&str>::new());
    }

    #[test]
    fn forms_and_properties() {
        assert_eq!(spans("user=me&password=p&x=1", form), ["p"]);
        assert_eq!(spans("--data=a=1&client_secret=s", form), ["s"]);
        assert!(spans("https://h/?a=1&token=t", form).is_empty());
        assert_eq!(spans("-Dspring.datasource.password=p", prop), ["p"]);
        assert_eq!(spans("-Dpassword=p", prop), ["p"]);
        assert_eq!(spans("auth.token=t", prop), ["t"]);
        assert_eq!(spans("--env=DB_PASSWORD=p", prop), ["p"]);
        assert!(spans("-Dfile.encoding=UTF-8", prop).is_empty());
        assert!(spans("a.b=c", prop).is_empty());
        assert!(spans("--env=PATH=/bin", prop).is_empty());
    }
}
