//! Golden tests, one directory per case under tests/golden/: `cmdline` and an
//! optional `etc/metalroot.conf` are the inputs; `expected/` is the unit tree
//! the generator must write and `expected-secrets` lists the secret files.
//! `UPDATE_GOLDEN=1 cargo test --test golden` rewrites the expectations.
//!
//! Every case also checks: each unit passes `systemd-analyze verify`, each
//! ExecStart parses with the real `metalroot` CLI, no value of a `s3cr3t`
//! parameter appears in any unit, and a refused command line yields no
//! destructive unit.

#[path = "common/verify.rs"]
mod common;

use clap::Parser;
use metalroot::cli::Cli;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut v: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("tests/golden exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("cmdline").exists())
        .collect();
    v.sort();
    v
}

/// The plan of every case that plans (not refused, asks for metalroot).
fn plans() -> Vec<(PathBuf, metalroot::plan::Plan)> {
    let mut out = Vec::new();
    for case in cases() {
        let line = fs::read_to_string(case.join("cmdline")).expect("cmdline");
        let site = fs::read_to_string(case.join("etc/metalroot.conf")).ok();
        if let Ok(Some(plan)) = metalroot::core::plan(site.as_deref(), &line) {
            out.push((case, plan));
        }
    }
    out
}

/// The tree as path → "file:<contents>" or "link:<target>".
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("readable dir") {
            let p = e.expect("entry").path();
            let rel = p.strip_prefix(dir).expect("prefix").display().to_string();
            let meta = fs::symlink_metadata(&p).expect("metadata");
            if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    format!("link:{}", fs::read_link(&p).expect("link").display()),
                );
            } else if meta.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    rel,
                    format!("file:{}", fs::read_to_string(&p).expect("utf8")),
                );
            }
        }
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for (rel, v) in tree(from) {
        let p = to.join(&rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        if let Some(target) = v.strip_prefix("link:") {
            std::os::unix::fs::symlink(target, &p).expect("symlink");
        } else {
            fs::write(&p, &v["file:".len()..]).expect("write");
        }
    }
}

/// Runs the real generator code against a fake root for one case.
fn generate(case: &Path) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    let out = tmp.path().join("out");
    fs::create_dir_all(root.join("proc")).expect("mkdir");
    fs::create_dir_all(&out).expect("mkdir");
    fs::copy(case.join("cmdline"), root.join("proc/cmdline")).expect("copy cmdline");
    if case.join("etc").exists() {
        copy_tree(&case.join("etc"), &root.join("etc"));
    }
    let mut log = metalroot::generator::Kmsg::open(&root);
    metalroot::generator::run(&root, &out, &mut log).expect("generator runs");
    (tmp, root, out)
}

fn secrets_listing(root: &Path) -> String {
    let dir = root.join("run/metalroot/secrets");
    let mut lines = Vec::new();
    if dir.exists() {
        let mode = fs::metadata(&dir).expect("meta").permissions().mode() & 0o777;
        lines.push(format!("run/metalroot/secrets/ {mode:o}"));
        for (rel, _) in tree(&dir) {
            let m = fs::metadata(dir.join(&rel))
                .expect("meta")
                .permissions()
                .mode()
                & 0o777;
            lines.push(format!("run/metalroot/secrets/{rel} {m:o}"));
        }
    }
    lines.sort();
    lines.join("\n") + "\n"
}

#[test]
fn golden_cases() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for case in cases() {
        let name = case
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let (_tmp, root, out) = generate(&case);
        let got = tree(&out);
        let got_secrets = secrets_listing(&root);
        if update {
            let _ = fs::remove_dir_all(case.join("expected"));
            copy_tree(&out, &case.join("expected"));
            fs::write(case.join("expected-secrets"), &got_secrets).expect("write");
            continue;
        }
        let want = tree(&case.join("expected"));
        if got != want {
            let mut diff = String::new();
            for k in got.keys().chain(want.keys()) {
                if got.get(k) != want.get(k) {
                    diff.push_str(&format!(
                        "--- {k}\nwant: {:?}\n got: {:?}\n",
                        want.get(k),
                        got.get(k)
                    ));
                }
            }
            failures.push(format!("{name}: unit tree differs\n{diff}"));
        }
        let want_secrets =
            fs::read_to_string(case.join("expected-secrets")).unwrap_or_else(|_| "\n".into());
        if got_secrets != want_secrets {
            failures.push(format!("{name}: secrets differ:\n{got_secrets}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn no_secret_in_any_unit_and_secrets_are_private() {
    for case in cases() {
        let (_tmp, root, out) = generate(&case);
        for (rel, v) in tree(&out) {
            assert!(
                !v.contains("s3cr3t"),
                "{}: {rel} holds a secret",
                case.display()
            );
        }
        let cmdline = fs::read_to_string(case.join("cmdline")).expect("cmdline");
        let dir = root.join("run/metalroot/secrets");
        if dir.exists() {
            let all: String = tree(&dir).into_values().collect();
            for word in cmdline.split_whitespace().filter(|w| w.contains("s3cr3t")) {
                let secret = word.rsplit(['=', ':', '@']).find(|p| p.contains("s3cr3t"));
                let secret = secret.expect("secret part");
                if !case.to_string_lossy().contains("bad") {
                    assert!(
                        all.contains(secret),
                        "{}: {secret} not in secrets",
                        case.display()
                    );
                }
            }
        }
    }
}

#[test]
fn every_exec_start_parses_with_the_real_cli() {
    for (case, plan) in plans() {
        for st in &plan.steps {
            if let Err(e) = Cli::try_parse_from(&st.argv) {
                panic!("{}: {} does not parse: {e}", case.display(), st.name);
            }
        }
    }
}

#[test]
fn refused_command_lines_write_only_the_failing_unit() {
    for case in cases()
        .into_iter()
        .filter(|c| c.to_string_lossy().contains("bad"))
    {
        let (_tmp, _root, out) = generate(&case);
        let files: Vec<String> = tree(&out).into_keys().collect();
        assert!(
            files.iter().all(|f| f.contains("metalroot-cmdline-error")),
            "{}: {files:?}",
            case.display()
        );
        assert!(files.iter().any(|f| f == "metalroot-cmdline-error.service"));
    }
}

#[test]
fn units_pass_systemd_analyze_verify() {
    for case in cases() {
        let (_tmp, _root, out) = generate(&case);
        let units: Vec<(String, String)> = tree(&out)
            .into_iter()
            .filter(|(k, v)| k.ends_with(".service") && v.starts_with("file:"))
            .map(|(k, v)| (k, v["file:".len()..].to_string()))
            .collect();
        if units.is_empty() {
            continue;
        }
        if let Err(e) = common::verify(&units, metalroot::plan::BIN) {
            panic!("{}: systemd-analyze verify failed:\n{e}", case.display());
        }
    }
}

/// The seam between plan and steps: for every golden plan, each step's
/// typed arguments survive `to_argv` and the real parser unchanged, and the
/// unit's argv is exactly `to_argv` (plus the global `--debug`).
#[test]
fn step_arguments_round_trip_through_argv() {
    for (case, plan) in plans() {
        for st in &plan.steps {
            let argv = st.cmd.to_argv();
            let back = Cli::try_parse_ordered(&argv)
                .unwrap_or_else(|e| panic!("{}: {}: {e}", case.display(), st.name));
            assert_eq!(back.cmd, st.cmd, "{}: {}", case.display(), st.name);
            let unit: Vec<&String> = st.argv.iter().filter(|a| *a != "--debug").collect();
            assert_eq!(
                unit,
                argv.iter().collect::<Vec<_>>(),
                "{}: {}",
                case.display(),
                st.name
            );
        }
    }
}
