//! Redaction of argument values that look like secrets. On by default; `--no-redact` keeps
//! them. What is replaced by `[REDACTED]`:
//! - the value of `--password=…`, `--token=…`, `--secret=…`, `--api-key=…` and similar flags,
//!   and the argument after such a flag given alone (`--token XYZ`);
//! - the credentials of an `Authorization:` or `Proxy-Authorization:` header argument, and of
//!   `Cookie:` headers;
//! - the value of `NAME=…` assignments whose name ends in `_KEY`, `_TOKEN`, `_SECRET`,
//!   `_PASSWORD` or `_PASS`, or is `PASSWORD`/`TOKEN`/`SECRET`;
//! - the password of a URL with credentials (`https://user:pass@host`).
//!
//! An argument holding several words (`sh -c "curl --token XYZ …"`) is redacted word by word
//! with the same rules, keeping everything else of it as it was.

/// The replacement text.
pub const MASK: &str = "[REDACTED]";

const FLAG_WORDS: [&str; 10] = [
    "password",
    "passwd",
    "pass",
    "token",
    "secret",
    "api-key",
    "apikey",
    "api_key",
    "access-token",
    "auth-token",
];

fn secret_flag(name: &str) -> bool {
    let n = name.trim_start_matches('-').to_ascii_lowercase();
    name.starts_with('-')
        && FLAG_WORDS
            .iter()
            .any(|w| n == *w || n.ends_with(&format!("-{w}")) || n.ends_with(&format!("_{w}")))
}

fn secret_var(name: &str) -> bool {
    let u = name.to_ascii_uppercase();
    !u.is_empty()
        && u.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && (["_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_PASS"]
            .iter()
            .any(|s| u.ends_with(s))
            || ["PASSWORD", "TOKEN", "SECRET"].contains(&u.as_str()))
}

/// Redact `argv` in place; true if anything was replaced.
pub fn argv(args: &mut [Vec<u8>]) -> bool {
    let mut changed = false;
    let mut next_is_secret = false;
    for a in args.iter_mut() {
        if next_is_secret {
            *a = MASK.as_bytes().to_vec();
            next_is_secret = false;
            changed = true;
            continue;
        }
        let s = String::from_utf8_lossy(a).into_owned();
        if let Some(r) = one(&s) {
            *a = r.into_bytes();
            changed = true;
        } else if secret_flag(&s) {
            next_is_secret = true;
        } else if s.contains(char::is_whitespace) {
            if let Some(r) = words(&s) {
                *a = r.into_bytes();
                changed = true;
            }
        }
    }
    changed
}

/// Redact the words of a multi-word argument (a shell command line).
fn words(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut next_is_secret = false;
    let mut rest = s;
    while !rest.is_empty() {
        let ws = rest.len() - rest.trim_start().len();
        out.push_str(&rest[..ws]);
        rest = &rest[ws..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (w, tail) = rest.split_at(end);
        rest = tail;
        // Quotes around a word do not hide it.
        let bare = w.trim_matches(|c| c == '"' || c == '\'');
        if w.is_empty() {
            continue;
        }
        if next_is_secret {
            out.push_str(MASK);
            next_is_secret = false;
            changed = true;
        } else if let Some(r) = one(bare) {
            out.push_str(&r);
            changed = true;
        } else {
            next_is_secret = secret_flag(bare);
            out.push_str(w);
        }
    }
    changed.then_some(out)
}

/// The redacted form of one argument, if it holds a secret.
fn one(s: &str) -> Option<String> {
    if let Some((name, _)) = s.split_once('=') {
        if secret_flag(name) || secret_var(name) {
            return Some(format!("{name}={MASK}"));
        }
    }
    let lower = s.to_ascii_lowercase();
    for h in ["authorization:", "proxy-authorization:", "cookie:"] {
        if let Some(rest) = lower.strip_prefix(h) {
            // Keep the scheme word of "Authorization: Bearer …".
            let rest_orig = &s[h.len()..];
            let scheme = rest_orig
                .split_whitespace()
                .next()
                .filter(|w| rest.split_whitespace().count() > 1 && !w.contains('='));
            return Some(match scheme {
                Some(w) => format!("{} {w} {MASK}", &s[..h.len()]),
                None => format!("{} {MASK}", &s[..h.len()]),
            });
        }
    }
    if let Some(i) = s.find("://") {
        let after = &s[i + 3..];
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        if let Some(at) = after[..end].rfind('@') {
            if let Some(colon) = after[..at].find(':') {
                return Some(format!(
                    "{}{}:{MASK}{}",
                    &s[..i + 3],
                    &after[..colon],
                    &after[at..]
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red(a: &[&str]) -> Vec<String> {
        let mut v: Vec<Vec<u8>> = a.iter().map(|s| s.as_bytes().to_vec()).collect();
        argv(&mut v);
        v.into_iter()
            .map(|b| String::from_utf8(b).unwrap())
            .collect()
    }

    #[test]
    fn secrets_are_masked_and_the_rest_kept() {
        assert_eq!(
            red(&["x", "--password=hunter2", "--name=bob"]),
            ["x", "--password=[REDACTED]", "--name=bob"]
        );
        assert_eq!(
            red(&["gh", "--token", "abc", "repo"]),
            ["gh", "--token", "[REDACTED]", "repo"]
        );
        assert_eq!(
            red(&["curl", "-H", "Authorization: Bearer xyz"]),
            ["curl", "-H", "Authorization: Bearer [REDACTED]"]
        );
        assert_eq!(
            red(&[
                "env",
                "AWS_SECRET_ACCESS_KEY=abc",
                "MY_TOKEN=t",
                "PATH=/bin"
            ]),
            [
                "env",
                "AWS_SECRET_ACCESS_KEY=[REDACTED]",
                "MY_TOKEN=[REDACTED]",
                "PATH=/bin"
            ]
        );
        assert_eq!(
            red(&["git", "clone", "https://me:pw@example.com/r.git"]),
            ["git", "clone", "https://me:[REDACTED]@example.com/r.git"]
        );
        assert_eq!(red(&["ls", "-la", "/tmp"]), ["ls", "-la", "/tmp"]);
        assert_eq!(
            red(&["sh", "-c", "curl --token abc -u x  API_KEY=k make"]),
            [
                "sh",
                "-c",
                "curl --token [REDACTED] -u x  API_KEY=[REDACTED] make"
            ]
        );
    }
}
