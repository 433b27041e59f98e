//! docs/cmdline.md and the parameter table agree: every parameter metalroot
//! reads is documented in a `| parameter | default |` table, and every parameter those
//! tables document is one metalroot reads.

use std::collections::BTreeSet;

/// The parameter names in the first column of the reference's parameter
/// tables: `` `name=<value>` ``, `` `a` / `b` ``, and the short forms
/// `` `x.username` / `.password` `` (the same number of trailing parts).
fn documented() -> BTreeSet<String> {
    let md = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cmdline.md"))
        .expect("docs/cmdline.md");
    let mut out = BTreeSet::new();
    let mut in_table = false;
    for line in md.lines() {
        let t = line.trim();
        if !t.starts_with('|') {
            in_table = false;
            continue;
        }
        let mut cells = t.trim_start_matches('|').split('|').map(str::trim);
        let first = cells.next().unwrap_or("");
        if first == "parameter" {
            // The reference tables (parameter, default, …), not section 10's
            // "parameter | why" list of what is accepted and ignored.
            in_table = cells.next() == Some("default");
            continue;
        }
        if !in_table || first.starts_with("---") {
            continue;
        }
        let mut prev = String::new();
        for (i, code) in first.split('`').enumerate() {
            if i % 2 == 0 || code.is_empty() {
                continue;
            }
            let name = code.split(['=', '[']).next().unwrap_or("");
            let name = if name.starts_with('.') {
                let parts = name.matches('.').count();
                let base: Vec<&str> = prev.split('.').collect();
                let keep = base.len().saturating_sub(parts);
                format!("{}{name}", base[..keep].join("."))
            } else {
                name.to_string()
            };
            prev = name.clone();
            out.insert(name);
        }
    }
    out
}

#[test]
fn every_parameter_is_documented_and_every_documented_one_exists() {
    let known: BTreeSet<String> = metalroot::params::names().map(str::to_string).collect();
    let docs = documented();
    let undocumented: Vec<&String> = known.difference(&docs).collect();
    let unknown: Vec<&String> = docs.difference(&known).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "not in docs/cmdline.md: {undocumented:?}; documented but not read: {unknown:?}"
    );
}
