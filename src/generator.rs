//! The systemd generator: reads the command line, writes what the pure core
//! returns. The only place that reads the kernel command line.

use crate::core::{generate, Generated};
use crate::units::Entry;
use anyhow::{Context, Result};
use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// Logs to /dev/kmsg: a generator runs before journald.
pub struct Kmsg {
    file: Option<fs::File>,
}

impl Kmsg {
    pub fn open(root: &Path) -> Kmsg {
        let file = fs::OpenOptions::new()
            .write(true)
            .open(root.join("dev/kmsg"))
            .ok();
        Kmsg { file }
    }

    /// `level` is a syslog priority: 3 error, 4 warning, 6 info, 7 debug.
    pub fn log(&mut self, level: u8, msg: &str) {
        let line = format!("<{level}>metalroot-generator: {msg}\n");
        let written = self
            .file
            .as_mut()
            .map(|f| f.write_all(line.as_bytes()).is_ok())
            .unwrap_or(false);
        if !written {
            eprintln!("metalroot-generator: {msg}");
        }
    }
}

/// The command line: `$SYSTEMD_PROC_CMDLINE` as systemd's own generators
/// honour it, else `<root>/proc/cmdline`.
pub fn read_cmdline(root: &Path) -> Result<String> {
    if let Ok(v) = std::env::var("SYSTEMD_PROC_CMDLINE") {
        return Ok(v);
    }
    let p = root.join("proc/cmdline");
    fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
}

pub fn read_site(root: &Path) -> Result<Option<String>> {
    let p = root.join(crate::site::PATH);
    match fs::read_to_string(&p) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// Runs the generator against `root` (`/` in the initrd, a tempdir in tests),
/// writing units into `normal_dir`.
pub fn run(root: &Path, normal_dir: &Path, log: &mut Kmsg) -> Result<Generated> {
    let cmdline = read_cmdline(root)?;
    let site = read_site(root)?;
    let g = generate(site.as_deref(), &cmdline);
    if let Some(e) = &g.error {
        log.log(
            3,
            &format!("{e}; the boot will stop in the emergency shell"),
        );
    } else if g.entries.is_empty() {
        log.log(
            7,
            "the command line does not ask for metalroot; nothing to do",
        );
    }
    for n in &g.notes {
        log.log(4, n);
    }
    write_entries(normal_dir, &g.entries)?;
    write_plan(root, &g)?;
    write_secrets(root, &g)?;
    if !g.entries.is_empty() && g.error.is_none() {
        log.log(6, &format!("wrote {} units and links", g.entries.len()));
    }
    Ok(g)
}

pub fn write_entries(dir: &Path, entries: &[Entry]) -> Result<()> {
    for e in entries {
        let path = dir.join(e.path());
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        match e {
            Entry::File { contents, .. } => {
                fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?
            }
            Entry::Symlink { target, .. } => {
                // A re-run (daemon-reload) finds the link already there.
                let _ = fs::remove_file(&path);
                symlink(target, &path)
                    .with_context(|| format!("linking {} to {target}", path.display()))?
            }
        }
    }
    Ok(())
}

/// The plan as text, for `metalroot status` in the emergency shell. It
/// holds no secret (only the secret files' paths).
fn write_plan(root: &Path, g: &Generated) -> Result<()> {
    let Some(text) = &g.plan_text else {
        return Ok(());
    };
    let path = root.join(crate::kinds::PLAN_FILE.trim_start_matches('/'));
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// Secrets go to 0600 files in a 0700 directory under /run. A step that has
/// used one leaves `<file>.consumed`, and a later run (daemon-reload
/// re-runs generators) does not write it back.
fn write_secrets(root: &Path, g: &Generated) -> Result<()> {
    for s in &g.secrets {
        let path: PathBuf = root.join(s.path.trim_start_matches('/'));
        crate::sys::secrets::provide(&path, s.contents.as_bytes())?;
    }
    Ok(())
}
