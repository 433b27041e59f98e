//! `metalroot handover`: what the real root needs from the initrd: fstab
//! entries for seed 000's arrays, and (seed 001) the iSCSI and multipath
//! configuration with their services enabled, and the hostname.

use crate::args::Argv;
use crate::args::SYSROOT;
use anyhow::{Context, Result};
use clap::Args;
use std::fs;
use std::path::{Path, PathBuf};
use tracing::{info, warn};

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct HandoverArgs {
    /// The assembled root to hand over.
    #[arg(long, default_value = SYSROOT)]
    pub root: PathBuf,
    /// Write fstab entries for the seed-000 arrays.
    #[arg(long)]
    pub metal_arrays: bool,
    /// Carry the iSCSI sessions over: iscsid config and service in the root.
    #[arg(long)]
    pub iscsi: bool,
    /// Carry multipath over: multipath.conf and multipathd in the root.
    #[arg(long)]
    pub multipath: bool,
    /// Enable the seeding unit the fetch wrote (metal.torrent-seed) for the
    /// booted system; it lives in /run, not in the root.
    #[arg(long)]
    pub seed: bool,
}

impl HandoverArgs {
    pub fn to_argv(&self) -> Vec<String> {
        let mut a = Argv::default();
        // Explicit even at the default, for `systemctl cat`.
        a.opt("root", self.root.display());
        a.flag("metal-arrays", self.metal_arrays);
        a.flag("iscsi", self.iscsi);
        a.flag("multipath", self.multipath);
        a.flag("seed", self.seed);
        a.0
    }
}

const FSTAB_BOOT: &str =
    "LABEL=BOOTRAID /metal/recovery vfat defaults,nofail,x-systemd.device-timeout=30s 0 0";

/// The mount at exactly `path` is read-only (its per-mount options in
/// /proc/self/mountinfo start with `ro`). The last mount there counts.
fn read_only_mount(mountinfo: &str, path: &str) -> bool {
    mountinfo
        .lines()
        .rev()
        .find_map(|l| {
            let mut f = l.split(' ');
            let mountpoint = f.nth(4)?;
            let opts = f.next()?;
            (mountpoint == path).then(|| opts.split(',').any(|o| o == "ro"))
        })
        .unwrap_or(false)
}

/// While alive, a root that systemd mounted read-only (`root=` without
/// `rw`, systemd's default in the initrd) is writable; then read-only again,
/// so the real root's own fstab and systemd-remount-fs decide as before.
struct Writable<'a> {
    root: &'a Path,
    remounted: bool,
}

impl<'a> Writable<'a> {
    fn new(root: &'a Path) -> Result<Self> {
        let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let p = root.to_string_lossy();
        if !read_only_mount(&mi, &p) {
            return Ok(Self {
                root,
                remounted: false,
            });
        }
        crate::sys::cmd::run(&["mount", "-o", "remount,rw", &p]).with_context(|| {
            format!("{p} is mounted read-only; making it writable for the hand-over")
        })?;
        info!("{p} is mounted read-only: writable for the hand-over");
        Ok(Self {
            root,
            remounted: true,
        })
    }
}

impl Drop for Writable<'_> {
    fn drop(&mut self) {
        if self.remounted {
            let p = self.root.to_string_lossy();
            if crate::sys::cmd::run_ok(&["mount", "-o", "remount,ro", &p]) {
                info!("{p} is read-only again");
            }
        }
    }
}

pub fn run(a: HandoverArgs) -> Result<()> {
    let root = &a.root;
    let _writable = if a.metal_arrays || a.iscsi || a.multipath {
        Some(Writable::new(root)?)
    } else {
        None
    };
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
        record_arrays(root)?;
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
        write_hostname(root)?;
        remove_autorelabel(root)?;
    }
    if a.multipath {
        copy_in(root, "etc/multipath.conf")?;
        enable(root, "multipathd.service");
    }
    if a.seed {
        enable_seed(
            Path::new(crate::sys::swarm::SEED_UNIT),
            Path::new("/run/systemd/system"),
        )?;
    }
    Ok(())
}

/// The booted system's seeding unit goes to /run/systemd/system, which the
/// real root's systemd reads after switch-root, with a multi-user.target
/// wants link: it seeds in this boot only and leaves nothing in the root.
fn enable_seed(unit: &Path, units_dir: &Path) -> Result<()> {
    if !unit.exists() {
        info!(
            "no {}: the image did not come with a torrent, nothing to seed",
            unit.display()
        );
        return Ok(());
    }
    let name = "metalroot-seed.service";
    let wants = units_dir.join("multi-user.target.wants");
    fs::create_dir_all(&wants).with_context(|| format!("creating {}", wants.display()))?;
    fs::copy(unit, units_dir.join(name))
        .with_context(|| format!("copying {} to {}", unit.display(), units_dir.display()))?;
    let link = wants.join(name);
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(format!("../{name}"), &link)
        .with_context(|| format!("linking {}", link.display()))?;
    info!(
        "enabled {name} for the booted system (in {})",
        units_dir.display()
    );
    Ok(())
}

/// Seed 001's `rm -f /sysroot/.autorelabel`: an image built with SELinux
/// carries the flag, and a relabel of a root on a LUN would rewrite it on
/// every node at every boot.
fn remove_autorelabel(root: &Path) -> Result<()> {
    let flag = root.join(".autorelabel");
    match fs::remove_file(&flag) {
        Ok(()) => {
            info!("removed {} (seed 001)", flag.display());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", flag.display())),
    }
}

/// Where systemd-networkd keeps its DHCP leases (one file per interface).
const LEASES: &str = "/run/systemd/netif/leases";

/// A name worth handing over: not empty, not a placeholder, and only what
/// a hostname may hold (a DHCP server's option is untrusted input).
fn usable_hostname(h: &str) -> Option<&str> {
    let h = h.trim();
    let ok = !h.is_empty()
        && h.len() <= 64
        && h != "localhost"
        && h != "(none)"
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !h.starts_with(['-', '.']);
    ok.then_some(h)
}

/// The HOSTNAME= of a systemd-networkd lease file.
fn lease_hostname(lease: &str) -> Option<&str> {
    lease
        .lines()
        .find_map(|l| l.strip_prefix("HOSTNAME="))
        .and_then(usable_hostname)
}

/// Seed 001's `hostname > /sysroot/etc/hostname`: the initrd's hostname (set
/// by `systemd.hostname=` or by the network setup), else the one the DHCP
/// server gave: the initrd has no hostnamed, so systemd-networkd cannot set
/// it and only records it in its lease.
fn write_hostname(root: &Path) -> Result<()> {
    let kernel = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let found = usable_hostname(&kernel)
        .map(|h| (h.to_string(), "the initrd's hostname".to_string()))
        .or_else(dhcp_hostname);
    let Some((host, from)) = found else {
        info!("no hostname to hand over (none set, none from DHCP)");
        return Ok(());
    };
    let file = root.join("etc/hostname");
    fs::write(&file, format!("{host}\n")).with_context(|| format!("writing {}", file.display()))?;
    info!("wrote hostname {host} ({from}) to {}", file.display());
    Ok(())
}

/// The first hostname in networkd's leases (by file name), and which lease.
fn dhcp_hostname() -> Option<(String, String)> {
    let mut leases: Vec<_> = fs::read_dir(LEASES)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    leases.sort();
    leases.iter().find_map(|p| {
        let text = fs::read_to_string(p).ok()?;
        let h = lease_hostname(&text)?.to_string();
        Some((h, format!("the DHCP lease in {}", p.display())))
    })
}

/// seed 000's arrays, by the names metalroot gives them.
const ARRAYS: &[&str] = &["BOOT", "SQFS", "ROOT", "AUX"];

/// Records the arrays assembled in the initrd in the real root's mdadm.conf
/// (Debian's /etc/mdadm/mdadm.conf, else /etc/mdadm.conf), so that the booted
/// system knows them by name: its mdadm --monitor watches them, an initrd it
/// builds assembles them, and metalvg0 on AUX is found again.
fn record_arrays(root: &Path) -> Result<()> {
    let scan = match crate::sys::cmd::run(&["mdadm", "--detail", "--scan"]) {
        Ok(s) => s,
        Err(e) => {
            info!("no arrays to record: {e:#}");
            return Ok(());
        }
    };
    let conf = mdadm_conf(root);
    let cur = fs::read_to_string(&conf).unwrap_or_default();
    let add = new_array_lines(&scan, &cur);
    if add.is_empty() {
        return Ok(());
    }
    let mut new = cur;
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str("# added by metalroot: seed 000's arrays, assembled in the initrd\n");
    for l in &add {
        new.push_str(l);
        new.push('\n');
    }
    if let Some(p) = conf.parent() {
        fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    }
    fs::write(&conf, new).with_context(|| format!("writing {}", conf.display()))?;
    info!("recorded {} array(s) in {}", add.len(), conf.display());
    Ok(())
}

/// Where the real root's mdadm looks: Debian's /etc/mdadm/mdadm.conf when
/// that directory exists, else /etc/mdadm.conf (RHEL, SUSE).
fn mdadm_conf(root: &Path) -> std::path::PathBuf {
    if root.join("etc/mdadm").is_dir() {
        root.join("etc/mdadm/mdadm.conf")
    } else {
        root.join("etc/mdadm.conf")
    }
}

/// The `ARRAY` lines of `mdadm --detail --scan` for seed 000's arrays that
/// `conf` does not list yet (by UUID).
fn new_array_lines(scan: &str, conf: &str) -> Vec<String> {
    scan.lines()
        .filter(|l| l.starts_with("ARRAY "))
        .filter(|l| {
            // By its device name, or by its name in the superblock.
            l.split_whitespace().any(|w| {
                ARRAYS.iter().any(|a| {
                    w == format!("/dev/md/{a}")
                        || w.strip_prefix("name=")
                            .is_some_and(|n| n == *a || n.ends_with(&format!(":{a}")))
                })
            })
        })
        .filter(|l| {
            let uuid = l.split_whitespace().find(|w| w.starts_with("UUID="));
            !uuid.is_some_and(|u| conf.contains(u))
        })
        .map(str::to_string)
        .collect()
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
    // Not an error: the root may start it another way. But a session or path
    // lost after switch-root is then never recovered, so say so.
    warn!("{unit} is not installed in the real root: nothing there will recover a lost session or path");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeding_unit_is_enabled_under_run_only_when_written() {
        let (d, unit) = crate::testing::temp_path("metalroot-seed.service");
        let units = d.path().join("system");
        enable_seed(&unit, &units).unwrap();
        assert!(!units.exists());
        fs::write(&unit, "[Service]\n").unwrap();
        enable_seed(&unit, &units).unwrap();
        assert!(units.join("metalroot-seed.service").exists());
        assert_eq!(
            fs::read_link(units.join("multi-user.target.wants/metalroot-seed.service")).unwrap(),
            Path::new("../metalroot-seed.service")
        );
    }

    #[test]
    fn read_only_sysroot_is_seen_in_mountinfo() {
        let mi = "\
22 1 0:21 / / rw,relatime shared:1 - rootfs rootfs rw
60 22 253:0 / /sysroot ro,relatime shared:30 - ext4 /dev/mapper/mpatha ro
61 22 0:5 / /sysroot/dev rw,nosuid shared:2 - devtmpfs devtmpfs rw
";
        assert!(read_only_mount(mi, "/sysroot"));
        assert!(!read_only_mount(mi, "/sysroot/dev"));
        assert!(!read_only_mount(mi, "/other"));
        let remounted = format!("{mi}62 22 253:0 / /sysroot rw,relatime - ext4 /dev/dm-0 rw\n");
        assert!(!read_only_mount(&remounted, "/sysroot"));
    }

    const SCAN: &str = "\
ARRAY /dev/md/BOOT metadata=1.0 name=ncn-w001:BOOT UUID=11111111:22222222:33333333:44444444
ARRAY /dev/md/SQFS metadata=1.2 name=ncn-w001:SQFS UUID=aaaaaaaa:22222222:33333333:44444444
ARRAY /dev/md/AUX metadata=1.2 name=ncn-w001:AUX UUID=bbbbbbbb:22222222:33333333:44444444
ARRAY /dev/md/data metadata=1.2 name=ncn-w001:data UUID=cccccccc:22222222:33333333:44444444
ARRAY /dev/md127 metadata=1.2 name=any:ROOT UUID=dddddddd:22222222:33333333:44444444
";

    #[test]
    fn records_only_the_layout_arrays_not_yet_listed() {
        let conf = "ARRAY /dev/md/BOOT metadata=1.0 UUID=11111111:22222222:33333333:44444444\n";
        let got = new_array_lines(SCAN, conf);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].starts_with("ARRAY /dev/md/SQFS"));
        assert!(got[1].starts_with("ARRAY /dev/md/AUX"));
        assert!(got[2].starts_with("ARRAY /dev/md127"));
        assert!(new_array_lines(SCAN, &got.join("\n")).len() == 1);
    }

    #[test]
    fn debian_path_when_etc_mdadm_exists() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(mdadm_conf(d.path()), d.path().join("etc/mdadm.conf"));
        fs::create_dir_all(d.path().join("etc/mdadm")).unwrap();
        assert_eq!(mdadm_conf(d.path()), d.path().join("etc/mdadm/mdadm.conf"));
        assert_eq!(new_array_lines(SCAN, "").len(), 4);
    }

    #[test]
    fn enables_an_installed_unit_in_multi_user() {
        let (d, lib) = crate::testing::temp_path("usr/lib/systemd/system");
        fs::create_dir_all(&lib).unwrap();
        fs::write(lib.join("iscsid.service"), "[Service]\n").unwrap();
        enable(d.path(), "iscsid.service");
        enable(d.path(), "multipathd.service");
        let wants = d.path().join("etc/systemd/system/multi-user.target.wants");
        assert_eq!(
            fs::read_link(wants.join("iscsid.service")).unwrap(),
            Path::new("/usr/lib/systemd/system/iscsid.service")
        );
        // Not installed: no dangling link.
        assert!(fs::symlink_metadata(wants.join("multipathd.service")).is_err());
    }

    #[test]
    fn hostname_from_a_networkd_lease() {
        let lease = "# This is private data. Do not parse.\nADDRESS=10.0.2.15\nHOSTNAME=node001\n";
        assert_eq!(lease_hostname(lease), Some("node001"));
        assert_eq!(lease_hostname("ADDRESS=10.0.2.15\n"), None);
        assert_eq!(lease_hostname("HOSTNAME=localhost\n"), None);
        // Untrusted: a name that could break a config file is not used.
        assert_eq!(lease_hostname("HOSTNAME=a b;rm\n"), None);
        assert_eq!(lease_hostname("HOSTNAME=-x\n"), None);
        assert_eq!(usable_hostname("(none)\n"), None);
        assert_eq!(
            usable_hostname("ncn-w001.example\n"),
            Some("ncn-w001.example")
        );
    }
}
