//! Behaviour of [`argv`](super::argv) on the defects that were reported and on the edges of the
//! tokenizer; the corpus of secret forms and the property tests are in `drain/tests/redaction.rs`.

use super::*;

fn red(a: &[&str]) -> Vec<String> {
    let mut v: Vec<Vec<u8>> = a.iter().map(|s| s.as_bytes().to_vec()).collect();
    argv(&mut v);
    v.into_iter()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

fn script(s: &str) -> String {
    red(&["sh", "-c", s]).swap_remove(2)
}

#[test]
fn reported_defects() {
    assert_eq!(
        script("true --token=abc123 https://u:pw@h/x; true"),
        "true --token=[REDACTED] https://u:[REDACTED]@h/x; true"
    );
    assert_eq!(script("MY_TOKEN=x; ls"), "MY_TOKEN=[REDACTED]; ls");
    assert_eq!(
        script("curl -H 'Authorization: Bearer zz' x"),
        "curl -H 'Authorization: Bearer [REDACTED]' x"
    );
    assert_eq!(script("x --token=abc; true"), "x --token=[REDACTED]; true");
    assert_eq!(script("--token=abc; true"), "--token=[REDACTED]; true");
}

#[test]
fn plain_argv_is_as_before() {
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
}

#[test]
fn a_flag_and_its_value_in_separate_words_of_a_script() {
    assert_eq!(
        script("gh --token 'a b' repo && x --password \"p\"|y"),
        "gh --token '[REDACTED]' repo && x --password \"[REDACTED]\"|y"
    );
    assert_eq!(script("x --token"), "x --token");
    assert_eq!(script("x --token; y z"), "x --token; y z");
    assert_eq!(script("x --token --verbose"), "x --token --verbose");
}

#[test]
fn quotes_are_kept_around_and_between_masked_bytes() {
    assert_eq!(script("x --token=\"ab\"'cd'"), "x --token=\"[REDACTED]\"''");
    assert_eq!(script("x \"--token=a\\\"b\""), "x \"--token=[REDACTED]\"");
    assert_eq!(script("x --token=ab\\ cd y"), "x --token=[REDACTED] y");
    assert_eq!(script("x $'--token=a\\'b' y"), "x $'--token=[REDACTED]' y");
}

#[test]
fn expansions_are_not_secrets_but_what_they_run_is() {
    assert_eq!(
        script("curl -H \"Authorization: Bearer $TOKEN\" --token \"$T\" u"),
        "curl -H \"Authorization: Bearer $TOKEN\" --token \"$T\" u"
    );
    assert_eq!(script("x --token=${T:-d}"), "x --token=${T:-d}");
    assert_eq!(
        script("v=$(vault read --token=s3 x) ; y=`z --password p`"),
        "v=$(vault read --token=[REDACTED] x) ; y=`z --password [REDACTED]`"
    );
    assert_eq!(script("x --token=ab$T"), "x --token=[REDACTED]");
    assert_eq!(
        script("echo \"$(curl -u me:pw h)\""),
        "echo \"$(curl -u me:[REDACTED] h)\""
    );
}

#[test]
fn nested_shells_and_prefixes() {
    assert_eq!(
        red(&[
            "sudo",
            "-u",
            "me",
            "bash",
            "-ec",
            "env A_KEY=k sh -c 'x --token t'"
        ]),
        [
            "sudo",
            "-u",
            "me",
            "bash",
            "-ec",
            "env A_KEY=[REDACTED] sh -c 'x --token [REDACTED]'"
        ]
    );
    assert_eq!(
        script("bash -o pipefail -c \"mysql -uroot -pS3 db | gzip\""),
        "bash -o pipefail -c \"mysql -uroot -p[REDACTED] db | gzip\""
    );
    assert_eq!(
        red(&["su", "-", "pg", "-c", "PGPASSWORD=p psql"]),
        ["su", "-", "pg", "-c", "PGPASSWORD=[REDACTED] psql"]
    );
    assert_eq!(
        script("export GH_TOKEN=t && FOO_SECRET=s make X_PASSWORD=p"),
        "export GH_TOKEN=[REDACTED] && FOO_SECRET=[REDACTED] make X_PASSWORD=[REDACTED]"
    );
}

#[test]
fn other_arguments_with_blanks_get_the_word_rules() {
    assert_eq!(
        red(&["ssh", "h", "cmd --password=x; ls"]),
        ["ssh", "h", "cmd --password=[REDACTED]; ls"]
    );
    assert_eq!(
        red(&[
            "python3",
            "-c",
            "import os; os.system(\"curl --token abc u\")"
        ]),
        [
            "python3",
            "-c",
            "import os; os.system(\"curl --token [REDACTED] u\")"
        ]
    );
    // Conservative: as a whole, the value of an assignment runs to the end of the argument.
    assert_eq!(
        red(&["ssh", "h", "MY_TOKEN=x; ls"]),
        ["ssh", "h", "MY_TOKEN=[REDACTED]"]
    );
}

#[test]
fn headers_as_words_of_their_own() {
    assert_eq!(
        script("curl -H Authorization: Bearer abc u"),
        "curl -H Authorization: Bearer [REDACTED] u"
    );
    assert_eq!(
        red(&["x", "Cookie:", "a=1;", "b"]),
        ["x", "Cookie:", "a=[REDACTED];", "b"]
    );
    assert_eq!(
        script("wget --header=Authorization: Basic abc -HX-Api-Key: k u"),
        "wget --header=Authorization: Basic [REDACTED] -HX-Api-Key: [REDACTED] u"
    );
}

#[test]
fn heredocs_comments_and_redirections() {
    assert_eq!(
        script("cat <<EOF >f\nuser: me\nMY_TOKEN=t\nEOF\nx --token=t # --secret s\n"),
        "cat <<EOF >f\nuser: me\nMY_TOKEN=[REDACTED]\nEOF\nx --token=[REDACTED] # --secret [REDACTED]\n"
    );
    assert_eq!(
        script("x <<<'--password=p' 2>&1 >/dev/null"),
        "x <<<'--password=[REDACTED]' 2>&1 >/dev/null"
    );
}

#[test]
fn unbalanced_input_is_redacted_conservatively() {
    assert_eq!(script("x 'it --token abc"), "x 'it --token [REDACTED]");
    assert_eq!(script("don't --token abc"), "don't --token [REDACTED]");
    assert_eq!(script("x \"$(y --token abc"), "x \"$(y --token [REDACTED]");
    assert_eq!(script("'"), "'");
    assert_eq!(script("\""), "\"");
    assert_eq!(script(""), "");
}

#[test]
fn carriage_returns_end_words() {
    assert_eq!(
        script("x --token abc\r\ny\r\n"),
        "x --token [REDACTED]\r\ny\r\n"
    );
    assert_eq!(script("echo 'a\rb' c\r"), "echo 'a\rb' c\r");
}

#[test]
fn non_utf8_bytes_are_kept() {
    let mut v = vec![
        b"sh".to_vec(),
        b"-c".to_vec(),
        b"x\xff --token=\xfe\xfd y\x80".to_vec(),
    ];
    assert!(argv(&mut v));
    assert_eq!(v[2], b"x\xff --token=[REDACTED] y\x80");
    let mut v = vec![b"\xff\xfe".to_vec(), b"\x80=\x81".to_vec()];
    assert!(!argv(&mut v));
    assert_eq!(v, [b"\xff\xfe".to_vec(), b"\x80=\x81".to_vec()]);
}

#[test]
fn deep_nesting_is_masked_whole_past_the_bound() {
    let deep = format!("{}--token t{}", "$(".repeat(40), ")".repeat(40));
    let out = script(&deep);
    assert!(!out.contains(" t"), "{out}");
    let quoted = format!("x {}", "\"$(".repeat(5000));
    let _ = script(&quoted);
}

#[test]
fn already_masked_input_is_not_changed() {
    let mut v = vec![b"--token=[REDACTED]".to_vec()];
    assert!(!argv(&mut v));
    for s in [
        "Authorization: token [REDACTED]",
        "x --token=\"[REDACTED]\"'' && curl -d '{\"token\": \"[REDACTED]\"}'",
        "echo ghp_[REDACTED] sk-[REDACTED] [REDACTED]",
    ] {
        assert_eq!(script(s), s);
    }
}
