//! The preload's modules are layered one way: a module uses only modules of lower layers. The
//! layer table is the one in `src/lib.rs`'s module docs ("# Layout"); this test reads it, then
//! every `src/*.rs` and `src/hooks/*.rs`, and fails on a reference to a module of the same layer
//! or a higher one, on a source file missing from the table, and on a row naming no file.
//!
//! References are the paths `crate::a`, `$crate::a`, `crate::{a, b::{…}}`, `crate::hooks::x`,
//! and in `src/hooks/` `super::x`, outside `//` comments (doc links are not dependencies).

use std::collections::BTreeMap;
use std::path::Path;

/// Module → layer, from the rows `//! | <layer> | `a`, `b` | …` of `src/lib.rs`.
fn layer_table(lib: &str) -> BTreeMap<String, usize> {
    let mut table = BTreeMap::new();
    for line in lib.lines() {
        let Some(row) = line.strip_prefix("//! |") else {
            continue;
        };
        let mut cells = row.split('|');
        let Some(Ok(layer)) = cells.next().map(|c| c.trim().parse::<usize>()) else {
            continue; // the header row and its rule
        };
        for name in cells.next().unwrap_or("").split(',') {
            let name = name.trim().trim_matches('`').to_string();
            assert!(!name.is_empty(), "empty module name in layer {layer}");
            assert!(
                table.insert(name.clone(), layer).is_none(),
                "{name} appears twice in the layer table"
            );
        }
    }
    table
}

/// `line` without its `//` comment (a `//` inside a string literal is kept).
fn code_of(line: &str) -> &str {
    let mut in_str = false;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '"' if prev != '\\' => in_str = !in_str,
            '/' if !in_str && prev == '/' => return &line[..i - 1],
            _ => {}
        }
        prev = if prev == '\\' && c == '\\' { ' ' } else { c };
    }
    line
}

/// The identifier at the start of `s`.
fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The module a path below the crate root names: its first segment, or `hooks::x` for a path
/// into a hooks file. `None` for a name that is no module of the table (an item, `self`, `*`).
fn module_of(path: &str, table: &BTreeMap<String, usize>) -> Option<String> {
    let first = ident(path.trim_start());
    if first == "hooks" {
        let rest = path.trim_start()[first.len()..].trim_start();
        if let Some(sub) = rest.strip_prefix("::") {
            let m = format!("hooks::{}", ident(sub.trim_start()));
            if table.contains_key(&m) {
                return Some(m);
            }
        }
    }
    table.contains_key(first).then(|| first.to_string())
}

/// The paths following a `crate::` at the start of `s`: one, or the items of a `{…}` group.
fn paths_at(s: &str) -> Vec<&str> {
    let s = s.trim_start();
    let Some(group) = s.strip_prefix('{') else {
        return vec![s];
    };
    let (mut depth, mut start, mut out) = (0usize, 0, vec![]);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                out.push(&group[start..i]);
                return out;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out
}

/// The modules of the table that the source of module `me` refers to.
fn references(me: &str, source: &str, table: &BTreeMap<String, usize>) -> Vec<String> {
    let code: String = source.lines().map(code_of).collect::<Vec<_>>().join("\n");
    let mut found = vec![];
    for (prefix, under) in [("crate::", ""), ("super::", "hooks::")] {
        if prefix == "super::" && !me.starts_with("hooks::") {
            continue; // outside hooks/, `super::` is only a test module's parent: itself
        }
        for (i, _) in code.match_indices(prefix) {
            let before = code[..i].chars().next_back().unwrap_or(' ');
            if before.is_ascii_alphanumeric() || before == '_' {
                continue; // part of a longer name
            }
            for path in paths_at(&code[i + prefix.len()..]) {
                let path = format!("{under}{}", path.trim_start());
                match module_of(&path, table) {
                    // `super::` names a sibling in hooks/, or an item of a test module's parent.
                    Some(m) if under.is_empty() || m != "hooks" => found.push(m),
                    _ => {}
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn modules_use_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let table = layer_table(&lib);
    assert!(table.len() > 10, "layer table not found in src/lib.rs");

    let mut files = vec![];
    for (dir, prefix) in [(src.clone(), ""), (src.join("hooks"), "hooks::")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if path.extension().and_then(|e| e.to_str()) != Some("rs") || stem == "lib" {
                continue;
            }
            let module = match (prefix, stem) {
                ("hooks::", "mod") => "hooks".to_string(),
                _ => format!("{prefix}{stem}"),
            };
            files.push((module, path));
        }
    }
    files.sort();

    let mut problems = vec![];
    for (module, _) in &files {
        if !table.contains_key(module) {
            problems.push(format!("{module}: not in the layer table of src/lib.rs"));
        }
    }
    for name in table.keys() {
        if !files.iter().any(|(m, _)| m == name) {
            problems.push(format!("{name}: in the layer table, but no such file"));
        }
    }
    for (module, path) in &files {
        let Some(&layer) = table.get(module) else {
            continue;
        };
        let source = std::fs::read_to_string(path).unwrap();
        for used in references(module, &source, &table) {
            let used_layer = table[&used];
            if used != *module && used_layer >= layer {
                problems.push(format!(
                    "{module} (layer {layer}) uses {used} (layer {used_layer})"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the module layering of src/lib.rs (# Layout) is broken:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn references_are_found_in_every_form() {
    let table: BTreeMap<String, usize> = [
        "a", "b", "c", "d", "e", "f", "g", "hooks", "hooks::x", "hooks::y",
    ]
    .iter()
    .map(|m| (m.to_string(), 0))
    .collect();
    let source = r#"
use crate::{a, b::{self, Item}, hooks::x};
use crate::c::Thing; // crate::z in a comment
/// A doc link to [`crate::z`].
let v = crate::d::f(); let w = $crate::e::g("// not a comment"); crate::f::h();
use crate::{
    g,
    hooks,
};
use super::y::Item;
use super::*;
notcrate::a::b();
"#;
    assert_eq!(
        references("hooks::w", source, &table),
        ["a", "b", "c", "d", "e", "f", "g", "hooks", "hooks::x", "hooks::y"]
    );
    // Outside hooks/, `super::` is a test module's parent, the module itself.
    assert!(!references("a", "use super::y;", &table).contains(&"hooks::y".to_string()));
}
