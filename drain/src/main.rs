//! `substrate-drain` (issue 4).
fn main() {}
