//! Redaction of secrets in recorded argv. On by default; `--no-redact` keeps them. The full list
//! of what is and is not caught, with examples, is `docs/REDACTION.md`.
//!
//! [`argv`] replaces the secret bytes of an argument with [`MASK`] and keeps everything else of it
//! byte for byte: quotes, separators, blanks, the flag or header name, the URL around a
//! password. What is a secret:
//! - the value of a secret flag, `--password=X` or `--password X` (also `--passwd`, `--pass`,
//!   `--passphrase`, `--token`, `--secret`, `--api-key`, `--access-key`, `--secret-key`,
//!   `--client-secret`, `--auth-token`…, with one or two dashes; not `--token-file`,
//!   `--no-password`, `--password-stdin`);
//! - the value of `NAME=X` when `NAME` ends in `_TOKEN`, `_SECRET`, `_KEY`, `_PASSWORD`,
//!   `_PASSWD`, `_PASS`, `_PWD`, `PASSWORD`, or is `TOKEN`, `SECRET`, `APIKEY`, `SSHPASS`:
//!   as an argument (`env X=…`, `make X=…`, `--env=X=…`) or a shell assignment (`X=… cmd`,
//!   `export X=…`); and of dotted or `-D` properties whose last part is a secret key
//!   (`-Ddb.password=X`, `--set auth.token=X`);
//! - header values: `Authorization:` and `Proxy-Authorization:` (after a `Bearer`, `Basic`,
//!   `token`… scheme word, which is kept), the values of `Cookie:` pairs and of the first
//!   `Set-Cookie:` pair, and all of `X-Api-Key:`, `Private-Token:`, `*-Token:`, `*-Key:`,
//!   `*-Secret:`, `password:`, `secret:` values; in one word, after `-H` or after `=`, or as
//!   words of their own;
//! - the password of a URL (`scheme://user:X@host`, `redis://:X@host`) and the values of its
//!   secret query parameters (`?access_token=X`, `&api_key=X`, `X-Amz-Signature=X`…);
//! - the values of secret keys in data (see `data`): JSON or dict strings
//!   (`{"password": "X"}`) and form bodies (`user=me&token=X`);
//! - tool options: `mysql*`/`mariadb*` `-pX`; `sshpass`/`mongo*` `-p X`; `redis-cli -a X`;
//!   `curl -u user:X`; the word after `aws_secret_access_key` or `aws_session_token`;
//! - well-known token shapes anywhere in an argument (see `shapes`): GitHub, GitLab, Slack,
//!   Stripe, OpenAI-style `sk-`, Google `AIza`, npm, Hugging Face, AWS key ids, JWTs, the key
//!   after `aws_secret_access_key`, and the body of `-----BEGIN … PRIVATE KEY-----` blocks.
//!
//! The script of `sh -c` (also `bash`, `dash`, `zsh`, `ksh`, `fish`, `su -c`, after `env`,
//! `sudo` or anything else) is tokenized like a shell would (see `shell`): quotes, escapes,
//! separators, redirections, here-documents, comments, `$(…)` and backticks (whose commands are
//! walked too), and every simple command in it gets the rules above word by word, a flag and
//! its value being two words (see `command`). Any other argument holding blanks, quotes or
//! operators (`ssh host 'cmd …'`, `python -c '…'`, a commit message) gets the one-word rules as
//! a whole and is then tokenized and walked the same way: conservative, it may mask a word after
//! `--token` in prose.
//!
//! Not caught: secrets in positions no rule names (`tool s3cr3t`, `-p` for tools not listed,
//! `user:pass` without a scheme, JSON values that are not strings), secrets built at run time
//! (`"ab""cd"` is caught, `$A$B` is not), values that are only expansions (`--token "$T"` is
//! kept: the secret is not in the command line), and environment variables, which are never
//! recorded.
//!
//! Invariants: it never panics and never reads out of bounds, whatever the bytes (not UTF-8,
//! unbalanced quotes, deep nesting); an item differs from the original only in the masked
//! spans (see `text`); the work is linear in the input (nesting and tokenized bytes are
//! bounded, past which the text in question is masked whole); an argv whose items hold no `=`,
//! `:`, blank, quote or shell operator, start with no `-` and are not
//! `aws_secret_access_key`/`aws_session_token` (the common case) costs one scan of its bytes
//! for token shapes and no allocation.

mod command;
mod data;
mod rules;
mod shapes;
mod shell;
#[cfg(test)]
mod tests;
mod text;

use text::Edit;

/// The replacement text.
pub const MASK: &str = "[REDACTED]";

/// Bytes the tokenizer may look at, per byte of argv (plus a floor): far above what any real
/// command needs, low enough that hostile nesting cannot make the decoder slow.
const BUDGET_PER_BYTE: usize = 32;
const BUDGET_FLOOR: usize = 1 << 16;

/// Redact `args` in place; true if anything was replaced.
///
/// ```
/// let mut args: Vec<Vec<u8>> = ["sh", "-c", "curl -H 'Authorization: Bearer zz' x; true"]
///     .iter().map(|a| a.as_bytes().to_vec()).collect();
/// assert!(drain::redact::argv(&mut args));
/// assert_eq!(args[2], b"curl -H 'Authorization: Bearer [REDACTED]' x; true");
/// ```
pub fn argv(args: &mut [Vec<u8>]) -> bool {
    let edits = edits(args);
    !edits.is_empty() && apply(args, edits)
}

/// `args` redacted, if anything in them is replaced (`None`: they stand as they are). Copies
/// nothing unless something is replaced.
///
/// ```
/// let args: [&[u8]; 3] = [b"mysql", b"-u", b"root"];
/// assert_eq!(drain::redact::redacted(&args), None);
/// let args: [&[u8]; 2] = [b"login", b"--password=hunter2"];
/// assert_eq!(
///     drain::redact::redacted(&args).unwrap()[1],
///     b"--password=[REDACTED]"
/// );
/// ```
pub fn redacted(args: &[&[u8]]) -> Option<Vec<Vec<u8>>> {
    let edits = edits(args);
    if edits.is_empty() {
        return None;
    }
    let mut owned: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
    apply(&mut owned, edits).then_some(owned)
}

/// What to replace in `args`.
fn edits<A: AsRef<[u8]>>(args: &[A]) -> Vec<Edit> {
    let mut edits = Vec::new();
    if args.iter().any(|a| worth_the_rules(a.as_ref())) {
        let total: usize = args.iter().map(|a| a.as_ref().len()).sum();
        let budget = total
            .saturating_mul(BUDGET_PER_BYTE)
            .saturating_add(BUDGET_FLOOR);
        let mut r = command::Redactor::new(budget);
        r.argv(args);
        edits = r.edits;
    }
    for (item, a) in args.iter().enumerate() {
        shapes::scan(a.as_ref(), &mut |start, end| {
            edits.push(Edit {
                item,
                start,
                end,
                mask: true,
            })
        });
    }
    edits
}

/// Bytes that can make an item start or hold a secret for a rule other than the token shapes:
/// shell syntax, `=` and `:`.
const TRIGGERS: [bool; 256] = {
    let mut set = text::byte_set(text::SHELL_SYNTAX);
    set[b'=' as usize] = true;
    set[b':' as usize] = true;
    set
};

/// Whether an item can start or be a secret for a rule other than the token shapes.
fn worth_the_rules(a: &[u8]) -> bool {
    a.first() == Some(&b'-')
        || a.iter().any(|&c| TRIGGERS[usize::from(c)])
        || a.eq_ignore_ascii_case(b"aws_secret_access_key")
        || a.eq_ignore_ascii_case(b"aws_session_token")
}

/// Apply the edits; true if an item changed.
fn apply(args: &mut [Vec<u8>], mut edits: Vec<Edit>) -> bool {
    edits.sort_unstable_by_key(|e| (e.item, e.start, e.end));
    let mut changed = false;
    for group in edits.chunk_by(|a, b| a.item == b.item) {
        let Some(item) = group.first().and_then(|e| args.get_mut(e.item)) else {
            continue;
        };
        let new = rewrite(item, group);
        if new != *item {
            *item = new;
            changed = true;
        }
    }
    changed
}

/// `s` with the (sorted) edits applied; overlapping or touching edits become one, masked if
/// any of them is.
fn rewrite(s: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + MASK.len());
    let mut pos = 0;
    let mut k = 0;
    while let Some(first) = edits.get(k) {
        let (mut end, mut mask) = (first.end, first.mask);
        k += 1;
        while let Some(e) = edits.get(k).filter(|e| e.start <= end) {
            end = end.max(e.end);
            mask |= e.mask;
            k += 1;
        }
        let start = first.start.clamp(pos, s.len());
        let end = end.clamp(start, s.len());
        out.extend_from_slice(&s[pos..start]);
        if mask {
            out.extend_from_slice(MASK.as_bytes());
        }
        pos = end;
    }
    out.extend_from_slice(s.get(pos..).unwrap_or_default());
    out
}
