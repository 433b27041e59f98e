//! The generator as systemd runs it: the real `metalroot` binary through a
//! symlink named `metalroot-generator` (the package's layout), against a
//! fake root (`METALROOT_GENERATOR_ROOT`) whose `dev/kmsg` is a plain file.
//!
//! The failure path: whatever stops the generator (an I/O error, a panic,
//! bad arguments), kmsg gets an error-priority line naming the cause (the
//! console shows kmsg's errors, the journal imports them), and the output
//! is the failing unit a refused command line gets,
//! `metalroot-cmdline-error.service`, required by initrd-root-fs.target.

#[path = "common/verify.rs"]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SEED000: &str = "metal.server=http://10.0.2.2:8080/ root=live:LABEL=SQFSRAID ip=dhcp";

struct Fake {
    _tmp: tempfile::TempDir,
    generator: PathBuf,
    root: PathBuf,
    out: PathBuf,
}

/// A fake root with `proc/cmdline` = `cmdline`, an empty `dev/kmsg` file,
/// an output directory, and the generator symlink.
fn fake(cmdline: &str) -> Fake {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    let out = tmp.path().join("out");
    for d in ["proc", "dev", "etc"] {
        fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    fs::create_dir_all(&out).expect("mkdir");
    fs::write(root.join("proc/cmdline"), cmdline).expect("cmdline");
    fs::write(root.join("dev/kmsg"), "").expect("kmsg");
    fs::write(root.join("etc/initrd-release"), "").expect("initrd-release");
    let bin = tmp.path().join("system-generators");
    fs::create_dir_all(&bin).expect("mkdir");
    let generator = bin.join("metalroot-generator");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_metalroot"), &generator).expect("symlink");
    Fake {
        _tmp: tmp,
        generator,
        root,
        out,
    }
}

impl Fake {
    fn run(&self, args: &[&Path], env: &[(&str, &str)]) -> Output {
        let o = Command::new(&self.generator)
            .args(args)
            .env("METALROOT_GENERATOR_ROOT", &self.root)
            .env_remove("SYSTEMD_PROC_CMDLINE")
            .env_remove("METALROOT_GENERATOR_TEST_PANIC")
            .envs(env.iter().copied())
            .output()
            .expect("generator runs");
        eprintln!(
            "status {:?}\nstdout: {}\nstderr: {}\nkmsg: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            self.kmsg()
        );
        o
    }

    fn run_systemd_style(&self, env: &[(&str, &str)]) -> Output {
        let early = self.out.with_file_name("early");
        let late = self.out.with_file_name("late");
        self.run(&[&self.out, &early, &late], env)
    }

    fn kmsg(&self) -> String {
        fs::read_to_string(self.root.join("dev/kmsg")).unwrap_or_default()
    }
}

/// Asserts `dir` holds exactly the failing unit and its two links, with
/// `cause` in the unit's message, and that the unit verifies.
fn assert_failing_unit(dir: &Path, cause: &str) {
    let unit = dir.join("metalroot-cmdline-error.service");
    let text = fs::read_to_string(&unit).expect("the failing unit is written");
    assert!(
        text.contains("Description=metalroot: the generator failed"),
        "{text}"
    );
    let exec = text
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .expect("ExecStart=");
    assert!(
        exec.contains("/usr/bin/metalroot fail \"metalroot-generator failed: "),
        "{exec}"
    );
    assert!(exec.contains(cause), "{exec} does not name {cause}");
    assert_eq!(
        fs::read_link(dir.join("initrd-root-fs.target.requires/metalroot-cmdline-error.service"))
            .expect("requires link"),
        Path::new("../metalroot-cmdline-error.service")
    );
    assert!(dir
        .join("initrd.target.wants/metalroot-cmdline-error.service")
        .exists());
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "initrd-root-fs.target.requires",
            "initrd.target.wants",
            "metalroot-cmdline-error.service"
        ],
        "nothing but the failing unit"
    );
    verify(&unit);
}

/// `systemd-analyze verify` of one written unit.
fn verify(unit: &Path) {
    let name = unit
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let text = fs::read_to_string(unit).expect("unit");
    if let Err(e) = common::verify(&[(name, text)], "/usr/bin/metalroot") {
        panic!("verify: {e}");
    }
}

/// The kmsg line: error priority, the generator's name, the cause.
fn assert_kmsg_error(kmsg: &str, cause: &str) {
    assert!(
        kmsg.lines()
            .any(|l| l.starts_with("<3>metalroot-generator: failed: ")
                && l.contains(cause)
                && l.contains("emergency shell (metalroot-cmdline-error.service)")),
        "no error line naming {cause:?} in kmsg:\n{kmsg}"
    );
}

#[test]
fn run_as_metalroot_generator_it_is_the_generator() {
    let f = fake(SEED000);
    let o = f.run_systemd_style(&[]);
    assert!(o.status.success());
    assert!(f.out.join("metalroot-wipe.service").exists());
    assert!(f.out.join("metalroot-sysroot.service").exists());
    assert!(!f.out.join("metalroot-cmdline-error.service").exists());
    assert!(f.kmsg().contains("<6>metalroot-generator: wrote "));
    // And one argument (NORMAL_DIR alone) is fine too.
    let g = fake(SEED000);
    assert!(g.run(&[&g.out], &[]).status.success());
    assert!(g.out.join("metalroot-sysroot.service").exists());
}

#[test]
fn a_refused_command_line_gets_the_failing_unit_and_exit_0() {
    let f = fake("metal.server=http://10.0.2.2:8080/ metal.md-level=raid7 metal.ram=disk");
    let o = f.run_systemd_style(&[]);
    assert!(o.status.success(), "a refused command line is not a crash");
    let text = fs::read_to_string(f.out.join("metalroot-cmdline-error.service")).expect("unit");
    assert!(text.contains("Description=metalroot: the kernel command line is invalid"));
    // Both bad values, in one message.
    assert!(text.contains("metal.md-level=\\\"raid7\\\""), "{text}");
    assert!(text.contains("metal.ram=\\\"disk\\\""), "{text}");
    assert!(f.kmsg().starts_with("<3>metalroot-generator: "));
}

#[test]
fn a_bad_disk_count_refuses_only_the_wipe_with_a_warning() {
    let f = fake("metal.server=http://10.0.2.2:8080/ metal.disks=two metal.wipe-delay=1");
    let o = f.run_systemd_style(&[]);
    assert!(o.status.success());
    assert!(!f.out.join("metalroot-cmdline-error.service").exists());
    let wipe = fs::read_to_string(f.out.join("metalroot-wipe.service")).expect("wipe unit");
    assert!(wipe.contains(" fail "), "the wipe unit only fails: {wipe}");
    assert!(wipe.contains("metal.disks="), "{wipe}");
    assert!(
        f.out.join("metalroot-fetch.service").exists(),
        "the rest is planned"
    );
    let kmsg = f.kmsg();
    assert!(
        kmsg.contains("<4>metalroot-generator: warning: the wipe is refused: metal.disks=\"two\""),
        "{kmsg}"
    );
    assert!(
        kmsg.contains("<4>metalroot-generator: warning: metal.wipe-delay=\"1\""),
        "{kmsg}"
    );
}

/// Runs the generator with a directory where it reads or writes `file`:
/// it must fail with exit status 1.
fn fails_with_a_directory_at(f: &Fake, file: PathBuf) {
    fs::create_dir_all(file).expect("mkdir");
    let o = f.run_systemd_style(&[]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn an_io_error_leaves_the_failing_unit_and_a_kmsg_line() {
    let f = fake(SEED000);
    // /etc/metalroot.conf unreadable: a directory.
    fails_with_a_directory_at(&f, f.root.join("etc/metalroot.conf"));
    let cause = "metalroot.conf: Is a directory";
    assert_kmsg_error(&f.kmsg(), cause);
    assert_failing_unit(&f.out, cause);
    let plan = fs::read_to_string(f.root.join("run/metalroot/plan.txt")).expect("plan.txt");
    assert!(plan.contains(cause), "{plan}");
}

#[test]
fn a_write_error_removes_the_half_written_plan() {
    let f = fake(SEED000);
    // The sysroot unit cannot be written (a directory is in its place):
    // the wipe and layout units written before it must not stay behind.
    fails_with_a_directory_at(&f, f.out.join("metalroot-sysroot.service/x"));
    assert!(!f.out.join("metalroot-wipe.service").exists());
    assert!(!f.out.join("metalroot-layout.service").exists());
    assert!(f.out.join("metalroot-cmdline-error.service").exists());
    assert_kmsg_error(&f.kmsg(), "metalroot-sysroot.service");
}

#[test]
fn a_panic_leaves_the_failing_unit_and_a_kmsg_line() {
    let f = fake(SEED000);
    let o = f.run_systemd_style(&[("METALROOT_GENERATOR_TEST_PANIC", "1")]);
    assert!(!o.status.success());
    let cause = "internal error: panicked at ";
    assert_kmsg_error(&f.kmsg(), cause);
    assert_failing_unit(&f.out, "METALROOT_GENERATOR_TEST_PANIC is set");
}

#[test]
fn a_panic_takes_back_the_wait_online_drop_in_too() {
    // Without ip= the plan brings a drop-in for systemd-networkd-wait-online.
    let f = fake("metal.server=http://10.0.2.2:8080/ root=live:LABEL=SQFSRAID");
    let dropin = f
        .out
        .join("systemd-networkd-wait-online.service.d/50-metalroot.conf");
    assert!(f.run_systemd_style(&[]).status.success());
    assert!(dropin.exists(), "the fallback's drop-in is written");
    let g = fake("metal.server=http://10.0.2.2:8080/ root=live:LABEL=SQFSRAID");
    let o = g.run_systemd_style(&[("METALROOT_GENERATOR_TEST_PANIC", "1")]);
    assert!(!o.status.success());
    assert!(!g
        .out
        .join("systemd-networkd-wait-online.service.d/50-metalroot.conf")
        .exists());
    assert!(g.out.join("metalroot-cmdline-error.service").exists());
}

#[test]
fn bad_arguments_in_an_initrd_still_leave_the_failing_unit() {
    let f = fake(SEED000);
    let o = f.run(&[], &[]);
    assert_eq!(o.status.code(), Some(2));
    let cause = "usage: metalroot-generator NORMAL_DIR [EARLY_DIR LATE_DIR]";
    assert_kmsg_error(&f.kmsg(), cause);
    // systemd's own directory for the initrd's generators.
    assert_failing_unit(&f.root.join("run/systemd/generator"), "called with []");
    // Two directories is not a way systemd calls a generator either.
    let g = fake(SEED000);
    let o = g.run(&[&g.out, &g.out], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!g.out.join("metalroot-wipe.service").exists());
}

#[test]
fn bad_arguments_outside_an_initrd_only_say_so() {
    let f = fake(SEED000);
    fs::remove_file(f.root.join("etc/initrd-release")).expect("rm");
    let o = f.run(&[], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(f
        .kmsg()
        .contains("<3>metalroot-generator: failed: usage: metalroot-generator"));
    assert!(f.kmsg().contains("no output directory: nothing written"));
    assert!(!f.root.join("run/systemd/generator").exists());
}

#[test]
fn without_kmsg_the_line_goes_to_stderr() {
    let f = fake(SEED000);
    fs::remove_file(f.root.join("dev/kmsg")).expect("rm");
    fs::create_dir_all(f.root.join("etc/metalroot.conf")).expect("mkdir");
    let o = f.run_systemd_style(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("metalroot-generator: failed: reading "));
}

#[test]
fn the_failing_unit_fails_with_the_message() {
    let o = Command::new(env!("CARGO_BIN_EXE_metalroot"))
        .args([
            "fail",
            "metalroot-generator failed: reading /x: Is a directory",
        ])
        .output()
        .expect("metalroot runs");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("reading /x: Is a directory"));
}

#[test]
fn any_other_name_is_the_step_binary() {
    // A symlink under another name is not the generator: clap answers.
    let tmp = tempfile::tempdir().expect("tempdir");
    let other = tmp.path().join("metalroot-generator-old");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_metalroot"), &other).expect("symlink");
    let o = Command::new(&other).arg(tmp.path()).output().expect("runs");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Usage"));
}
