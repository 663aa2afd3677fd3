//! `export --format compile-commands` writes the compilation database Bear writes: the same
//! entries for the same build, built once under Bear and once under `record`.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;
use tests::harness::{record, tools};

const MAKEFILE: &str = "\
all: prog p.o two
\t@true
prog: m.c a.o
\tcc -Wall -o prog m.c a.o
a.o: a.c
\tcc -O2 -c a.c -o a.o
p.o: p.cpp
\tg++ -std=c++17 -Iinc -c p.cpp
two: x.c y.c
\tgcc -c -DTWO=1 x.c y.c && touch two
\tgcc -E a.c > /dev/null
\tgcc -MM a.c > /dev/null
clean:
\trm -f prog *.o two
";

fn entries(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn the_same_entries_as_bear() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, text) in [
        ("Makefile", MAKEFILE),
        ("a.c", "int f(void) { return 1; }\n"),
        ("m.c", "int f(void);\nint main(void) { return f(); }\n"),
        (
            "p.cpp",
            "#include <cstdio>\nint main() { std::puts(\"x\"); }\n",
        ),
        ("x.c", "int x = TWO;\n"),
        ("y.c", "int y = TWO;\n"),
    ] {
        std::fs::write(d.join(name), text).unwrap();
    }
    std::fs::create_dir(d.join("inc")).unwrap();
    let bear = Command::new("bear")
        .args(["--output", "bear.json", "--", "make", "-s"])
        .current_dir(d)
        .env_remove("LD_PRELOAD")
        .output()
        .expect("run bear (Debian: bear; .ci/run installs it)");
    assert!(
        bear.status.success(),
        "{}",
        String::from_utf8_lossy(&bear.stderr)
    );
    let want: Value = serde_json::from_slice(&std::fs::read(d.join("bear.json")).unwrap()).unwrap();
    assert!(Command::new("make")
        .args(["-s", "clean"])
        .current_dir(d)
        .status()
        .unwrap()
        .success());

    let r = record(d, &["make", "-s"]);
    assert!(r.out.status.success(), "{}", r.dump());
    let trace = d.join("t.jsonl");
    let lines: Vec<String> = r.lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(&trace, lines.join("\n") + "\n").unwrap();
    let out = Command::new(&tools().drain)
        .args(["export", "--format", "compile-commands", "-o"])
        .arg(d.join("cc.json"))
        .arg(&trace)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&std::fs::read(d.join("cc.json")).unwrap()).unwrap();
    assert_eq!(
        entries(&got),
        entries(&want),
        "ours:\n{got:#}\nBear's:\n{want:#}"
    );
    assert_eq!(
        want.as_array().unwrap().len(),
        5,
        "the build has five compilations"
    );
}
