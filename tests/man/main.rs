//! The man pages in docs/man/ come from the sources, so they cannot drift
//! from them:
//!
//! - metalroot(8) and metalroot-<step>(8) from the clap definitions the
//!   binary parses its arguments with (`metalroot::cli::Cli`);
//! - metalroot-generator(8) from `GENERATOR` below (the generator has no
//!   clap: it takes systemd's three directories);
//! - metalroot(7), the kernel command line, from docs/cmdline.md through
//!   the converter in roff.rs.
//!
//! They are checked in so that packages and initrd builds take plain files.
//! This test renders them and fails on any difference;
//! `METALROOT_UPDATE_MAN=1 cargo test --test man` rewrites them.

mod roff;

use clap::CommandFactory;
use metalroot::cli::Cli;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

const GENERATOR: &str = "\
metalroot-generator is a systemd generator (systemd.generator(7)) run early \
in the initrd. It reads the kernel command line (/proc/cmdline, or \
$SYSTEMD_PROC_CMDLINE as systemd's own generators do) and the optional site \
file /etc/metalroot.conf, and writes oneshot .service units that each run \
one step of metalroot(8) with explicit arguments, with their \
initrd-root-fs.target and initrd.target links, into NORMAL_DIR. Secrets \
(CHAP passwords, URLs with passwords, LUKS key URLs) go to 0600 files under \
/run/metalroot/secrets; the plan, as `metalroot plan` prints it, goes to \
/run/metalroot/plan.txt for `metalroot status`.\n\n\
When the command line does not ask for metalroot it writes nothing. A \
command line metalroot cannot use yields exactly one unit, \
metalroot-cmdline-error.service, which fails with the message and stops the \
boot in the emergency shell; nothing destructive is written.\n\n\
It is metalroot(8) itself, run under this name: the package installs \
/usr/lib/systemd/system-generators/metalroot-generator as a symlink to \
/usr/bin/metalroot, which acts as the generator when its argv[0] ends in \
metalroot-generator.\n\n\
It logs to /dev/kmsg (journalctl -b -t metalroot-generator). It exits 0 on \
a refused command line. When it fails itself (an I/O error, an internal \
error, missing arguments) it logs the cause at error priority, so the \
console shows it, and writes the same failing \
metalroot-cmdline-error.service in place of the plan (removing any unit it \
had written), so the boot stops in the emergency shell where systemctl \
status and metalroot status name the cause; then it exits non-zero. \
The parameters are described in metalroot(7).";

fn render(man: clap_mangen::Man) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    man.render(&mut buf).expect("render");
    (man.get_filename(), buf)
}

/// Every page, by file name.
fn pages() -> BTreeMap<String, Vec<u8>> {
    let source = format!("metalroot {}", env!("CARGO_PKG_VERSION"));
    let mut out = BTreeMap::new();
    let mut cmd = Cli::command();
    cmd.build();
    let subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .cloned()
        .collect();
    let mut see_also = vec!["metalroot(7)".to_string(), "metalroot-generator(8)".into()];
    see_also.extend(
        subs.iter()
            .map(|s| format!("metalroot-{}(8)", s.get_name())),
    );
    let top = cmd.clone().after_long_help(format!(
        "Each step has its own page. Units run `metalroot STEP ARGS`; `systemctl cat \
         metalroot-STEP.service` shows the arguments. In the emergency shell, \
         `metalroot status` shows every metalroot unit, its last status and error, \
         and the plan.\n\nSEE ALSO: {}",
        see_also.join(", ")
    ));
    out.extend([render(
        clap_mangen::Man::new(top).section("8").source(&source),
    )]);
    for s in subs {
        let step = s.get_name().to_string();
        let s = s
            .name(format!("metalroot-{step}"))
            .bin_name(format!("metalroot {step}"))
            .after_long_help("SEE ALSO: metalroot(8), metalroot(7)");
        out.extend([render(
            clap_mangen::Man::new(s).section("8").source(&source),
        )]);
    }
    let gen = clap::Command::new("metalroot-generator")
        .about("systemd generator: the kernel command line to metalroot's units")
        .long_about(GENERATOR)
        .arg(
            clap::Arg::new("NORMAL_DIR")
                .required(true)
                .help("where the units go"),
        )
        .arg(clap::Arg::new("EARLY_DIR").help("ignored"))
        .arg(clap::Arg::new("LATE_DIR").help("ignored"))
        .after_long_help(
            "ENVIRONMENT: SYSTEMD_PROC_CMDLINE replaces /proc/cmdline; \
             METALROOT_GENERATOR_ROOT (tests) reads proc/cmdline, etc/metalroot.conf and \
             writes run/metalroot under this directory instead of /; \
             METALROOT_GENERATOR_TEST_PANIC (tests) makes it panic after reading its input, \
             to exercise its failure path.\n\n\
             SEE ALSO: metalroot(7), metalroot(8), systemd.generator(7), bootup(7)",
        );
    out.extend([render(
        clap_mangen::Man::new(gen).section("8").source(&source),
    )]);
    let md = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cmdline.md"))
        .expect("docs/cmdline.md");
    out.insert(
        "metalroot.7".into(),
        roff::md_to_man(&md, &source).into_bytes(),
    );
    out
}

#[test]
fn man_pages_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/man");
    let want = pages();
    if std::env::var_os("METALROOT_UPDATE_MAN").is_some() {
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("docs/man");
        for (name, body) in &want {
            fs::write(dir.join(name), body).expect("write page");
        }
    }
    let mut have = BTreeMap::new();
    for e in fs::read_dir(&dir).expect("docs/man") {
        let p = e.expect("entry").path();
        let name = p.file_name().expect("name").to_string_lossy().into_owned();
        have.insert(name, fs::read(&p).expect("read page"));
    }
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&have),
        names(&want),
        "docs/man/ does not hold exactly the pages: run METALROOT_UPDATE_MAN=1 cargo test --test man"
    );
    for (name, body) in &want {
        assert!(
            have[name] == *body,
            "docs/man/{name} is stale: run METALROOT_UPDATE_MAN=1 cargo test --test man"
        );
    }
}
