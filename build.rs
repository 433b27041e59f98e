//! Builds the man pages from the sources, so they cannot drift from them:
//!
//! - metalroot(8) and metalroot-<step>(8) from the clap definitions in
//!   `src/cli.rs`, `src/args.rs` and `src/kinds.rs` (the same files the
//!   binary parses its arguments with);
//! - metalroot-generator(8) from `GENERATOR` below (the generator has no
//!   clap: it takes systemd's three directories);
//! - metalroot(7), the kernel command line, from `docs/cmdline.md` through
//!   the small Markdown-to-roff converter below (headings, paragraphs,
//!   lists, code blocks, tables as tagged paragraphs: no tbl needed).
//!
//! clap_mangen is a build-dependency only: nothing of it is in the binaries.
//! Pages go to `$OUT_DIR/man` and are copied to `target/<profile>/man/`,
//! next to the binaries, where the dracut module and the mkosi build find
//! them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

// cli.rs refers to the step arguments and their value types by
// `crate::args` and `crate::kinds`: the same three files, no more.
#[allow(dead_code)]
#[path = "src/args.rs"]
mod args;
#[allow(dead_code)]
#[path = "src/cli.rs"]
mod cli;
#[allow(dead_code)]
#[path = "src/kinds.rs"]
mod kinds;

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
It logs to /dev/kmsg (journalctl -b -t metalroot-generator). It exits 0 on \
a refused command line and non-zero only when it cannot write its output. \
The parameters are described in metalroot(7).";

fn main() -> io::Result<()> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/cli.rs");
    println!("cargo:rerun-if-changed=src/args.rs");
    println!("cargo:rerun-if-changed=src/kinds.rs");
    println!("cargo:rerun-if-changed=docs/cmdline.md");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("man");
    fs::create_dir_all(&out)?;
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let source = format!("metalroot {version}");

    // metalroot(8) and one page per step.
    use clap::CommandFactory;
    let mut cmd = cli::Cli::command();
    cmd.build();
    let subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .cloned()
        .collect();
    let mut see_also: Vec<String> = vec!["metalroot(7)".into(), "metalroot-generator(8)".into()];
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
    page(
        &out,
        clap_mangen::Man::new(top).section("8").source(&source),
    )?;
    for s in subs {
        let step = s.get_name().to_string();
        let s = s
            .name(format!("metalroot-{step}"))
            .bin_name(format!("metalroot {step}"))
            .after_long_help("SEE ALSO: metalroot(8), metalroot(7)");
        page(&out, clap_mangen::Man::new(s).section("8").source(&source))?;
    }

    // metalroot-generator(8).
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
             writes run/metalroot under this directory instead of /.\n\n\
             SEE ALSO: metalroot(7), metalroot(8), systemd.generator(7), bootup(7)",
        );
    page(
        &out,
        clap_mangen::Man::new(gen).section("8").source(&source),
    )?;

    // metalroot(7).
    let md = fs::read_to_string("docs/cmdline.md")?;
    fs::write(out.join("metalroot.7"), md_to_man(&md, &source))?;

    // Next to the binaries: target/<profile>/man.
    if let Some(profile_dir) = out.ancestors().nth(4) {
        let dest = profile_dir.join("man");
        fs::create_dir_all(&dest)?;
        for e in fs::read_dir(&out)? {
            let p = e?.path();
            if let Some(name) = p.file_name() {
                fs::copy(&p, dest.join(name))?;
            }
        }
    }
    Ok(())
}

fn page(dir: &Path, man: clap_mangen::Man) -> io::Result<()> {
    let mut buf = Vec::new();
    man.render(&mut buf)?;
    fs::write(dir.join(man.get_filename()), buf)
}

/// Escapes text for roff and turns Markdown's inline marks into fonts:
/// `code` and **strong** bold, links to their text.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    let mut code = false;
    let mut strong = false;
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                code = !code;
                out.push_str(if code { "\\fB" } else { "\\fR" });
            }
            '*' if !code && chars.peek() == Some(&'*') => {
                chars.next();
                strong = !strong;
                out.push_str(if strong { "\\fB" } else { "\\fR" });
            }
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            '[' if !code => {
                // [text](target) → text
                let rest: String = chars.clone().collect();
                if let Some(close) = rest.find("](") {
                    if let Some(end) = rest[close..].find(')') {
                        out.push_str(&inline(&rest[..close]));
                        for _ in 0..close + end + 1 {
                            chars.next();
                        }
                        continue;
                    }
                }
                out.push('[');
            }
            c => out.push(c),
        }
    }
    if code || strong {
        out.push_str("\\fR");
    }
    out
}

/// A roff text line must not start with `.` or `'` (requests).
fn line(s: &str) -> String {
    let t = s.trim_start();
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t.to_string()
    }
}

fn cells(row: &str) -> Vec<String> {
    let row = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut code = false;
    for c in row.chars() {
        match c {
            '`' => {
                code = !code;
                cur.push(c);
            }
            '|' if !code => {
                out.push(cur.trim().to_string());
                cur.clear();
            }
            c => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

pub fn md_to_man(md: &str, source: &str) -> String {
    let mut out = format!(
        ".TH METALROOT 7 \"\" \"{source}\" \"metalroot\"\n.nh\n.ad l\n.SH NAME\nmetalroot \\- kernel command line parameters of metalroot\n"
    );
    let lines: Vec<&str> = md.lines().collect();
    let mut i = 0;
    let mut in_contents = false;
    while i < lines.len() {
        let l = lines[i];
        let t = l.trim();
        if let Some(h) = l.strip_prefix("# ") {
            // The title: a DESCRIPTION section follows.
            let _ = h;
            out.push_str(".SH DESCRIPTION\n");
        } else if let Some(h) = l.strip_prefix("## ") {
            in_contents = false;
            out.push_str(&format!(".SH \"{}\"\n", inline(h).to_uppercase()));
        } else if let Some(h) = l.strip_prefix("### ") {
            out.push_str(&format!(".SS \"{}\"\n", inline(h)));
        } else if t == "Contents:" {
            // The Markdown table of contents means nothing in a man page.
            in_contents = true;
        } else if in_contents
            && (t.starts_with(|c: char| c.is_ascii_digit()) || t.starts_with("- "))
        {
        } else if t.starts_with("```") {
            out.push_str(".PP\n.RS 4\n.nf\n");
            i += 1;
            while i < lines.len() && !lines[i].trim().starts_with("```") {
                out.push_str(&line(&lines[i].replace('\\', "\\e")));
                out.push('\n');
                i += 1;
            }
            out.push_str(".fi\n.RE\n");
        } else if l.starts_with("    ") && !t.is_empty() {
            out.push_str(".PP\n.RS 4\n.nf\n");
            while i < lines.len() && (lines[i].starts_with("    ") || lines[i].trim().is_empty()) {
                if lines[i].trim().is_empty()
                    && !lines.get(i + 1).is_some_and(|n| n.starts_with("    "))
                {
                    break;
                }
                out.push_str(&line(
                    &lines[i][4.min(lines[i].len())..].replace('\\', "\\e"),
                ));
                out.push('\n');
                i += 1;
            }
            out.push_str(".fi\n.RE\n");
            continue;
        } else if t.starts_with('|') {
            // A table: one tagged paragraph per row, the first cell as the
            // tag, the others as "header: value" lines.
            let header = cells(t);
            i += 1;
            if i < lines.len() && lines[i].trim().starts_with("|-")
                || lines.get(i).is_some_and(|n| n.trim().starts_with("|--"))
            {
                i += 1;
            }
            while i < lines.len() && lines[i].trim().starts_with('|') {
                let row = cells(lines[i]);
                out.push_str(".TP\n");
                out.push_str(&line(&inline(
                    row.first().map(String::as_str).unwrap_or(""),
                )));
                out.push('\n');
                for (k, v) in row.iter().enumerate().skip(1) {
                    if v.is_empty() || v == "—" {
                        continue;
                    }
                    let h = header.get(k).map(String::as_str).unwrap_or("");
                    out.push_str(&line(&format!("\\fI{}\\fR: {}", inline(h), inline(v))));
                    out.push_str("\n.br\n");
                }
                i += 1;
            }
            out.push_str(".PP\n");
            continue;
        } else if let Some(item) = t.strip_prefix("- ") {
            out.push_str(".IP \\(bu 2\n");
            out.push_str(&line(&inline(item)));
            out.push('\n');
        } else if t.is_empty() {
            out.push_str(".PP\n");
        } else if t
            .split_once(". ")
            .is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty())
        {
            let (n, rest) = t.split_once(". ").unwrap_or(("", t));
            out.push_str(&format!(".IP {n}. 4\n"));
            out.push_str(&line(&inline(rest)));
            out.push('\n');
        } else {
            out.push_str(&line(&inline(t)));
            out.push('\n');
        }
        i += 1;
    }
    out.push_str(
        ".SH \"SEE ALSO\"\nmetalroot(8), metalroot\\-generator(8), dracut.cmdline(7), bootup(7)\n",
    );
    out
}
