//! Mounting with `nix`, read-only loop devices, and waiting for udev.

use crate::sys::cmd::run;
use anyhow::{Context, Result};
use nix::mount::{mount, MsFlags};
use std::fs;
use std::path::Path;
use std::time::Duration;

/// Waits until `path` exists (a udev symlink), up to `secs` seconds.
pub fn wait_for(path: &str, secs: u64) -> Result<()> {
    crate::sys::retry::poll(path, Duration::from_secs(secs), || {
        Path::new(path).exists().then_some(())
    })
}

pub fn is_mountpoint(path: &Path) -> bool {
    let Ok(m) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let p = path.to_string_lossy();
    m.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|mp| mp == p))
}

pub fn mount_fs(
    src: &str,
    target: &Path,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    fs::create_dir_all(target).with_context(|| format!("creating {}", target.display()))?;
    tracing::info!(
        "mounting {src} ({fstype}{}) at {}",
        data.map(|d| format!(", {d}")).unwrap_or_default(),
        target.display()
    );
    mount(Some(src), target, Some(fstype), flags, data).with_context(|| {
        format!(
            "mount -t {fstype} {src} {}{}",
            target.display(),
            data.map(|d| format!(" -o {d}")).unwrap_or_default()
        )
    })
}

/// Mounts a block device, letting the kernel try the filesystem types the
/// initrd knows (`mount(8)` does the probing, like fstab).
pub fn mount_dev(dev: &str, target: &Path, read_only: bool) -> Result<()> {
    fs::create_dir_all(target).with_context(|| format!("creating {}", target.display()))?;
    let opt = if read_only { "ro" } else { "rw" };
    run(&["mount", "-o", opt, dev, &target.to_string_lossy()])?;
    Ok(())
}

/// Attaches a file to a read-only loop device, returns /dev/loopN.
pub fn loop_attach(file: &Path) -> Result<String> {
    crate::sys::loopdev::attach(file, true)
}

pub fn bind(src: &Path, target: &Path) -> Result<()> {
    fs::create_dir_all(target).with_context(|| format!("creating {}", target.display()))?;
    mount(
        Some(src),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| format!("mount --bind {} {}", src.display(), target.display()))
}
