//! Redaction through `drain::redact::argv`, as the decoder calls it.
//!
//! - A corpus of secret forms, written with the secret between `«` and `»`: each form is checked
//!   as plain argv and inside `sh -c` scripts (minimal, single and double quoting; after `;`,
//!   `&&`, in a pipeline, in `$(…)`, in backticks, in a nested `bash -c '…'`, behind
//!   `sudo env … sh -c`), against the exact expected output: the marked bytes become
//!   `[REDACTED]`, every other byte is kept, and no secret is left anywhere.
//! - Controls that must come out unchanged, as argv and as scripts.
//! - Property tests: random shell-like scripts built from pieces (words, quotes, separators,
//!   redirections, substitutions, nested `sh -c`, and secret forms with random values) come out
//!   exactly as built with the secrets replaced; arbitrary bytes never panic.

use drain::redact::{argv, MASK};
use proptest::prelude::*;

const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

/// Secret forms: the words of a command, secrets marked `«…»`.
const FORMS: &[&[&str]] = &[
    // Passwords, mysql style and as flags.
    &["mysql", "-h", "db", "-uroot", "-p«Sup3rS3cret1»", "shop"],
    &["mysqldump", "-p«dumpPw2x»", "shop"],
    &["/usr/bin/mariadb", "--user=app", "-p«mariaPw3x»"],
    &["app", "--password=«hunter2a»"],
    &["app", "--password", "«hunter2b»", "--verbose"],
    &["app", "--passwd=«pwd3cc»"],
    &["app", "--passwd", "«pwd3dd»"],
    &["sshpass", "-p", "«sshP4ss»", "ssh", "host"],
    &["sshpass", "-p«sshP4sz»", "ssh", "host"],
    &["redis-cli", "-a", "«redisPw5»", "ping"],
    &["mongosh", "-u", "root", "-p", "«mongoPw6»"],
    &["curl", "-u", "admin:«curlPw7x»", "https://h/"],
    &["curl", "--user=admin:«curlPw8x»", "https://h/"],
    // Tokens, keys and secrets as flags.
    &["gh", "--token", "«tok4eeee»", "repo"],
    &["gh", "--token=«tok4ffff»"],
    &["svc", "--api-key=«ak5gggg»"],
    &["svc", "--api-key", "«ak5hhhh»"],
    &["svc", "--secret=«sec6iiii»"],
    &["az", "login", "--client-secret", "«cs7jjjj»"],
    &["az", "login", "--client-secret=«cs7kkkk»"],
    &["s3cmd", "--access-key=«acc8llll»", "--secret-key=«sk8mmmm»"],
    &["minio", "--access-key", "«acc8nnnn»", "--secret-key", "«sk8oooo»"],
    // Headers.
    &["curl", "-H", "Authorization: Bearer «bear9ppp»", "https://api.example.com"],
    &["curl", "-H", "Authorization: Basic «dXNlcjpwYXNz»"],
    &["curl", "-H", "Authorization: token «ghtok10q»"],
    &["wget", "--header=Proxy-Authorization: Basic «cHJveHk6cHc»", "http://x/"],
    &["curl", "-H", "Cookie: session=«sess11rr»"],
    &["curl", "-H", "Cookie: a=«c12ssss»; b=«c12tttt»"],
    &["curl", "-H", "Set-Cookie: sid=«sid13uuu»; Path=/; HttpOnly"],
    &["curl", "-H", "X-Api-Key: «xk14vvvv»"],
    &["curl", "-H", "X-Auth-Token: «xa15wwww»"],
    &["curl", "--header", "PRIVATE-TOKEN: «glp16xxx»"],
    &["curl", "-H", "Authorization:", "Bearer", "«bw17yyyy»"],
    &["git", "-c", "http.extraHeader=Authorization: Basic «eh18zzzz»", "fetch"],
    &["curl", "-H", "Authorization: Bearer «eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c»"],
    // Data: JSON, form bodies, properties.
    &["curl", "-d", "{\"user\": \"me\", \"password\": \"«jsonPw41»\"}", "https://h/login"],
    &["python3", "-c", "requests.post(u, json={'client_secret': '«pyCs42xx»'})"],
    &["curl", "--data", "user=me&password=«formPw43»&remember=1"],
    &["java", "-Dspring.datasource.password=«javaPw44»", "-jar", "app.jar"],
    &["helm", "upgrade", "x", "--set", "auth.token=«helmTk45»"],
    &["docker", "run", "--env=DB_PASSWORD=«dockPw46»", "img"],
    &["psql", "host=db user=app password=«libpq47x» dbname=shop"],
    &["echo", "password:", "«yamlPw48»"],
    // URLs with credentials.
    &["curl", "https://u:«pw19aaaa»@h.example.com/x"],
    &["git", "clone", "https://x-access-token:«gat20bbb»@github.com/org/repo.git"],
    &["psql", "postgres://app:«pg21cccc»@db:5432/shop"],
    &["redis-cli", "-u", "redis://:«rd22dddd»@cache:6379/0"],
    &["curl", "https://api.example.com/v1?user=me&access_token=«qt23eeee»"],
    &["true", "--token=«abc123xx»", "https://u:«pw39aaaa»@h/x"],
    &["x", "--url=https://u:«pw40bbbb»@h/x?token=«qt40cccc»"],
    // Assignments.
    &["env", "GITHUB_TOKEN=«ght24fff»", "gh", "pr", "list"],
    &["MY_SECRET=«ms25gggg»", "app"],
    &["env", "AWS_SECRET_ACCESS_KEY=«awsk26hh»", "aws", "s3", "ls"],
    &["DB_PASSWORD=«dbp27iii»", "make", "migrate"],
    &["PASSWORD=«p28jjjjj»", "app"],
    &["PGPASSWORD=«pgp29kkk»", "psql", "-h", "db"],
    &["export", "API_KEY=«apik30ll»"],
    &["make", "deploy", "DEPLOY_TOKEN=«dt31mmmm»"],
    // Token shapes.
    &["echo", "ghp_«u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d»"],
    &["tool", "--gh=gho_«KLzdocJ2isAjIhKtJ0RlgLKOmxgJTeKdNnFR»"],
    &["tool", "x:ghu_«IBXuDL7DxtpYlSXpfKtHF4vUCsMehGAkWvj7»"],
    &["echo", "ghs_«FAc9QeWJKY40uvSwMFLZDe1f8rESQedUStPK»,ghr_«R0CsTy4Qwb8DwkNhFdnXsiVpzz63FfkCzJr4»"],
    &["git", "clone", "https://ghp_«u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8e»@github.com/o/r.git"],
    &["echo", "github_pat_«i0B3JrTAwR4y9ojfljoQoa_F1LlqsajAIxNKu8iS2G8NPRVdD53X83RZJzzzzgEOzdmenCkhvMdgaKjIg8»"],
    &["aws", "configure", "set", "aws_access_key_id", "AKIA«IOSFODNN7EXAMPLE»"],
    &["echo", "id=ASIA«XBENYJQWX4HH5344»"],
    &["aws", "configure", "set", "aws_secret_access_key", "«wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY»"],
    &["printf", "[default]\\naws_secret_access_key = «wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLE2»\\n"],
    &["slack", "xoxb-«1234567890-1234567890123-tfjgVvVqE1SkHbn88HxjSI6b»"],
    &["slack", "xoxp-«1234567890-1234567890-WHtP3fS2qHx6kwXoIIXGvOoNZYW2mZp0»"],
    &["slack", "xoxa-«2-zVZomHFwUbbYrEqmSM9wCZ7Uw9xfogoEmvnEN5N1»"],
    &["slack", "xapp-«1-A0123456789-1234567890123-aE6PwZPf1Qh6yYTWmE4l»"],
    &["echo", "sk_live_«BYOvfZ8UzDzV8fUkkibjL5DZ»"],
    &["echo", "rk_live_«PjN0MEQ7wjJJibaZUPgHV7iB»"],
    &["llm", "-k", "sk-«proj-3m03nbqnsGpWLuqIA1id6Vw5DQL05HA064GiIjHG»"],
    &["echo", "AIza«c4xatws8phP9nhFyJfm5di4PzJ59FHz5r1p»"],
    &["curl", "https://maps.example.com/geo?address=x&key=«AIzac4xatws8phP9nhFyJfm5di4PzJ59FHz5r1q»"],
    &["echo", "token=«eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlMTIz»"],
    &["npm", "config", "set", "//registry.npmjs.org/:_authToken=npm_«zCueQpBenQtYh5Xj8TPQxjq4i9DoV8gz4FkQ»"],
    &["echo", "glpat-«1okTBGzvAmwufUxbvJDC»"],
    &["git", "clone", "https://oauth2:«glpat-TbyvHNsG9eh6Yo4gfqrc»@gitlab.com/g/p.git"],
    &["echo", "-----BEGIN OPENSSH PRIVATE KEY-----\n«b3BlbnNzaC1rZXktdjEAAAAA\nBG5vbmUAAAAEbm9uZQAAAAA»\n-----END OPENSSH PRIVATE KEY-----"],
    &["echo", "-----BEGIN RSA PRIVATE KEY-----«MIIEowIBAAKCAQEA»-----END RSA PRIVATE KEY-----"],
];

/// Commands that hold no secret and must come out unchanged.
const CONTROLS: &[&[&str]] = &[
    &["app", "--token-file=/run/secrets/token"],
    &["app", "--password-file", "/run/pw"],
    &["psql", "--no-password", "db"],
    &["docker", "login", "--password-stdin", "-u", "me"],
    &["docker", "run", "-p", "8080:80", "nginx"],
    &["ssh", "-p", "2222", "host"],
    &["mkdir", "-p", "/tmp/a"],
    &["tar", "-pxf", "a.tar"],
    &["mysql", "-p", "-P", "3306", "shop"],
    &["KEY_FILE=/etc/ssl/key.pem", "app"],
    &["curl", "https://example.com/path?q=1&page=2#top"],
    &["git", "clone", "git@github.com:org/repo.git"],
    &["ssh", "user@host"],
    &["scp", "f", "user@host:/tmp/"],
    &["env", "a=b", "PATH=/usr/bin:/bin", "HOME=/home/me", "app"],
    &["cat", "/var/lib/token/cache", "/home/me/secrets/readme"],
    &["make", "-j4"],
    &["echo", "hello world", "it is", "'quoted'"],
    &["curl", "-u", "user", "https://user@host/x"],
    &["echo", "task-Abcdefghij0123456789xyz", "sk-short"],
    &["llm", "--max-tokens", "100"],
    &["ls", "--sort=time", ""],
    &["grep", "-c", "bash", "file"],
    &["ssh", "-o", "StrictHostKeyChecking=no", "host"],
    &["docker", "run", "-e", "GITHUB_TOKEN", "img"],
    &["echo", "Authorization header missing"],
    &["date", "+%Y-%m-%dT%H:%M:%S"],
    &["python3", "-c", "print('a b')"],
    &["sort", "-k", "2", "-t", ":"],
    &[
        "curl",
        "-d",
        "{\"token_type\": \"bearer\", \"max_tokens\": 5}",
    ],
    &["java", "-Dfile.encoding=UTF-8", "-Xmx1g", "-jar", "a.jar"],
    &["llm", "max_tokens=5", "a.b=c", "--env=PATH=/bin"],
    &[
        "echo",
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----",
    ],
];

/// Scripts that hold no secret (as written: the secret is not in the command line).
const CONTROL_SCRIPTS: &[&str] = &[
    "echo \"hello world\" && ls -la | wc -l",
    "curl -H \"Authorization: Bearer $TOKEN\" https://api",
    "gh --token \"$GH_TOKEN\" repo; export GH_TOKEN=$(cat ~/.token)",
    "for f in *.txt; do cat \"$f\"; done",
    "x=$(date +%s); echo \"$x\" > /tmp/t 2>&1",
    "cat <<'EOF'\nplain text\nEOF\necho done",
    "(cd /tmp && make -j4) || exit 1",
    "mysql -P 3306 -h db shop",
    "echo 'unterminated",
    "echo \"a",
    "echo $'tab\\there'",
    "",
];

/// Input, expected output and secrets of a marked string.
fn unmark(s: &str) -> (String, String, Vec<String>) {
    let (mut input, mut want, mut secrets) = (String::new(), String::new(), Vec::new());
    let mut rest = s;
    while let Some(open) = rest.find('«') {
        let close = rest[open..]
            .find('»')
            .map(|k| open + k)
            .expect("closed mark");
        input.push_str(&rest[..open]);
        want.push_str(&rest[..open]);
        let secret = &rest[open + '«'.len_utf8()..close];
        input.push_str(secret);
        want.push_str(MASK);
        secrets.push(secret.to_string());
        rest = &rest[close + '»'.len_utf8()..];
    }
    input.push_str(rest);
    want.push_str(rest);
    (input, want, secrets)
}

fn redact(args: &[String]) -> Vec<String> {
    let mut v: Vec<Vec<u8>> = args.iter().map(|s| s.as_bytes().to_vec()).collect();
    argv(&mut v);
    v.into_iter()
        .map(|b| String::from_utf8(b).expect("UTF-8 in, UTF-8 out"))
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Quoting {
    Minimal,
    Single,
    Double,
}

fn needs_quotes(w: &str) -> bool {
    w.is_empty() || w.chars().any(|c| " \t\n'\"\\$`;&|<>()#*?[]~{}".contains(c))
}

fn single(w: &str) -> String {
    format!("'{}'", w.replace('\'', "'\\''"))
}

fn double(w: &str) -> String {
    let mut s = String::from("\"");
    for c in w.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// A command line of `words`, each quoted as `how` says for the word of `like` at its place
/// (the input word, so that the input and the expected output are quoted alike).
fn line(words: &[String], like: &[String], how: Quoting) -> String {
    let quoted: Vec<String> = words
        .iter()
        .zip(like)
        .map(|(w, l)| match how {
            Quoting::Minimal if !needs_quotes(l) => w.clone(),
            Quoting::Minimal | Quoting::Double => double(w),
            Quoting::Single => single(w),
        })
        .collect();
    quoted.join(" ")
}

/// Scripts that run the command line `c` in some context.
const CONTEXTS: &[fn(&str) -> String] = &[
    |c| c.to_string(),
    |c| format!("cd /tmp && {c} | tee /dev/null; echo done"),
    |c| format!("true;{c}&&false||{c}"),
    |c| format!("out=$({c}); echo \"$out\""),
    |c| format!("echo \"$({c})\" >/dev/null 2>&1"),
    |c| format!("{{ {c}; }} 2>&1 &"),
    |c| format!("bash -c {}", single(c)),
    |c| format!("zsh -lc {} arg0", double(c)),
];

/// Check one form everywhere; return how many checks were made.
fn check_form(marked: &[&str]) -> usize {
    let (mut input, mut want, mut secrets) = (Vec::new(), Vec::new(), Vec::new());
    for w in marked {
        let (i, o, s) = unmark(w);
        input.push(i);
        want.push(o);
        secrets.extend(s);
    }
    let mut cases = vec![(input.clone(), want.clone())];
    for how in [Quoting::Minimal, Quoting::Single, Quoting::Double] {
        let (c_in, c_want) = (line(&input, &input, how), line(&want, &input, how));
        for ctx in CONTEXTS {
            let sh = |s: String| vec!["sh".to_string(), "-c".to_string(), s];
            cases.push((sh(ctx(&c_in)), sh(ctx(&c_want))));
        }
        let prefixed = |s: String| -> Vec<String> {
            ["sudo", "-u", "me", "env", "A=b", "dash", "-ec"]
                .iter()
                .map(|s| s.to_string())
                .chain([s])
                .collect()
        };
        cases.push((prefixed(c_in.clone()), prefixed(c_want.clone())));
    }
    // Backticks, without the double quoting (backslashes mean other things in them).
    let (b_in, b_want) = (
        line(&input, &input, Quoting::Single),
        line(&want, &input, Quoting::Single),
    );
    cases.push((
        vec!["sh".into(), "-c".into(), format!("echo `{b_in}`")],
        vec!["sh".into(), "-c".into(), format!("echo `{b_want}`")],
    ));
    for (args, expected) in &cases {
        let got = redact(args);
        assert_eq!(&got, expected, "form {marked:?} as {args:?}");
        let text = got.join(" ");
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{s:?} left in {got:?}");
        }
    }
    cases.len()
}

#[test]
fn every_secret_form_is_masked_as_argv_and_in_scripts() {
    assert!(FORMS.len() >= 50, "the corpus has {} forms", FORMS.len());
    let checks: usize = FORMS.iter().map(|f| check_form(f)).sum();
    assert!(checks >= FORMS.len() * 20);
}

#[test]
fn controls_come_out_unchanged() {
    assert!(CONTROLS.len() >= 20);
    for words in CONTROLS {
        let input: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        assert_eq!(redact(&input), input, "argv {input:?}");
        for how in [Quoting::Minimal, Quoting::Single, Quoting::Double] {
            let script = vec!["sh".into(), "-c".into(), line(&input, &input, how)];
            assert_eq!(redact(&script), script, "script {script:?}");
        }
    }
    for s in CONTROL_SCRIPTS {
        let script = vec!["bash".to_string(), "-c".to_string(), s.to_string()];
        assert_eq!(redact(&script), script);
    }
}

#[test]
fn bytes_that_are_not_utf8_and_lone_quotes() {
    for (input, want) in [
        (&b"\xff\xfe"[..], &b"\xff\xfe"[..]),
        (b"--name=\xff", b"--name=\xff"),
        (b"--token=\xff\xfe", b"--token=[REDACTED]"),
        (b"'", b"'"),
        (b"\"", b"\""),
        (b"", b""),
    ] {
        let mut v = vec![b"sh".to_vec(), b"-c".to_vec(), input.to_vec()];
        argv(&mut v);
        assert_eq!(v[2], want);
        let mut v = vec![b"x".to_vec(), input.to_vec()];
        argv(&mut v);
        assert_eq!(v[1], want);
    }
    let mut v = vec![b"sh".to_vec(), b"-c".to_vec(), b"x '--token \xff".to_vec()];
    argv(&mut v);
    assert_eq!(v[2], b"x '--token [REDACTED]");
}

#[test]
fn the_jwt_constant_is_a_jwt() {
    let mut v = vec![JWT.as_bytes().to_vec()];
    assert!(argv(&mut v));
    assert_eq!(v[0], MASK.as_bytes());
}

// ---- Property tests ----

/// A piece of a generated script: its text, the text expected after redaction, its secrets.
#[derive(Clone, Debug, Default)]
struct Piece {
    input: String,
    want: String,
    secrets: Vec<String>,
}

impl Piece {
    fn plain(s: &str) -> Self {
        Piece {
            input: s.to_string(),
            want: s.to_string(),
            secrets: Vec::new(),
        }
    }

    fn join(pieces: Vec<Piece>, joiners: &[&'static str]) -> Piece {
        let mut out = Piece::default();
        for (k, p) in pieces.into_iter().enumerate() {
            if k > 0 {
                let j = joiners[k % joiners.len()];
                out.input.push_str(j);
                out.want.push_str(j);
            }
            out.input.push_str(&p.input);
            out.want.push_str(&p.want);
            out.secrets.extend(p.secrets);
        }
        out
    }

    fn wrap(self, f: impl Fn(&str) -> String) -> Piece {
        Piece {
            input: f(&self.input),
            want: f(&self.want),
            secrets: self.secrets,
        }
    }
}

/// Words that hold no secret and start no rule.
const SAFE: &[&str] = &[
    "echo",
    "ls",
    "-la",
    "/tmp/x",
    "a=b",
    "PATH=/usr/bin",
    "make",
    "-j4",
    "'hello world'",
    "\"x y\"",
    "https://example.com/a?q=1",
    "git@github.com:o/r.git",
    "user@host",
    "--token-file=/t",
    "--no-password",
    "$HOME",
    "\"$PATH\"",
    ">/dev/null",
    "2>&1",
    "</dev/null",
    "true",
    "x=$(date)",
    "\"$(date +%s)\"",
];

const JOINERS: &[&str] = &[
    " ", " ; ", ";", " && ", "&&", " | ", "|", " || ", " & ", "\n", " \t ",
];

/// Secret forms: a template (`{}` is the value) and the shape of the value.
const SECRET_FORMS: &[(&str, &str)] = &[
    ("--token={}", VALUE),
    ("--token {}", VALUE),
    ("--password {}", VALUE),
    ("'--password={}'", VALUE),
    ("\"--api-key={}\"", VALUE),
    ("--client-secret='{}'", VALUE),
    ("-H 'Authorization: Bearer {}'", VALUE),
    ("-H \"Authorization: Basic {}\"", VALUE),
    ("--header='X-Api-Key: {}'", VALUE),
    ("Authorization: token {}", VALUE),
    ("-H 'Cookie: sid={}'", VALUE),
    ("https://u:{}@h.example/x", VALUE),
    ("'postgres://app:{}@db/x'", VALUE),
    ("redis://:{}@cache:6379", VALUE),
    ("https://h/x?access_token={}", VALUE),
    ("MY_TOKEN={}", VALUE),
    ("export DB_PASSWORD={}", VALUE),
    ("PGPASSWORD='{}'", VALUE),
    ("env A_SECRET={} x", VALUE),
    ("mysql -uroot -p{} db", VALUE),
    ("sshpass -p {} ssh h", VALUE),
    ("curl -u me:{} u", VALUE),
    ("-d '{\"user\": \"me\", \"password\": \"{}\"}'", VALUE),
    ("-Ddb.password={}", VALUE),
    ("'user=me&access_token={}&x=1'", VALUE),
    ("psql 'host=db password={} dbname=x'", VALUE),
    ("ghp_{}", "[A-Za-z0-9]{36}"),
    ("github_pat_{}", "[A-Za-z0-9_]{22,82}"),
    ("AKIA{}", "[A-Z0-9]{16}"),
    ("xoxb-{}", "[0-9]{10}-[A-Za-z0-9]{24}"),
    ("sk_live_{}", "[A-Za-z0-9]{24}"),
    ("sk-{}", "[a-z][A-Z][0-9][A-Za-z0-9_-]{17,40}"),
    ("AIza{}", "[A-Za-z0-9_-]{35}"),
    ("npm_{}", "[A-Za-z0-9]{36}"),
    ("glpat-{}", "[A-Za-z0-9_-]{20}"),
    (
        "{}",
        "eyJ[A-Za-z0-9_-]{10,30}\\.eyJ[A-Za-z0-9_-]{10,30}\\.[A-Za-z0-9_-]{10,40}",
    ),
    ("'see ghp_{} here'", "[A-Za-z0-9]{36}"),
    (
        "'-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----'",
        "[A-Za-z0-9+/]{20,40}\n[A-Za-z0-9+/]{20,40}",
    ),
];

/// A random value: letters and digits, one of each case and a digit first.
const VALUE: &str = "[a-z][A-Z][0-9][A-Za-z0-9]{9,21}";

fn secret_piece() -> impl Strategy<Value = Piece> {
    (0..SECRET_FORMS.len()).prop_flat_map(|k| {
        let (template, shape) = SECRET_FORMS[k];
        proptest::string::string_regex(shape)
            .expect("valid value regex")
            .prop_map(move |v| Piece {
                input: template.replace("{}", &v),
                want: template.replace("{}", MASK),
                secrets: vec![v],
            })
    })
}

fn safe_piece() -> impl Strategy<Value = Piece> {
    proptest::sample::select(SAFE).prop_map(Piece::plain)
}

fn joined(inner: impl Strategy<Value = Piece>) -> impl Strategy<Value = Piece> {
    (proptest::collection::vec(inner, 1..5), 0..JOINERS.len()).prop_map(|(ps, j)| {
        let joiners: Vec<&str> = JOINERS
            .iter()
            .cycle()
            .skip(j)
            .take(JOINERS.len())
            .copied()
            .collect();
        Piece::join(ps, &joiners)
    })
}

/// A script: pieces, substitutions and nested `sh -c`, joined by separators.
fn script() -> impl Strategy<Value = Piece> {
    let leaf = prop_oneof![2 => safe_piece(), 1 => secret_piece()];
    leaf.prop_recursive(3, 32, 4, |inner| {
        prop_oneof![
            3 => joined(inner.clone()),
            1 => joined(inner.clone()).prop_map(|p| p.wrap(|s| format!("$({s})"))),
            1 => joined(inner.clone()).prop_map(|p| p.wrap(|s| format!("\"$({s})\""))),
            1 => joined(inner.clone()).prop_map(|p| p.wrap(|s| format!("x=$( {s} )"))),
            1 => joined(inner.clone()).prop_map(|p| p.wrap(|s| format!("sh -c {}", single(s)))),
            1 => joined(inner.clone()).prop_map(|p| p.wrap(|s| format!("bash -c {}", double(s)))),
        ]
    })
}

fn no_secret_left(out: &[u8], secrets: &[String]) -> Result<(), TestCaseError> {
    for s in secrets {
        let left = out.windows(s.len()).any(|w| w == s.as_bytes());
        prop_assert!(!left, "{s:?} left in {:?}", String::from_utf8_lossy(out));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_scripts_lose_exactly_their_secrets(p in script()) {
        let mut v = vec![b"sh".to_vec(), b"-c".to_vec(), p.input.clone().into_bytes()];
        argv(&mut v);
        prop_assert_eq!(String::from_utf8_lossy(&v[2]), p.want.as_str());
        no_secret_left(&v[2], &p.secrets)?;
        // Redacting again changes nothing.
        let once = v.clone();
        prop_assert!(!argv(&mut v));
        prop_assert_eq!(&v, &once);
        // Not a script but holding blanks: at least as much is masked.
        let mut v = vec![b"ssh".to_vec(), b"h".to_vec(), p.input.clone().into_bytes()];
        argv(&mut v);
        no_secret_left(&v[2], &p.secrets)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(args in proptest::collection::vec(any::<Vec<u8>>(), 0..6)) {
        let mut v = args.clone();
        argv(&mut v);
        let once = v.clone();
        argv(&mut v);
        prop_assert_eq!(&v, &once, "redacting again changes nothing");
        let mut v = [vec![b"sh".to_vec(), b"-c".to_vec()], args].concat();
        argv(&mut v);
    }

    /// Shell syntax around words that no rule can match: nothing is masked (no bound is hit,
    /// tokenizing again always ends).
    #[test]
    fn shell_syntax_alone_is_never_masked(
        s in proptest::collection::vec(
            proptest::sample::select(b" \t\n\r'\"\\$()`;&|<>#{}ab".to_vec()),
            0..300,
        )
    ) {
        let mut v = vec![b"bash".to_vec(), b"-c".to_vec(), s.clone()];
        prop_assert!(!argv(&mut v), "{:?}", String::from_utf8_lossy(&s));
        let mut v = vec![b"ab".to_vec(), s.clone()];
        prop_assert!(!argv(&mut v), "{:?}", String::from_utf8_lossy(&s));
    }

    #[test]
    fn shell_like_bytes_never_panic(
        s in proptest::collection::vec(
            proptest::sample::select(b" \t\n'\"\\$()`;&|<>#=:-@/{}aAcp_".to_vec()),
            0..200,
        )
    ) {
        let mut v = vec![b"bash".to_vec(), b"-c".to_vec(), s.clone()];
        argv(&mut v);
        let once = v.clone();
        argv(&mut v);
        prop_assert_eq!(&v, &once, "redacting again changes nothing");
        let mut v = vec![b"mysql".to_vec(), s.clone(), s];
        argv(&mut v);
    }
}
