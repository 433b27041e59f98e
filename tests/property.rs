//! Property test of the parser on stable Rust (the cargo-fuzz target in
//! tests/fuzz covers the same ground with coverage guidance): for any command
//! line built from real and mangled parameters, the core never panics, a
//! refused line yields only the failing unit (nothing destructive), its
//! message names a parameter, secrets (the SEKRIT markers) never reach a unit, and every step it
//! plans parses with the real CLI.

use clap::Parser;
use metalroot::cli::Cli;
use metalroot::units::Entry;
use proptest::prelude::*;

/// Every parameter metalroot knows (from its one table), a typo and a word
/// it does not know.
fn keys() -> Vec<&'static str> {
    let mut k: Vec<&'static str> = metalroot::params::names().collect();
    k.extend(["metal.typo", "quiet"]);
    k
}

const VALUES: &[&str] = &[
    "",
    "0",
    "1",
    "yes",
    "two",
    "-1",
    "99999999999999999999",
    "mirror",
    "raid6",
    "stripe",
    "http://10.0.2.2:8080/",
    "https://u:SEKRIT2@h/x",
    "file://?LABEL=SQFSRAID",
    "ftp://x/",
    "live:LABEL=SQFSRAID",
    "live:http://h/i.img",
    "live:UUID=",
    "iscsi:1.2.3.4::::iqn.a:b",
    "iscsi:u:SEKRIT2@[::1]:6:3260:1:iqn.a:b",
    "iscsi",
    "iscsi:",
    "iscsi:[::1",
    "LABEL=ROOTRAID",
    "/dev/sdb:/persist.img",
    "/dev/sdb:/../x",
    "none",
    "copy",
    "overlay",
    "zram",
    "4G",
    "50%",
    "serial:S1,wwn:0x5",
    "cred:key",
    "https://k/key",
    "pw",
    "ibft",
    "default",
    "node.session.x=1",
    "\"quoted value\"",
    "a%b$c",
    "=",
    "💥",
];

fn word() -> impl Strategy<Value = String> {
    (
        prop::sample::select(keys()),
        prop::option::of(prop_oneof![
            prop::sample::select(VALUES).prop_map(str::to_string),
            "[ -~]{0,12}",
        ]),
    )
        .prop_map(|(k, v)| match v {
            // A secret parameter always carries the marker, so any leak shows.
            Some(_) if metalroot::params::is_secret_key(k) => format!("{k}=SEKRIT1"),
            Some(v) => format!("{k}={v}"),
            None => k.to_string(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn core_is_total_and_safe(words in prop::collection::vec(word(), 0..8), noise in "[ -~]{0,20}") {
        let line = format!("{} {noise}", words.join(" "));
        let g = metalroot::core::generate(None, &line);
        for e in &g.entries {
            if let Entry::File { contents, .. } = e {
                prop_assert!(!contents.contains("SEKRIT"), "secret in unit for {line:?}");
            }
        }
        match &g.error {
            Some(err) => {
                prop_assert!(!err.param.is_empty());
                prop_assert!(g.entries.iter().all(|e| e.path().contains("metalroot-cmdline-error")));
                prop_assert!(g.secrets.is_empty());
            }
            None => {
                if let Ok(Some(plan)) = metalroot::core::plan(None, &line) {
                    for st in &plan.steps {
                        prop_assert!(Cli::try_parse_from(&st.argv).is_ok(), "{:?}", st.argv);
                    }
                }
            }
        }
    }
}
