//! The one helper that runs external tools (mdadm, lvm, wipefs, sgdisk, …).
//! Its error carries the whole command line and the tool's stderr, so one
//! `journalctl -u` line tells what failed and why.

use anyhow::{bail, Context, Result};
use std::process::{Command, Stdio};

/// A tool as every step runs it: no input, and no reporting to systemd
/// (NotifyAccess=main: only the step itself does).
fn command<S: AsRef<std::ffi::OsStr>>(prog: &S, args: &[S]) -> Command {
    let mut c = Command::new(prog);
    c.args(args)
        .stdin(Stdio::null())
        .env_remove("NOTIFY_SOCKET");
    c
}

/// Runs `argv`, returns stdout. Fails with the command and stderr.
pub fn run(argv: &[&str]) -> Result<String> {
    let (prog, args) = argv.split_first().context("empty command")?;
    tracing::debug!("running: {}", argv.join(" "));
    let out = command(prog, args)
        .output()
        .with_context(|| format!("cannot start `{}`", argv.join(" ")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            argv.join(" "),
            out.status,
            stderr.trim()
        );
    }
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        if line.starts_with(&format!("{prog}:")) {
            tracing::info!("{line}");
        } else {
            tracing::info!("{prog}: {line}");
        }
    }
    Ok(stdout)
}

/// Runs a long tool whose own progress lines belong in the journal (its
/// stdout and stderr are the step's); fails with the command and status.
pub fn run_logged(argv: &[String]) -> Result<()> {
    let (prog, args) = argv.split_first().context("empty command")?;
    tracing::info!("running: {}", argv.join(" "));
    let status = command(prog, args)
        .status()
        .with_context(|| format!("cannot start `{}`", argv.join(" ")))?;
    if !status.success() {
        bail!("`{}` failed ({status})", argv.join(" "));
    }
    Ok(())
}

/// Like `run` with owned strings.
pub fn run_s(argv: &[String]) -> Result<String> {
    let v: Vec<&str> = argv.iter().map(String::as_str).collect();
    run(&v)
}

/// Runs a tool whose failure is expected in normal operation (partprobe on a
/// blank disk, assembling when there is nothing to assemble); logs it at
/// info level, since it is still the first thing to read when a boot goes
/// wrong.
pub fn run_ok(argv: &[&str]) -> bool {
    match run(argv) {
        Ok(_) => true,
        Err(e) => {
            tracing::info!("(not fatal) {e:#}");
            false
        }
    }
}

/// Waits for udev to process pending events (after any partition change).
pub fn settle() {
    run_ok(&["udevadm", "settle", "--timeout=60"]);
}

/// Parses `KEY=VALUE` lines (mdadm --export, udevadm info, blkid -o export).
pub fn key_values(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_carries_command_and_stderr() {
        let e = run(&["sh", "-c", "echo boom >&2; exit 3"]).unwrap_err();
        let s = format!("{e:#}");
        assert!(s.contains("sh -c"), "{s}");
        assert!(s.contains("boom"), "{s}");
    }

    #[test]
    fn key_values_parse() {
        let kv = key_values("MD_LEVEL=raid1\nMD_DEVICES=2\n");
        assert_eq!(kv[1], ("MD_DEVICES".into(), "2".into()));
    }
}
