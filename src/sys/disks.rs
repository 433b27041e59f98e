//! Finding the local disks metalroot may touch, by scanning sysfs, and the
//! rules that choose among them. Every disk gets a logged reason.

use crate::args::Argv;
use crate::kinds::DiskId;
use crate::sys::udev::by_label;
use anyhow::{Context, Result};
use clap::Args;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct DiskArgs {
    /// Number of disks in the arrays (metal.disks).
    #[arg(long)]
    pub disks: u64,
    /// Smallest disk considered, in GiB (metal.min-disk-size).
    #[arg(long)]
    pub min_disk_size_gib: u64,
    /// Filesystem label of the image array (root=live:LABEL=).
    #[arg(long)]
    pub sqfs_label: String,
    /// Filesystem label of the overlay array (rd.live.overlay=LABEL=).
    #[arg(long)]
    pub oval_label: String,
    /// Only disks with these serial:<s> or wwn:<w> (metal.disk-allow).
    #[arg(long = "allow")]
    pub allow: Vec<DiskId>,
    /// Never touch the disk holding this filesystem label (a file:// source).
    #[arg(long = "protect-label")]
    pub protect_label: Vec<String>,
    /// Report what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Root of /sys and /dev (tests).
    #[arg(long, default_value = "/", hide = true)]
    pub sysroot_prefix: PathBuf,
}

impl DiskArgs {
    pub(crate) fn push(&self, a: &mut Argv) {
        a.opt("disks", self.disks);
        a.opt("min-disk-size-gib", self.min_disk_size_gib);
        a.opt("sqfs-label", &self.sqfs_label);
        a.opt("oval-label", &self.oval_label);
        a.each("allow", &self.allow);
        a.each("protect-label", &self.protect_label);
        a.flag("dry-run", self.dry_run);
        if self.sysroot_prefix != Path::new("/") {
            a.opt("sysroot-prefix", self.sysroot_prefix.display());
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disk {
    pub name: String,
    pub size: u64,
    /// Logical sector size in bytes, the unit sgdisk counts in (0: unknown).
    pub sector_size: u64,
    pub removable: bool,
    pub read_only: bool,
    /// `scsi`, `nvme`, `virtio`, … (the subsystem of the disk's device).
    pub subsystem: String,
    pub usb: bool,
    pub iscsi: bool,
    pub multipath: bool,
    pub cdrom: bool,
    pub serial: String,
    pub wwn: String,
    /// Holds a filesystem label that must never be touched.
    pub protected_by: Option<String>,
}

impl Disk {
    pub fn dev(&self) -> String {
        format!("/dev/{}", self.name)
    }
}

/// What the wipe and layout steps may do.
#[derive(Debug, Clone)]
pub struct Rules {
    pub min_size: u64,
    pub allow: Vec<DiskId>,
}

/// Why a disk is (not) eligible; `None` means eligible.
pub fn refusal(d: &Disk, r: &Rules) -> Option<String> {
    for (hit, why) in [
        (d.usb, "USB device (never wiped)"),
        (d.removable, "removable medium"),
        (d.cdrom, "optical/live medium"),
        (d.read_only, "read-only"),
        (d.iscsi, "iSCSI LUN"),
        (d.multipath, "multipath path"),
    ] {
        if hit {
            return Some(why.into());
        }
    }
    if let Some(l) = &d.protected_by {
        return Some(format!("holds LABEL={l}, the image source"));
    }
    if d.subsystem != "scsi" && d.subsystem != "nvme" {
        return Some(format!("bus {} is neither scsi nor nvme", d.subsystem));
    }
    if d.size <= r.min_size {
        return Some(format!(
            "{} bytes is not above metal.min-disk-size ({} bytes)",
            d.size, r.min_size
        ));
    }
    if !r.allow.is_empty() {
        let ok = r.allow.iter().any(|a| match a {
            DiskId::Serial(s) => !d.serial.is_empty() && d.serial == *s,
            DiskId::Wwn(w) => !d.wwn.is_empty() && norm_wwn(&d.wwn) == norm_wwn(w),
        });
        if !ok {
            return Some(format!(
                "serial {:?} / wwn {:?} not in metal.disk-allow",
                d.serial, d.wwn
            ));
        }
    }
    None
}

/// A WWN without its notation: `0x5000…`, `naa.5000…`, `eui.…` and the
/// bare hex all compare equal. Exact match only: this guards a wipe.
fn norm_wwn(w: &str) -> String {
    let w = w.trim().to_ascii_lowercase();
    let w = w
        .strip_prefix("0x")
        .or_else(|| w.strip_prefix("naa."))
        .or_else(|| w.strip_prefix("eui."))
        .or_else(|| w.strip_prefix("t10."))
        .unwrap_or(&w);
    w.to_string()
}

/// Eligible disks, smallest first as seed 000 sorts them, with the verdict for
/// every disk for the log. Among disks of one size the order is the disks'
/// own identity (WWN, then serial), not the kernel's names, which change
/// with probe order: with more eligible disks than metal.disks, every boot
/// takes the same ones. The name only breaks ties between disks without
/// either.
pub fn choose(all: &[Disk], r: &Rules) -> (Vec<Disk>, Vec<(Disk, String)>) {
    let mut ok: Vec<Disk> = Vec::new();
    let mut verdicts = Vec::new();
    for d in all {
        match refusal(d, r) {
            Some(why) => verdicts.push((d.clone(), format!("skipped: {why}"))),
            None => {
                ok.push(d.clone());
                verdicts.push((d.clone(), "eligible".into()));
            }
        }
    }
    ok.sort_by(|a, b| {
        a.size
            .cmp(&b.size)
            .then_with(|| norm_wwn(&a.wwn).cmp(&norm_wwn(&b.wwn)))
            .then_with(|| a.serial.cmp(&b.serial))
            .then_with(|| a.name.cmp(&b.name))
    });
    (ok, verdicts)
}

fn read(p: &Path) -> String {
    fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// How long to wait for enough disks to show up.
const DISK_WAIT_SECS: u64 = 30;
/// How long the set of disks must stay the same before choosing.
const DISK_STABLE_SECS: u64 = 3;

const SKIP_PREFIXES: &[&str] = &["loop", "ram", "zram", "dm-", "md", "sr", "nbd", "fd"];

/// Scans `<prefix>/sys/block`. `protect` are labels whose disks are refused.
pub fn scan(prefix: &Path, protect: &[String]) -> Result<Vec<Disk>> {
    let block = prefix.join("sys/block");
    let mut protected: Vec<(String, String)> = Vec::new();
    for label in protect {
        let link = prefix.join(by_label(label).trim_start_matches('/'));
        if let Ok(dev) = fs::canonicalize(&link) {
            if let Some(name) = dev.file_name() {
                for d in disks_under(prefix, &name.to_string_lossy()) {
                    protected.push((d, label.clone()));
                }
            }
        }
    }
    let mut out = Vec::new();
    for e in fs::read_dir(&block).with_context(|| format!("reading {}", block.display()))? {
        let e = e.with_context(|| format!("reading {}", block.display()))?;
        let name = e.file_name().to_string_lossy().to_string();
        if SKIP_PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let sys = block.join(&name);
        let real = fs::canonicalize(&sys).unwrap_or_else(|_| sys.clone());
        let real_s = real.to_string_lossy().to_string();
        let dev = sys.join("device");
        let subsystem = fs::canonicalize(dev.join("subsystem"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
            .unwrap_or_default();
        // An NVMe namespace's device is the controller, in the nvme class.
        let subsystem = if name.starts_with("nvme") {
            "nvme".to_string()
        } else if subsystem == "virtio" || real_s.contains("/virtio") && subsystem != "scsi" {
            "virtio".to_string()
        } else {
            subsystem
        };
        let multipath = fs::read_dir(sys.join("holders"))
            .map(|rd| {
                rd.flatten()
                    .any(|h| read(&h.path().join("dm/uuid")).starts_with("mpath-"))
            })
            .unwrap_or(false);
        let serial = {
            let s = read(&dev.join("serial"));
            if !s.is_empty() {
                s
            } else {
                let v = vpd_serial(&dev);
                if v.is_empty() {
                    usb_serial(&real)
                } else {
                    v
                }
            }
        };
        let mut wwn = read(&dev.join("wwid"));
        if wwn.is_empty() {
            wwn = read(&sys.join("wwid"));
        }
        out.push(Disk {
            size: read(&sys.join("size")).parse::<u64>().unwrap_or(0) * 512,
            sector_size: read(&sys.join("queue/logical_block_size"))
                .parse()
                .unwrap_or(0),
            removable: read(&sys.join("removable")) == "1",
            read_only: read(&sys.join("ro")) == "1",
            usb: real_s.contains("/usb"),
            iscsi: real_s.contains("/session"),
            multipath,
            cdrom: read(&dev.join("type")) == "5",
            serial,
            wwn,
            protected_by: protected
                .iter()
                .find(|(d, _)| *d == name)
                .map(|(_, l)| l.clone()),
            subsystem,
            name,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The serial from a SCSI disk's VPD page 0x80, as udev's scsi_id reads it.
fn vpd_serial(dev: &Path) -> String {
    match fs::read(dev.join("vpd_pg80")) {
        Ok(b) if b.len() > 4 => String::from_utf8_lossy(&b[4..]).trim().to_string(),
        _ => String::new(),
    }
}

/// A USB disk's serial is its USB device's, found up the sysfs path.
fn usb_serial(real: &Path) -> String {
    real.ancestors()
        .find(|p| p.join("idVendor").exists() && p.join("serial").exists())
        .map(|p| read(&p.join("serial")))
        .unwrap_or_default()
}

/// The whole disks a block device lives on (through partitions, md, dm).
pub fn disks_under(prefix: &Path, name: &str) -> Vec<String> {
    let class = prefix.join("sys/class/block").join(name);
    let slaves = class.join("slaves");
    if let Ok(rd) = fs::read_dir(&slaves) {
        let v: Vec<String> = rd
            .flatten()
            .flat_map(|s| disks_under(prefix, &s.file_name().to_string_lossy()))
            .collect();
        if !v.is_empty() {
            return v;
        }
    }
    if class.join("partition").exists() {
        if let Ok(real) = fs::canonicalize(&class) {
            if let Some(parent) = real.parent().and_then(|p| p.file_name()) {
                return vec![parent.to_string_lossy().to_string()];
            }
        }
    }
    vec![name.to_string()]
}

/// The multipath map a block device is a path of, as `/dev/mapper/<name>`.
/// With several paths to one LUN, udev's by-uuid link names whichever path
/// it saw last, and that path is held by the map: the map is the device.
pub fn multipath_map_over(prefix: &Path, name: &str) -> Option<String> {
    let holders = prefix.join("sys/class/block").join(name).join("holders");
    fs::read_dir(holders).ok()?.flatten().find_map(|h| {
        let dm = prefix
            .join("sys/class/block")
            .join(h.file_name())
            .join("dm");
        let map = read(&dm.join("name"));
        (read(&dm.join("uuid")).starts_with("mpath-") && !map.is_empty())
            .then(|| format!("/dev/mapper/{map}"))
    })
}

/// Partitions of a disk, e.g. sda1, nvme0n1p2.
pub fn partitions(prefix: &Path, disk: &str) -> Vec<String> {
    let dir: PathBuf = prefix.join("sys/block").join(disk);
    let mut v: Vec<String> = fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("partition").exists())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The device node of partition `n` of a disk.
pub fn part_dev(disk: &str, n: u32) -> String {
    if disk.chars().last().is_some_and(|c| c.is_ascii_digit()) {
        format!("/dev/{disk}p{n}")
    } else {
        format!("/dev/{disk}{n}")
    }
}

/// Waits until the image source's label is present and the set of disks has
/// settled with enough eligible ones (or the wait runs out). Must come before
/// anything looks at the disks, the search for an existing layout included:
/// right after udev's trigger the disks may not be probed yet.
pub fn wait_settled(a: &DiskArgs) -> Result<()> {
    let rules = Rules {
        min_size: a.min_disk_size_gib << 30,
        allow: a.allow.clone(),
    };
    // The image source must be identified before anything is chosen: a
    // source that has not shown up yet could otherwise be taken for a blank
    // disk. Without it the fetch would fail anyway, so stop before wiping.
    for label in &a.protect_label {
        let path = a
            .sysroot_prefix
            .join(by_label(label).trim_start_matches('/'));
        crate::sys::notify::status(&format!("waiting for LABEL={label}, the image source"));
        crate::sys::mounts::wait_for(&path.to_string_lossy(), DISK_WAIT_SECS).with_context(
            || format!("the image source LABEL={label} is missing; nothing was wiped or created"),
        )?;
    }
    // Disks are probed asynchronously at boot (USB storage a second or more
    // after its controller): wait until the set of disks has not changed for
    // a few seconds, and there are enough of them, before choosing.
    let start = std::time::Instant::now();
    let mut last_names: Vec<String> = Vec::new();
    let mut last_change = std::time::Instant::now();
    loop {
        let all = scan(&a.sysroot_prefix, &a.protect_label)?;
        let names: Vec<String> = all.iter().map(|d| d.name.clone()).collect();
        if names != last_names {
            last_names = names;
            last_change = std::time::Instant::now();
        }
        let (ok, _) = choose(&all, &rules);
        let quiet = last_change.elapsed().as_secs();
        // Enough disks and settled; or settled for long with too few (a
        // degraded reboot: the layout check or the count decides next).
        if (quiet >= DISK_STABLE_SECS && ok.len() as u64 >= a.disks)
            || quiet >= 2 * DISK_STABLE_SECS
            || start.elapsed().as_secs() >= DISK_WAIT_SECS
        {
            return Ok(());
        }
        crate::sys::notify::status(&format!(
            "waiting for the disks to settle: {} eligible of {} needed",
            ok.len(),
            a.disks
        ));
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// The smallest disk dracut-metal-mdsquash takes for its arrays
/// (`METAL_DISK_SMALL`, 350 GiB): smaller eligible disks are wiped, never
/// partitioned, so a node with small and large disks gets its arrays on the
/// same disks as under mdsquash.
pub const ARRAY_MIN_BYTES: u64 = 375_809_638_400;

/// The disks the arrays take: the first `wanted` eligible ones of at least
/// ARRAY_MIN_BYTES, in choice order (fewer when there are not enough).
pub fn for_arrays(eligible: &[Disk], wanted: u64) -> Vec<Disk> {
    eligible
        .iter()
        .filter(|d| d.size >= ARRAY_MIN_BYTES)
        .take(wanted as usize)
        .cloned()
        .collect()
}

/// Scans (after `wait_settled`), logs every disk's verdict, and checks
/// there are enough for the arrays; returns the disks the arrays take.
pub fn select_logged(a: &DiskArgs) -> Result<Vec<Disk>> {
    let ok = for_arrays(&scan_logged(a)?, a.disks);
    if (ok.len() as u64) < a.disks {
        anyhow::bail!(
            "metal.disks={} but only {} eligible disk(s) of {ARRAY_MIN_BYTES} bytes (350 GiB) or more found ({}); nothing was wiped or created",
            a.disks,
            ok.len(),
            ok.iter().map(Disk::dev).collect::<Vec<_>>().join(" ")
        );
    }
    Ok(ok)
}

/// The eligible disks, every disk's verdict logged.
pub fn scan_logged(a: &DiskArgs) -> Result<Vec<Disk>> {
    let rules = Rules {
        min_size: a.min_disk_size_gib << 30,
        allow: a.allow.clone(),
    };
    let all = scan(&a.sysroot_prefix, &a.protect_label)?;
    let (ok, verdicts) = choose(&all, &rules);
    for (d, v) in &verdicts {
        tracing::info!(
            "disk {} ({} bytes, bus {}, serial {:?}): {v}",
            d.dev(),
            d.size,
            d.subsystem,
            d.serial
        );
    }
    Ok(ok)
}

/// True when both labels of an existing layout are present (a reboot).
/// Assembles existing arrays first, as udev may not have yet.
pub fn layout_present(prefix: &Path, labels: &[&str]) -> bool {
    // md is a module: nothing loads it on a reboot before an array is
    // assembled (boot 1 got it from mdadm --create).
    crate::sys::cmd::run_ok(&["modprobe", "-a", "md_mod", "raid1", "raid0", "raid10"]);
    assemble_found_arrays();
    crate::sys::cmd::settle();
    start_pending_arrays();
    crate::sys::cmd::settle();
    labels
        .iter()
        .all(|l| prefix.join(by_label(l).trim_start_matches('/')).exists())
}

/// Assembles every array whose members carry an md superblock, whatever
/// the initrd's mdadm.conf says (its HOMEHOST or AUTO lines can keep arrays
/// of another host name, such as the initrd's, from assembling), and runs
/// them even with a member missing.
fn assemble_found_arrays() {
    let found = crate::sys::cmd::run(&["mdadm", "--examine", "--scan"]).unwrap_or_default();
    let arrays: Vec<&str> = found.lines().filter(|l| l.starts_with("ARRAY")).collect();
    if arrays.is_empty() {
        return;
    }
    let conf = format!(
        "DEVICE partitions containers\nHOMEHOST <ignore>\nAUTO +all\n{}\n",
        arrays.join("\n")
    );
    let path = "/run/metalroot/mdadm.conf";
    if std::fs::create_dir_all("/run/metalroot").is_err() || std::fs::write(path, conf).is_err() {
        return;
    }
    tracing::info!("found md arrays: {}", arrays.join("; "));
    crate::sys::cmd::run_ok(&["mdadm", "--assemble", "--scan", "--run", "--config", path]);
}

/// Starts arrays that assembled but did not run (a member missing: PENDING
/// or inactive), so a degraded array still boots.
fn start_pending_arrays() {
    let Ok(mdstat) = std::fs::read_to_string("/proc/mdstat") else {
        return;
    };
    for line in mdstat.lines() {
        let Some((md, rest)) = line.split_once(" : ") else {
            continue;
        };
        if md.starts_with("md") && (rest.contains("inactive") || rest.contains("PENDING")) {
            tracing::info!("starting array /dev/{md} ({rest})");
            crate::sys::cmd::run_ok(&["mdadm", "--run", &format!("/dev/{}", md.trim())]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(name: &str, size_gib: u64) -> Disk {
        Disk {
            name: name.into(),
            size: size_gib << 30,
            subsystem: "scsi".into(),
            ..Disk::default()
        }
    }

    fn rules() -> Rules {
        Rules {
            min_size: 16 << 30,
            allow: vec![],
        }
    }

    #[test]
    fn guards_refuse_what_must_never_be_wiped() {
        let mut usb = disk("sdc", 400);
        usb.usb = true;
        let small = disk("sdd", 8);
        let mut virt = disk("vda", 400);
        virt.subsystem = "virtio".into();
        let mut iscsi = disk("sde", 400);
        iscsi.iscsi = true;
        let mut src = disk("sdf", 400);
        src.protected_by = Some("PITDATA".into());
        let (ok, verdicts) = choose(
            &[
                disk("sda", 400),
                disk("sdb", 350),
                usb,
                small,
                virt,
                iscsi,
                src,
            ],
            &rules(),
        );
        let names: Vec<&str> = ok.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["sdb", "sda"]);
        assert_eq!(verdicts.len(), 7);
        assert!(verdicts
            .iter()
            .any(|(d, v)| d.name == "sdc" && v.contains("USB")));
    }

    #[test]
    fn allow_list_by_serial_and_wwn() {
        let mut a = disk("sda", 400);
        a.serial = "S1".into();
        let mut b = disk("nvme0n1", 400);
        b.subsystem = "nvme".into();
        b.wwn = "eui.0025385b71b0e5ab".into();
        let c = disk("sdc", 400);
        let r = Rules {
            min_size: 0,
            allow: vec![
                "serial:S1".parse().unwrap(),
                "wwn:0x0025385b71b0e5ab".parse().unwrap(),
                "wwn:5".parse().unwrap(),
            ],
        };
        let (ok, _) = choose(&[a, b, c], &r);
        assert_eq!(ok.len(), 2);
    }

    #[test]
    fn equal_disks_are_chosen_by_identity_not_by_kernel_name() {
        let with = |name: &str, serial: &str, wwn: &str| {
            let mut d = disk(name, 400);
            d.serial = serial.into();
            d.wwn = wwn.into();
            d
        };
        // The same three disks, named in two probe orders.
        let boot1 = [
            with("sda", "S-C", ""),
            with("sdb", "S-A", ""),
            with("sdc", "S-B", ""),
        ];
        let boot2 = [
            with("sda", "S-B", ""),
            with("sdb", "S-C", ""),
            with("sdc", "S-A", ""),
        ];
        let serials = |ds: &[Disk]| {
            let (ok, _) = choose(ds, &rules());
            ok.iter().map(|d| d.serial.clone()).collect::<Vec<_>>()
        };
        assert_eq!(serials(&boot1), ["S-A", "S-B", "S-C"]);
        assert_eq!(serials(&boot1), serials(&boot2));
        // A WWN orders before a serial, whatever its notation; size first.
        let (ok, _) = choose(
            &[
                with("sda", "S-A", "naa.5000000000000002"),
                with("sdb", "S-Z", "0x5000000000000001"),
                disk("sdc", 300),
            ],
            &rules(),
        );
        let names: Vec<&str> = ok.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["sdc", "sdb", "sda"]);
    }

    #[test]
    fn a_multipath_path_resolves_to_its_map() {
        let (d, sys) = crate::testing::temp_path("sys/class/block");
        std::fs::create_dir_all(sys.join("sda/holders/dm-0")).unwrap();
        std::fs::create_dir_all(sys.join("dm-0/dm")).unwrap();
        std::fs::write(sys.join("dm-0/dm/uuid"), "mpath-5e7c0de0\n").unwrap();
        std::fs::write(sys.join("dm-0/dm/name"), "mpatha\n").unwrap();
        std::fs::create_dir_all(sys.join("sdb/holders/dm-1")).unwrap();
        std::fs::create_dir_all(sys.join("dm-1/dm")).unwrap();
        std::fs::write(sys.join("dm-1/dm/uuid"), "CRYPT-LUKS2-x\n").unwrap();
        std::fs::write(sys.join("dm-1/dm/name"), "luks_root\n").unwrap();
        std::fs::create_dir_all(sys.join("sdc")).unwrap();
        assert_eq!(
            multipath_map_over(d.path(), "sda").as_deref(),
            Some("/dev/mapper/mpatha")
        );
        assert_eq!(multipath_map_over(d.path(), "sdb"), None);
        assert_eq!(multipath_map_over(d.path(), "sdc"), None);
    }

    #[test]
    fn partition_names() {
        assert_eq!(part_dev("sda", 2), "/dev/sda2");
        assert_eq!(part_dev("nvme0n1", 2), "/dev/nvme0n1p2");
    }
}
