//! `metalroot layout`: seed 000's RAID layout. GPT on the chosen disks, md
//! arrays BOOT, SQFS, ROOT, AUX, filesystems BOOTRAID (vfat), SQFSRAID and
//! ROOTRAID (xfs), and an empty volume group metalvg0 on AUX. On a reboot the
//! labels exist and the arrays are only assembled (degraded if need be).

use crate::args::Argv;
use crate::kinds::MdLevel;
use crate::sys::cmd::{run as sh, run_ok, run_s, settle};
use crate::sys::disks::DiskArgs;
use crate::sys::disks::{layout_present, part_dev, select_logged};
use crate::sys::notify;
use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;
use tracing::info;

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct LayoutArgs {
    #[command(flatten)]
    pub disks: DiskArgs,
    #[command(flatten)]
    pub opts: LayoutOpts,
    /// The disks were not wiped: refuse any that still carry signatures.
    #[arg(long)]
    pub no_wipe: bool,
}

/// The layout's options that come straight from the command line
/// (`Config::layout`): a new one is a field here and a row in the parameter
/// table.
#[derive(Args, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayoutOpts {
    /// RAID level of the image and overlay arrays (metal.md-level).
    #[arg(long, value_enum)]
    pub md_level: MdLevel,
    /// Size of the image array, in GB (10^9 bytes; metal.sqfs-md-size):
    /// its partition ends at this many GB from the disk's start.
    #[arg(long)]
    pub sqfs_size_gb: u64,
    /// Size of the overlay array, in GB (metal.oval-md-size).
    #[arg(long)]
    pub oval_size_gb: u64,
    /// Size of the AUX array (a stripe), in GB; 0 for none
    /// (metal.aux-md-size).
    #[arg(long)]
    pub aux_size_gb: u64,
}

impl Default for LayoutOpts {
    fn default() -> Self {
        // seed 000's defaults.
        LayoutOpts {
            md_level: MdLevel::Raid1,
            sqfs_size_gb: 25,
            oval_size_gb: 150,
            aux_size_gb: 150,
        }
    }
}

impl LayoutOpts {
    /// The partitions as dracut-metal-mdsquash makes them with `parted
    /// --align=opt`: the ESP from sector 2048 to 500 MB, then each array's
    /// partition ending at the running sum of the sizes in decimal GB
    /// (25 GB, 175 GB, 325 GB by default), every boundary on the nearest
    /// MiB. Returns (name, first MiB, end MiB) per partition.
    pub fn partitions_mib(&self) -> Vec<(&'static str, u64, u64)> {
        let mib = |bytes: u64| (bytes + (1 << 19)) >> 20;
        let gb = |n: u64| mib(n * 1_000_000_000);
        let sqfs = self.sqfs_size_gb;
        let oval = sqfs + self.oval_size_gb;
        let mut ends = vec![
            ("BOOT", mib(BOOT_MB * 1_000_000)),
            ("SQFS", gb(sqfs)),
            ("ROOT", gb(oval)),
        ];
        if self.aux_size_gb > 0 {
            ends.push(("AUX", gb(oval + self.aux_size_gb)));
        }
        let mut start = 1;
        ends.into_iter()
            .map(|(name, end)| {
                let p = (name, start, end);
                start = end;
                p
            })
            .collect()
    }

    /// Bytes each disk must have: the partitions plus the backup GPT.
    pub fn bytes_needed(&self) -> u64 {
        let end = self.partitions_mib().last().map_or(1, |p| p.2);
        (end + 1) << 20
    }

    pub(crate) fn push(&self, a: &mut Argv) {
        a.opt("md-level", self.md_level.as_mdadm());
        a.opt("sqfs-size-gb", self.sqfs_size_gb);
        a.opt("oval-size-gb", self.oval_size_gb);
        a.opt("aux-size-gb", self.aux_size_gb);
    }
}

impl LayoutArgs {
    pub fn to_argv(&self) -> Vec<String> {
        let mut a = Argv::default();
        self.disks.push(&mut a);
        self.opts.push(&mut a);
        a.flag("no-wipe", self.no_wipe);
        a.0
    }
}

/// Where the ESP (the BOOT array's partition) ends, in MB, as mdsquash's
/// `mkpart esp fat32 2048s 500MB`.
pub const BOOT_MB: u64 = 500;
pub const VG: &str = "metalvg0";

pub fn run(a: LayoutArgs) -> Result<()> {
    let d = &a.disks;
    notify::status("looking for an existing layout");
    crate::sys::disks::wait_settled(d)?;
    if layout_present(&d.sysroot_prefix, &[&d.sqfs_label, &d.oval_label]) {
        run_ok(&["lvm", "vgchange", "--activate", "y", VG]);
        settle();
        info!(
            "found LABEL={} and LABEL={}: reusing the existing layout",
            d.sqfs_label, d.oval_label
        );
        return Ok(());
    }
    let level = a.opts.md_level.as_mdadm();
    let chosen = select_logged(d)?;
    let need = a.opts.bytes_needed();
    for disk in &chosen {
        if disk.size < need {
            bail!(
                "{} has {} bytes, the layout needs {} (metal.sqfs-md-size={} metal.oval-md-size={} metal.aux-md-size={}); nothing was created",
                disk.dev(), disk.size, need, a.opts.sqfs_size_gb, a.opts.oval_size_gb, a.opts.aux_size_gb
            );
        }
        if a.no_wipe {
            let sigs = sh(&["wipefs", "--no-act", "--noheadings", &disk.dev()])?;
            if !sigs.trim().is_empty() {
                bail!(
                    "metal.no-wipe=1 and {} still holds signatures ({}); refusing to partition it",
                    disk.dev(),
                    sigs.split_whitespace().collect::<Vec<_>>().join(" ")
                );
            }
        }
    }
    info!(
        "Found the following disks for the main RAID array (qty. [{}]): [{}]",
        chosen.len(),
        chosen
            .iter()
            .map(|x| x.name.clone())
            .collect::<Vec<_>>()
            .join(" ")
    );
    if d.dry_run {
        for disk in &chosen {
            info!(
                "dry run: would partition {} (GPT: {})",
                disk.dev(),
                a.opts
                    .partitions_mib()
                    .iter()
                    .map(|(n, s, e)| format!("{n} {s}-{e} MiB"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        info!("dry run: would create md arrays BOOT, SQFS, ROOT at level {level} and AUX as a stripe, filesystems BOOTRAID, {}, {} and volume group {VG}", d.sqfs_label, d.oval_label);
        return Ok(());
    }

    notify::status("partitioning");
    let parts = a.opts.partitions_mib();
    for disk in &chosen {
        // sgdisk counts in the disk's logical sectors (512 if unknown).
        let lbs = disk.sector_size.max(512);
        let sector = |mib: u64| (mib << 20) / lbs;
        let mut argv = vec!["sgdisk".to_string(), "--clear".into()];
        for (i, (name, first, end)) in parts.iter().enumerate() {
            let n = i + 1;
            argv.push(format!("--new={n}:{}:{}", sector(*first), sector(*end) - 1));
            // mdsquash's parted makes the first an ESP; the others are
            // Linux RAID members.
            let code = if *name == "BOOT" { "EF00" } else { "FD00" };
            argv.push(format!("--typecode={n}:{code}"));
            argv.push(format!("--change-name={n}:{name}"));
        }
        argv.push(disk.dev());
        run_s(&argv)?;
        run_ok(&["partprobe", &disk.dev()]);
    }
    settle();

    for (i, (name, _, _)) in parts.iter().enumerate() {
        notify::status(&format!("creating md array {name}"));
        let members: Vec<String> = chosen
            .iter()
            .map(|x| part_dev(&x.name, i as u32 + 1))
            .collect();
        // As mdsquash: AUX is always a stripe (metalvg0 spans the disks),
        // the others take metal.md-level.
        let level = if *name == "AUX" { "stripe" } else { level };
        let mut argv: Vec<String> = vec![
            "mdadm".into(),
            "--create".into(),
            format!("/dev/md/{name}"),
            "--run".into(),
            format!("--level={level}"),
            format!("--raid-devices={}", members.len()),
            "--assume-clean".into(),
            "--homehost=any".into(),
        ];
        if *name == "BOOT" {
            // mdsquash's 0.90: metadata at the end, so firmware and vfat
            // see a plain ESP on each member. 0.90 stores no name.
            argv.push("--metadata=0.90".into());
        } else {
            argv.push("--metadata=1.2".into());
            argv.push(format!("--name={name}"));
        }
        if members.len() == 1 {
            argv.push("--force".into());
        }
        argv.extend(members);
        run_s(&argv)?;
    }
    settle();
    notify::status("creating filesystems");
    sh(&["mkfs.vfat", "-F", "32", "-n", "BOOTRAID", "/dev/md/BOOT"])?;
    sh(&["mkfs.xfs", "-f", "-L", &d.sqfs_label, "/dev/md/SQFS"])?;
    sh(&["mkfs.xfs", "-f", "-L", &d.oval_label, "/dev/md/ROOT"])?;
    if a.opts.aux_size_gb > 0 {
        sh(&["lvm", "pvcreate", "-ff", "--yes", "/dev/md/AUX"])?;
        sh(&["lvm", "vgcreate", VG, "/dev/md/AUX"])?;
    }
    settle();
    // Wait for udev to publish the new labels; the next steps look them up.
    for label in [&d.sqfs_label, &d.oval_label] {
        crate::sys::mounts::wait_for(&crate::sys::udev::by_label(label), 30)?;
    }
    info!(
        "layout created: md arrays BOOT, SQFS, ROOT{}",
        if a.opts.aux_size_gb > 0 { ", AUX" } else { "" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_as_mdsquash_parted_makes_them() {
        // Seed 000's log: BOOT 487360K (0.90 metadata on 476 MiB),
        // SQFS ends at 25 GB, ROOT at 175 GB, AUX at 325 GB.
        let p = LayoutOpts::default().partitions_mib();
        assert_eq!(
            p,
            [
                ("BOOT", 1, 477),
                ("SQFS", 477, 23842),
                ("ROOT", 23842, 166893),
                ("AUX", 166893, 309944),
            ]
        );
        // 0.90 keeps the last 64 KiB-aligned 64 KiB: 476 MiB gives the
        // seed's "size set to 487360K".
        assert_eq!(((476u64 << 20) / 65536 - 1) * 64, 487360);
        assert_eq!(LayoutOpts::default().bytes_needed(), 309945 << 20);
        let no_aux = LayoutOpts {
            aux_size_gb: 0,
            ..LayoutOpts::default()
        };
        assert_eq!(no_aux.partitions_mib().len(), 3);
    }
}
