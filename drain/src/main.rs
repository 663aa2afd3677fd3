//! `substrate-drain`: decodes session rings into `trace.jsonl` (issue 4; not written yet).

fn main() {
    eprintln!("substrate-drain: not implemented yet; the session ring it reads is in the `format` crate (see README.md, Status)");
    std::process::exit(2);
}
