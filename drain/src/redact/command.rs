//! Rules across the words of one command, and the walk that applies every rule to argv and,
//! recursively, to the scripts and multi-word strings inside it.
//!
//! A command is a list of words: a whole argv, or one simple command of a shell script. For each
//! word, in order:
//! - if the word before asked for it, it is all secret (after `--token`, `sshpass -p`,
//!   `aws_secret_access_key`), or a header value (after `Authorization:` and its `Bearer`), or
//!   `user:SECRET` (after `curl -u`), or a `-c` script;
//! - else if it is the script operand of a shell (`sh`, `bash`, `dash`, `zsh`, `ksh`, `fish`…
//!   with `-c` among its options, wherever the shell's name is in the command: after `env`,
//!   `sudo`, `docker exec …`), it is tokenized and its commands walked, without the one-word
//!   rules on the whole script (so `MY_TOKEN=x; ls` loses `x` only);
//! - else the one-word rules apply to it (see `rules`); if it holds blanks, quotes or shell
//!   operators it is also tokenized and its commands walked (conservatively: the text of
//!   `git commit -m "…"` is looked at like a command line);
//! - then it may ask for the next word (a secret flag without `=`, a header name alone), and
//!   tool rules apply from the word naming the tool on: `-pX` after `mysql*`/`mariadb*`,
//!   `-p X`/`-pX` after `sshpass`/`mongo*`, `-a X`/`-aX` after `redis-cli`, `-u`/`--user` after
//!   `curl`, `-c` after `su`.
//!
//! The walk is bounded: nesting by [`MAX_DEPTH`], the bytes tokenized by a budget proportional
//! to the input. Past either bound the text is masked whole.

use super::rules::{self, Header};
use super::shell::{self, Sink, MAX_DEPTH};
use super::text::{Edit, Text};

/// Collects the edits that redact argv.
pub(crate) struct Redactor {
    pub edits: Vec<Edit>,
    /// Bytes the tokenizer may still look at.
    budget: usize,
}

impl Redactor {
    pub fn new(budget: usize) -> Self {
        Redactor {
            edits: Vec::new(),
            budget,
        }
    }

    /// Walk argv, a command of its own.
    pub fn argv<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        let mut c = Command::default();
        for (i, a) in args.iter().enumerate() {
            c.word(self, &Text::item(i, a.as_ref()), 0);
        }
    }

    /// Walk the words of one command.
    pub fn command(&mut self, words: &[Text<'_>], depth: usize) {
        let mut c = Command::default();
        for w in words {
            c.word(self, w, depth);
        }
    }

    fn mask(&mut self, t: &Text<'_>, a: usize, b: usize) {
        t.mask(a, b, &mut self.edits);
    }

    fn mask_all(&mut self, t: &Text<'_>) {
        t.mask_all(&mut self.edits);
    }

    /// The one-word rules.
    fn rules(&mut self, t: &Text<'_>) {
        let edits = &mut self.edits;
        rules::word(&t.bytes, &mut |a, b| t.mask(a, b, edits));
    }

    /// A word holding blanks: the one-word rules, then its commands.
    fn loose(&mut self, t: &Text<'_>, depth: usize) {
        self.rules(t);
        self.script(t, depth);
    }

    /// A script: its commands.
    fn script(&mut self, t: &Text<'_>, depth: usize) {
        if depth >= MAX_DEPTH || t.len() > self.budget {
            self.mask_all(t);
            return;
        }
        self.budget -= t.len();
        shell::parse(t, depth, self);
    }

    /// The part of `t` after the first `:` at or after `from` (`user:PASSWORD`).
    fn mask_after_colon(&mut self, t: &Text<'_>, from: usize) {
        let b: &[u8] = &t.bytes;
        if let Some(k) = b.get(from..).and_then(|r| rules::find(r, b':')) {
            self.mask(t, from + k + 1, b.len());
        }
    }
}

impl Sink for Redactor {
    fn command(&mut self, words: &[Text<'_>], depth: usize) {
        Redactor::command(self, words, depth);
    }

    fn loose(&mut self, t: &Text<'_>, depth: usize) {
        if depth >= MAX_DEPTH {
            self.mask_all(t);
        } else {
            Redactor::loose(self, t, depth + 1);
        }
    }
}

/// A tool whose own options carry secrets.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Tool {
    #[default]
    Other,
    /// `-pSECRET` (attached only: `-p` alone prompts and the next word is a database).
    Mysql,
    /// `-X SECRET` and `-XSECRET` for this letter X.
    ShortPass(u8),
    /// `-u user:SECRET`, `--user`, `-U`, `--proxy-user`.
    Curl,
    /// `-c SCRIPT` among the options, script at the first operand.
    Shell,
    /// `-c SCRIPT`, `--command SCRIPT`.
    Su,
}

/// What the previous word says about this one.
#[derive(Clone, Copy, Default)]
enum Pending {
    #[default]
    Nothing,
    /// The value of a secret flag, all of it.
    Secret,
    /// The value of a header whose name was a word of its own; `true` once the scheme word
    /// (`Bearer`) went by.
    Header(Header, bool),
    /// `user:SECRET`.
    UserPass,
    /// A shell script.
    Script,
    /// The argument of a shell option (`-o pipefail`): not the script.
    OptionArg,
}

/// The state of the walk over one command.
#[derive(Default)]
struct Command {
    tool: Tool,
    pending: Pending,
    /// For [`Tool::Shell`]: `-c` seen, and whether the options are over.
    wants_script: bool,
    operands: bool,
}

impl Command {
    fn word(&mut self, r: &mut Redactor, w: &Text<'_>, depth: usize) {
        if self.pending_word(r, w, depth) {
            return;
        }
        let b: &[u8] = &w.bytes;
        if self.is_script(b) {
            r.script(w, depth + 1);
            // To be safe if the word was not the script after all (`sh -c -x mysql -pX`, an
            // error), it still says what it would say about the next words.
            self.enter_tool(b);
            self.triggers(r, w);
            return;
        }
        self.enter_tool(b);
        if w.has_shell_syntax() {
            r.loose(w, depth + 1);
        } else {
            r.rules(w);
        }
        self.triggers(r, w);
    }

    /// The words after one naming a tool are that tool's options.
    fn enter_tool(&mut self, b: &[u8]) {
        if let Some(t) = tool(b) {
            self.tool = t;
            self.wants_script = false;
            self.operands = false;
        }
    }

    /// Handle the word the previous one asked for; true if nothing else is to be done with it.
    fn pending_word(&mut self, r: &mut Redactor, w: &Text<'_>, depth: usize) -> bool {
        let b: &[u8] = &w.bytes;
        match std::mem::take(&mut self.pending) {
            Pending::Nothing => false,
            // A long option instead of the value: the flag had none.
            Pending::Secret if b.starts_with(b"--") => false,
            Pending::Secret => {
                r.mask_all(w);
                true
            }
            Pending::Header(Header::Auth, false) if rules::is_auth_scheme(b) => {
                self.pending = Pending::Header(Header::Auth, true);
                true
            }
            Pending::Header(kind, scheme_seen) => {
                let kind = if scheme_seen { Header::Plain } else { kind };
                // Closing punctuation is the data's around the value (`"token": "x"},`); not
                // `]`, which ends the mask (masking again must change nothing).
                let end = b.len()
                    - b.iter()
                        .rev()
                        .take_while(|c| b"}),;\"'".contains(c))
                        .count();
                let edits = &mut r.edits;
                rules::header_value(&b[..end], 0, kind, &mut |a, e| w.mask(a, e, edits));
                true
            }
            Pending::UserPass => {
                r.mask_after_colon(w, 0);
                true
            }
            Pending::Script => {
                r.script(w, depth + 1);
                true
            }
            Pending::OptionArg => {
                r.rules(w);
                true
            }
        }
    }

    /// For a shell: follow its options; true for the operand that is the `-c` script.
    fn is_script(&mut self, b: &[u8]) -> bool {
        if self.tool != Tool::Shell || self.operands {
            return false;
        }
        match b {
            b"--" => {
                self.operands = true;
                if self.wants_script {
                    self.pending = Pending::Script;
                }
                false
            }
            b"-o" | b"+o" | b"-O" | b"+O" | b"--rcfile" | b"--init-file" => {
                self.pending = Pending::OptionArg;
                false
            }
            // Long options (`--norc`), and short ones (`-ec`, `+x`): letters only.
            [b'-', b'-', name @ ..]
                if name.iter().all(|c| c.is_ascii_lowercase() || *c == b'-') =>
            {
                false
            }
            [b'-' | b'+', opts @ ..]
                if !opts.is_empty() && opts.iter().all(u8::is_ascii_alphabetic) =>
            {
                self.wants_script |= b[0] == b'-' && opts.contains(&b'c');
                false
            }
            // The first operand, or a word that cannot be an option (`-j4`, `--x=y`, `-x y`).
            _ => {
                self.operands = true;
                self.wants_script
            }
        }
    }

    /// What this word says about the next one, and the tool rules for this one.
    fn triggers(&mut self, r: &mut Redactor, w: &Text<'_>) {
        let b: &[u8] = &w.bytes;
        if rules::is_secret_flag(b)
            || b.eq_ignore_ascii_case(b"aws_secret_access_key")
            || b.eq_ignore_ascii_case(b"aws_session_token")
        {
            self.pending = Pending::Secret;
        } else if let Some(kind) = rules::header_without_value(b) {
            self.pending = Pending::Header(kind, false);
        } else {
            self.tool_option(r, w);
        }
    }

    fn tool_option(&mut self, r: &mut Redactor, w: &Text<'_>) {
        let b: &[u8] = &w.bytes;
        match (self.tool, b) {
            (Tool::Mysql, [b'-', b'p', rest @ ..]) if !rest.is_empty() => r.mask(w, 2, b.len()),
            (Tool::ShortPass(c), [b'-', x]) if *x == c => self.pending = Pending::Secret,
            (Tool::ShortPass(c), [b'-', x, _, ..]) if *x == c => r.mask(w, 2, b.len()),
            (Tool::Curl, b"-u" | b"-U" | b"--user" | b"--proxy-user") => {
                self.pending = Pending::UserPass;
            }
            (Tool::Curl, [b'-', cluster @ ..]) if ends_short_cluster(cluster, b"uU") => {
                self.pending = Pending::UserPass;
            }
            (Tool::Curl, [b'-', b'u' | b'U', x, ..]) if *x != b'-' => r.mask_after_colon(w, 2),
            (Tool::Curl, _) if b.starts_with(b"--user=") || b.starts_with(b"--proxy-user=") => {
                r.mask_after_colon(w, rules::find(b, b'=').unwrap_or(0) + 1);
            }
            (Tool::Su, b"-c" | b"--command") => self.pending = Pending::Script,
            _ => {}
        }
    }
}

/// The tool a word names (by its last path component; a login shell's leading `-` ignored).
fn tool(w: &[u8]) -> Option<Tool> {
    let base = w.rsplit(|&c| c == b'/').next().unwrap_or(w);
    let base = base.strip_prefix(b"-").unwrap_or(base);
    const SHELLS: [&[u8]; 9] = [
        b"sh", b"bash", b"dash", b"zsh", b"ksh", b"mksh", b"ash", b"fish", b"yash",
    ];
    if SHELLS.contains(&base) {
        Some(Tool::Shell)
    } else if base == b"su" || base == b"runuser" {
        Some(Tool::Su)
    } else if base.starts_with(b"mysql") || base.starts_with(b"mariadb") {
        Some(Tool::Mysql)
    } else if base == b"sshpass" || base.starts_with(b"mongo") {
        Some(Tool::ShortPass(b'p'))
    } else if base == b"redis-cli" {
        Some(Tool::ShortPass(b'a'))
    } else if base == b"curl" {
        Some(Tool::Curl)
    } else {
        None
    }
}

/// `cluster` (an option word without its dash) is short options, the last one of `last`.
fn ends_short_cluster(cluster: &[u8], last: &[u8]) -> bool {
    cluster.iter().all(u8::is_ascii_alphabetic) && cluster.last().is_some_and(|c| last.contains(c))
}
