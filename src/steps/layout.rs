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
    /// Size of the image array, in GiB (metal.sqfs-md-size).
    #[arg(long)]
    pub sqfs_size_gb: u64,
    /// Size of the overlay array, in GiB (metal.oval-md-size).
    #[arg(long)]
    pub oval_size_gb: u64,
    /// Size of the AUX array, in GiB; 0 for none (metal.aux-md-size).
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
    /// Bytes each disk must have: the partitions plus GPT's own.
    pub fn bytes_needed(&self) -> u64 {
        (BOOT_MIB << 20)
            + ((self.sqfs_size_gb + self.oval_size_gb + self.aux_size_gb) << 30)
            + (16 << 20)
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

pub const BOOT_MIB: u64 = 500;
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
    let all = select_logged(d)?;
    let chosen: Vec<_> = all.into_iter().take(d.disks as usize).collect();
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
                "dry run: would partition {} (GPT: BOOT {BOOT_MIB} MiB, SQFS {} GB, ROOT {} GB, AUX {} GB)",
                disk.dev(), a.opts.sqfs_size_gb, a.opts.oval_size_gb, a.opts.aux_size_gb
            );
        }
        info!("dry run: would create md arrays BOOT, SQFS, ROOT, AUX at level {level}, filesystems BOOTRAID, {}, {} and volume group {VG}", d.sqfs_label, d.oval_label);
        return Ok(());
    }

    notify::status("partitioning");
    let mut parts = vec![
        ("BOOT", format!("+{BOOT_MIB}M")),
        ("SQFS", format!("+{}G", a.opts.sqfs_size_gb)),
        ("ROOT", format!("+{}G", a.opts.oval_size_gb)),
    ];
    if a.opts.aux_size_gb > 0 {
        parts.push(("AUX", format!("+{}G", a.opts.aux_size_gb)));
    }
    for disk in &chosen {
        let mut argv = vec!["sgdisk".to_string(), "--clear".into()];
        for (i, (name, size)) in parts.iter().enumerate() {
            let n = i + 1;
            argv.push(format!("--new={n}:0:{size}"));
            argv.push(format!("--typecode={n}:FD00"));
            argv.push(format!("--change-name={n}:{name}"));
        }
        argv.push(disk.dev());
        run_s(&argv)?;
        run_ok(&["partprobe", &disk.dev()]);
    }
    settle();

    for (i, (name, _)) in parts.iter().enumerate() {
        notify::status(&format!("creating md array {name}"));
        let members: Vec<String> = chosen
            .iter()
            .map(|x| part_dev(&x.name, i as u32 + 1))
            .collect();
        let mut argv: Vec<String> = vec![
            "mdadm".into(),
            "--create".into(),
            format!("/dev/md/{name}"),
            "--run".into(),
            format!("--level={level}"),
            format!("--raid-devices={}", members.len()),
            // vfat must see its superblock at the start: metadata at the end.
            format!("--metadata={}", if *name == "BOOT" { "1.0" } else { "1.2" }),
            "--assume-clean".into(),
            "--homehost=any".into(),
            format!("--name={name}"),
        ];
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
