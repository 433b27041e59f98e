//! Seed 001's block stack under the root: multipath over the iSCSI paths,
//! LUKS opened with systemd-cryptsetup (key from a systemd credential or
//! fetched over https into memory), partitions probed, LVM activated and the
//! devices set read-only.

use crate::args::Argv;
use crate::kinds::DevSpec;
use crate::sys::cmd::{run as sh, run_ok, settle};
use crate::sys::http::HttpOpts;
use crate::sys::systemd::WaitOpts;
use crate::sys::{mounts, notify};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::fs;
use std::path::{Path, PathBuf};
use tracing::info;

/// The luks-open step's `--timeout` when none is given.
const DEFAULT_KEY_TIMEOUT: u64 = 300;

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct MultipathArgs {}

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct LuksArgs {
    /// The LUKS device (metal.luks).
    #[arg(long)]
    pub device: DevSpec,
    /// Name of the unlocked device, /dev/mapper/<name> (metal.luks.name).
    #[arg(long)]
    pub name: String,
    /// The key is this systemd credential (metal.luks.key=cred:).
    #[arg(long)]
    pub key_credential: Option<String>,
    /// A file holding the key's https URL (metal.luks.key=https://…).
    #[arg(long)]
    pub key_url_file: Option<PathBuf>,
    #[command(flatten)]
    pub http: HttpOpts,
    /// Seconds to keep retrying the key's URL (metal.fetch-timeout).
    #[arg(long, default_value_t = DEFAULT_KEY_TIMEOUT)]
    pub timeout: u64,
    #[command(flatten)]
    pub wait: WaitOpts,
}

impl LuksArgs {
    /// Arguments for `device` unlocked as `name`; the key is added after.
    pub fn new(device: DevSpec, name: String) -> LuksArgs {
        LuksArgs {
            device,
            name,
            key_credential: None,
            key_url_file: None,
            http: HttpOpts::default(),
            timeout: DEFAULT_KEY_TIMEOUT,
            wait: WaitOpts::default(),
        }
    }

    pub fn to_argv(&self) -> Vec<String> {
        let mut a = Argv::default();
        a.opt("device", &self.device);
        a.opt("name", &self.name);
        a.opt_if("key-credential", self.key_credential.as_ref());
        if let Some(f) = &self.key_url_file {
            // The fetch options matter only for a key fetched from a URL.
            a.opt("key-url-file", f.display());
            self.http.push(&mut a);
            a.opt("timeout", self.timeout);
        }
        self.wait.push(&mut a);
        a.0
    }
}

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct LvmArgs {
    /// Activate the logical volumes read-only.
    #[arg(long)]
    pub readonly: bool,
    /// Probe the partitions of this device first (the unlocked LUKS device).
    #[arg(long)]
    pub device: Option<String>,
    #[command(flatten)]
    pub wait: WaitOpts,
}

impl LvmArgs {
    pub fn to_argv(&self) -> Vec<String> {
        let mut a = Argv::default();
        a.flag("readonly", self.readonly);
        a.opt_if("device", self.device.as_ref());
        self.wait.push(&mut a);
        a.0
    }
}

/// Seed 001's multipath settings, for a node that has none of its own.
/// `uid_attribute ID_FS_UUID` is what merges two independent servers'
/// copies of one image (same LUKS or filesystem UUID, different SCSI ids)
/// into one map. The `^loop` line is metalroot's: its own loop devices
/// (image, overlay stores) must never become paths.
pub const MULTIPATH_CONF: &str = "defaults {
    polling_interval 10
    failback immediate
    no_path_retry queue
    user_friendly_names yes
    find_multipaths yes
    prio random
    uid_attribute ID_FS_UUID
}
blacklist {
    devnode \"^zram.*\"
    devnode \"^loop.*\"
}
";

const BY_PATH: &str = "/dev/disk/by-path";

/// The whole-disk iSCSI LUNs among udev's by-path links
/// (`ip-<portal>-iscsi-<target>-lun-<n>`, not their `-partN`), as the
/// devices they point to: `multipath -a` takes a device node's name, and a
/// link's name is none (it fails, silently).
fn iscsi_disks(by_path: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(by_path)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| is_iscsi_disk_link(n))
                .map(|n| {
                    let link = by_path.join(n);
                    fs::canonicalize(&link)
                        .unwrap_or(link)
                        .to_string_lossy()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn is_iscsi_disk_link(name: &str) -> bool {
    name.contains("-iscsi-")
        && name
            .rsplit_once("-lun-")
            .is_some_and(|(_, lun)| !lun.is_empty() && lun.bytes().all(|b| b.is_ascii_digit()))
}

pub fn multipath(_a: MultipathArgs) -> Result<()> {
    let conf = Path::new("/etc/multipath.conf");
    if !conf.exists() {
        fs::write(conf, MULTIPATH_CONF).context("writing /etc/multipath.conf")?;
        info!("wrote seed 001's /etc/multipath.conf");
    }
    let _ = sh(&["modprobe", "-a", "dm_multipath", "dm_round_robin"]);
    if !run_ok(&["multipathd", "show", "daemon"]) {
        sh(&["multipathd"]).context("starting multipathd")?;
    }
    settle();
    // find_multipaths (seed 001's "yes") makes a map only for a WWID seen
    // through two paths or listed in /etc/multipath/wwids. The iSCSI LUNs
    // are why multipath was asked for: list them, so a LUN whose second
    // path is dead at boot still gets its map (the path joins it later).
    for dev in iscsi_disks(Path::new(BY_PATH)) {
        run_ok(&["multipath", "-a", &dev]);
    }
    sh(&["multipath", "-v2"])?;
    settle();
    let maps = sh(&["multipath", "-ll"]).unwrap_or_default();
    info!("multipath maps:\n{}", maps.trim());
    notify::status("multipath maps created");
    Ok(())
}

pub fn luks(a: LuksArgs) -> Result<()> {
    a.wait.watch();
    let mut dev = a.device.dev_path();
    mounts::wait_for(&dev, 120)?;
    // Seed 001's main path: LUKS on a multipath map, whose paths carry the
    // same LUKS UUID. The link may name a path; the map holds it.
    let real = fs::canonicalize(&dev).with_context(|| format!("resolving {dev}"))?;
    if let Some(name) = real.file_name().map(|n| n.to_string_lossy().to_string()) {
        if let Some(map) = crate::sys::disks::multipath_map_over(Path::new("/"), &name) {
            info!(
                "{dev} is {}, a path of multipath map {map}: opening the map",
                real.display()
            );
            dev = map;
        }
    }
    // The fetched key is a secret too, removed once used.
    let mut used_key: Option<PathBuf> = None;
    let key: PathBuf = if let Some(name) = &a.key_credential {
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
            .context("no $CREDENTIALS_DIRECTORY: the unit must LoadCredential= the key")?;
        PathBuf::from(dir).join(name)
    } else if let Some(url_file) = &a.key_url_file {
        let timeout = std::time::Duration::from_secs(a.timeout);
        let body =
            crate::sys::http::get_small_from_url_file(url_file, &a.http, timeout, "the LUKS key")?;
        let p = PathBuf::from(format!("{}/luks-{}.key", crate::kinds::SECRETS_DIR, a.name));
        crate::sys::private::write(&p, &body)?;
        used_key = Some(p.clone());
        p
    } else {
        bail!("no key: give --key-credential or --key-url-file");
    };
    notify::status(&format!("unlocking {dev} as {}", a.name));
    let r = sh(&[
        "/usr/lib/systemd/systemd-cryptsetup",
        "attach",
        &a.name,
        &dev,
        &key.to_string_lossy(),
        "readonly",
    ]);
    if let Some(p) = used_key {
        let _ = fs::remove_file(&p);
    }
    if let Some(f) = &a.key_url_file {
        crate::sys::secrets::consume(f);
    }
    r.with_context(|| format!("unlocking {dev}"))?;
    info!("unlocked {dev} as /dev/mapper/{}", a.name);
    Ok(())
}

pub fn lvm(a: LvmArgs) -> Result<()> {
    a.wait.watch();
    if let Some(d) = &a.device {
        mounts::wait_for(d, 120)?;
        // Partitions of a dm device show up as <name>1, <name>2 …
        run_ok(&["partprobe", d]);
        run_ok(&["kpartx", "-a", d]);
        settle();
    }
    sh(&["lvm", "vgscan", "--mknodes"])?;
    sh(&["lvm", "vgchange", "--activate", "y"])?;
    settle();
    if a.readonly {
        // Seed 001 sets every mapped device read-only itself: dm does not
        // always pass the read-only state of the lower device up.
        for e in fs::read_dir("/dev/mapper")
            .context("reading /dev/mapper")?
            .flatten()
        {
            let n = e.file_name().to_string_lossy().to_string();
            if n != "control" {
                run_ok(&["blockdev", "--setro", &e.path().to_string_lossy()]);
            }
        }
    }
    info!(
        "LVM activated{}",
        if a.readonly {
            ", devices read-only"
        } else {
            ""
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iscsi_disk_links_only_whole_luns() {
        assert!(is_iscsi_disk_link(
            "ip-10.0.2.2:3260-iscsi-iqn.2026-11.metaltest:root-lun-1"
        ));
        assert!(!is_iscsi_disk_link(
            "ip-10.0.2.2:3260-iscsi-iqn.2026-11.metaltest:root-lun-1-part1"
        ));
        assert!(!is_iscsi_disk_link("pci-0000:00:04.0-scsi-0:0:0:0"));
        let d = tempfile::tempdir().unwrap();
        let dev = tempfile::tempdir().unwrap();
        for (n, target) in [
            ("ip-10.0.2.2:3262-iscsi-iqn.a:r-lun-1", "sdb"),
            ("ip-10.0.2.2:3260-iscsi-iqn.a:r-lun-1", "sda"),
            ("ip-10.0.2.2:3260-iscsi-iqn.a:r-lun-1-part2", "sda2"),
            ("virtio-pci-0000:00:05.0", "vda"),
        ] {
            fs::write(dev.path().join(target), "").unwrap();
            std::os::unix::fs::symlink(dev.path().join(target), d.path().join(n)).unwrap();
        }
        let got = iscsi_disks(d.path());
        assert_eq!(got.len(), 2, "{got:?}");
        // The devices, not the links.
        let sda = fs::canonicalize(dev.path().join("sda")).unwrap();
        assert_eq!(got[0], sda.to_string_lossy());
        assert!(got[1].ends_with("/sdb"));
    }
}
