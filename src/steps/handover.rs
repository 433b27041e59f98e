//! `metalroot handover`: what the real root needs from the initrd: fstab
//! entries for seed 000's arrays, and (seed 001) the iSCSI and multipath
//! configuration with their services enabled, and the hostname.

use crate::cli::HandoverArgs;
use anyhow::{Context, Result};
use std::fs;
use std::path::Path;
use tracing::info;

const FSTAB_BOOT: &str =
    "LABEL=BOOTRAID /metal/recovery vfat defaults,nofail,x-systemd.device-timeout=30s 0 0";

pub fn run(a: HandoverArgs) -> Result<()> {
    let root = &a.root;
    if a.metal_arrays {
        let fstab = root.join("etc/fstab");
        let cur = fs::read_to_string(&fstab).unwrap_or_default();
        if !cur.contains("LABEL=BOOTRAID") {
            let mut new = cur.clone();
            if !new.is_empty() && !new.ends_with('\n') {
                new.push('\n');
            }
            new.push_str("# added by metalroot: seed 000's boot array\n");
            new.push_str(FSTAB_BOOT);
            new.push('\n');
            fs::create_dir_all(root.join("etc")).context("creating etc")?;
            fs::write(&fstab, new).with_context(|| format!("writing {}", fstab.display()))?;
            info!("added LABEL=BOOTRAID to {}", fstab.display());
        }
    }
    if a.iscsi {
        copy_in(root, "etc/iscsi/initiatorname.iscsi")?;
        // The real root gets iscsid.conf without CHAP secrets: they never
        // leave the initrd's memory.
        if let Ok(conf) = fs::read_to_string("/etc/iscsi/iscsid.conf") {
            let clean: String = conf
                .lines()
                .filter(|l| !l.contains(".auth."))
                .map(|l| format!("{l}\n"))
                .collect();
            fs::create_dir_all(root.join("etc/iscsi")).context("creating etc/iscsi")?;
            fs::write(root.join("etc/iscsi/iscsid.conf"), clean).context("writing iscsid.conf")?;
        }
        enable(root, "iscsid.service");
        let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let host = host.trim();
        if !host.is_empty() && host != "localhost" && host != "(none)" {
            fs::write(root.join("etc/hostname"), format!("{host}\n"))
                .context("writing etc/hostname")?;
        }
    }
    if a.multipath {
        copy_in(root, "etc/multipath.conf")?;
        enable(root, "multipathd.service");
    }
    Ok(())
}

fn copy_in(root: &Path, rel: &str) -> Result<()> {
    let src = Path::new("/").join(rel);
    if !src.exists() {
        return Ok(());
    }
    let dst = root.join(rel);
    if let Some(p) = dst.parent() {
        fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    }
    fs::copy(&src, &dst)
        .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
    info!("copied /{rel} into the real root");
    Ok(())
}

fn enable(root: &Path, unit: &str) {
    for dir in ["usr/lib/systemd/system", "lib/systemd/system"] {
        let u = Path::new("/").join(dir).join(unit);
        if root.join(dir).join(unit).exists() {
            let wants = root.join("etc/systemd/system/multi-user.target.wants");
            let _ = fs::create_dir_all(&wants);
            let _ = std::os::unix::fs::symlink(&u, wants.join(unit));
            info!("enabled {unit} in the real root");
            return;
        }
    }
}
