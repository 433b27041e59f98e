//! The systemd generator: reads the command line, writes what the pure core
//! returns. The only place that reads the kernel command line.

use crate::core::{generate, Generated};
use crate::units::Entry;
use anyhow::{Context, Result};
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The name under which `metalroot` is the generator: the package installs
/// `/usr/lib/systemd/system-generators/metalroot-generator` as a symlink to
/// `/usr/bin/metalroot`, and systemd runs it by that path.
pub const NAME: &str = "metalroot-generator";

/// True when argv[0]'s file name is [`NAME`].
pub fn invoked_as_generator(argv0: Option<&std::ffi::OsStr>) -> bool {
    argv0
        .map(Path::new)
        .and_then(Path::file_name)
        .is_some_and(|n| n == NAME)
}

const USAGE: &str = "usage: metalroot-generator NORMAL_DIR [EARLY_DIR LATE_DIR]";

/// The generator's entry point (`metalroot` run as `metalroot-generator`):
/// systemd passes NORMAL_DIR [EARLY_DIR LATE_DIR] (`args` without argv[0]).
///
/// Whatever goes wrong (a panic, an I/O error, missing arguments) the boot
/// stays diagnosable: the cause goes to /dev/kmsg at error priority (the
/// console and, later, the journal show it) and, when there is a directory
/// to write to, the output is the failing unit a refused command line gets,
/// `metalroot-cmdline-error.service`, so the boot stops in the emergency
/// shell where `systemctl status` and `metalroot status` name the cause.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().collect();
    // Test hook, like composefs-rs: a fake root instead of `/`.
    let root = std::env::var_os("METALROOT_GENERATOR_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    let mut log = Kmsg::open(&root);
    if args.first().is_some_and(|a| a == "-h" || a == "--help") {
        println!("{USAGE}\nsee metalroot-generator(8)");
        return ExitCode::SUCCESS;
    }
    let given = args
        .first()
        .filter(|a| !a.is_empty() && !a.to_string_lossy().starts_with('-'))
        .filter(|_| args.len() == 1 || args.len() == 3)
        .map(PathBuf::from);
    // Without a usable directory from systemd, the initrd's default one:
    // the failing unit still reaches systemd, which loads what generators
    // wrote after they ran. Outside an initrd, only the message.
    let normal = given.clone().or_else(|| {
        root.join("etc/initrd-release")
            .exists()
            .then(|| root.join("run/systemd/generator"))
    });
    {
        let root = root.clone();
        let normal = normal.clone();
        std::panic::set_hook(Box::new(move |info| {
            let cause = format!("internal error: {info}");
            fail_boot(&root, normal.as_deref(), &cause, &mut Kmsg::open(&root));
        }));
    }
    let Some(normal) = given else {
        let got: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
        let cause = format!("{USAGE} (called with {got:?})");
        fail_boot(&root, normal.as_deref(), &cause, &mut log);
        return ExitCode::from(2);
    };
    match run(&root, &normal, &mut log) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            fail_boot(&root, Some(&normal), &format!("{e:#}"), &mut log);
            ExitCode::FAILURE
        }
    }
}

/// The generator could not do its work: says why on the console and in the
/// journal (kmsg, error priority) and, with a directory to write to, writes
/// the failing unit in place of the plan so that the boot stops in the
/// emergency shell instead of going on without metalroot.
pub fn fail_boot(root: &Path, normal: Option<&Path>, cause: &str, log: &mut Kmsg) {
    let cause = scrub(cause);
    let message = format!("metalroot-generator failed: {cause}");
    let written = normal.map(|dir| {
        remove_ours(dir);
        write_entries(
            dir,
            &crate::units::render_failure("metalroot: the generator failed", &message),
        )
    });
    let outcome = match written {
        Some(Ok(())) => {
            "the boot will stop in the emergency shell (metalroot-cmdline-error.service)"
                .to_string()
        }
        Some(Err(e)) => format!("and its failing unit could not be written either: {e:#}"),
        None => "no output directory: nothing written".to_string(),
    };
    log.log(3, &format!("failed: {cause}; {outcome}"));
    // For `metalroot status`; best effort, the unit carries the message.
    let _ = write_plan_text(
        root,
        &format!("metalroot plan\n  none: {message}\n  nothing runs but metalroot-cmdline-error.service\n"),
    );
}

/// A message on one line, and if it quotes a URL, with its credentials
/// hidden.
fn scrub(msg: &str) -> String {
    msg.split([' ', '\n'])
        .map(|w| {
            if w.contains("://") {
                crate::redact::redact_secret_url(w)
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

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
    /// A message of several lines becomes one record (a newline would
    /// start a new one without the priority).
    pub fn log(&mut self, level: u8, msg: &str) {
        let msg = msg.replace('\n', " ");
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
    for w in &g.warnings {
        log.log(4, &format!("warning: {w}"));
    }
    for n in &g.notes {
        log.log(4, n);
    }
    // The secrets and the plan before the units that use them. Units
    // written before a failure are removed by `fail_boot`, so a failed run
    // leaves no half a plan (a wipe without the steps after it) behind.
    write_secrets(root, &g)?;
    write_plan(root, &g)?;
    write_entries(normal_dir, &g.entries)?;
    if std::env::var_os("METALROOT_GENERATOR_TEST_PANIC").is_some() {
        // Test hook for the failure path (tests/generator.rs and the VM
        // scenario install-generator-failure): a panic once the units
        // are written, which the panic hook must take back.
        panic!("METALROOT_GENERATOR_TEST_PANIC is set");
    }
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

/// Removes every unit and link of metalroot's from the output directory
/// (`metalroot-*` files, `metalroot-*` links in `*.wants/` and
/// `*.requires/`, and `*-metalroot.conf` drop-ins in `*.d/`), whatever a
/// failed run got to write: other generators never use these names. Errors
/// are ignored: it runs on the way out of a failure, maybe from the panic
/// hook.
fn remove_ours(dir: &Path) {
    let ours = |e: &fs::DirEntry| e.file_name().to_string_lossy().starts_with("metalroot-");
    let Ok(top) = fs::read_dir(dir) else {
        return;
    };
    for e in top.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && (name.ends_with(".wants") || name.ends_with(".requires")) {
            if let Ok(links) = fs::read_dir(e.path()) {
                for l in links.flatten().filter(|l| ours(l)) {
                    let _ = fs::remove_file(l.path());
                }
            }
        } else if is_dir && name.ends_with(".d") {
            if let Ok(files) = fs::read_dir(e.path()) {
                for f in files
                    .flatten()
                    .filter(|f| f.file_name().to_string_lossy().ends_with("-metalroot.conf"))
                {
                    let _ = fs::remove_file(f.path());
                }
            }
        } else if !is_dir && ours(&e) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// The plan as text, for `metalroot status` in the emergency shell. It
/// holds no secret (only the secret files' paths).
fn write_plan(root: &Path, g: &Generated) -> Result<()> {
    match &g.plan_text {
        Some(text) => write_plan_text(root, text),
        None => Ok(()),
    }
}

fn write_plan_text(root: &Path, text: &str) -> Result<()> {
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
