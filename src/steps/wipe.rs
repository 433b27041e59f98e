//! `metalroot wipe`: seed 000's wipe, limited to the selected disks.
//! Order: warnings and countdown, vgremove ceph*/metal*, wipe and stop md
//! arrays, zero their members' superblocks, wipefs every disk, partprobe.

use crate::args::Argv;
use crate::steps::fetch::{FetchOpts, ImageArgs};
use crate::steps::layout::LayoutOpts;
use crate::sys::cmd::{run as sh, run_ok, settle};
use crate::sys::disks::DiskArgs;
use crate::sys::disks::{disks_under, layout_present, scan_logged};
use crate::sys::notify;
use crate::sys::preflight as check;
use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;
use std::fs;
use tracing::{info, warn};

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct WipeArgs {
    #[command(flatten)]
    pub disks: DiskArgs,
    #[command(flatten)]
    pub opts: WipeOpts,
    /// What the layout will need (the preflight checks the disks hold it).
    #[command(flatten)]
    pub layout: LayoutOpts,
    /// Where the image will come from (the preflight checks it answers).
    #[command(flatten)]
    pub src: ImageArgs,
    #[command(flatten)]
    pub fetch: FetchOpts,
    /// The LUKS key the boot will need, as a systemd credential
    /// (metal.luks.key=cred:NAME): the preflight checks it is there.
    #[arg(long)]
    pub luks_key_credential: Option<String>,
    /// The file holding the LUKS key's URL (metal.luks.key=URL): the
    /// preflight fetches the key, never showing it or the URL's secrets.
    #[arg(long)]
    pub luks_key_url_file: Option<std::path::PathBuf>,
}

/// The wipe's options that come straight from the command line
/// (`Config::wipe`): a new one is a field here and a row in the parameter
/// table.
#[derive(Args, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WipeOpts {
    /// Seconds to wait so an operator can power off (metal.wipe-delay).
    #[arg(long)]
    pub wipe_delay: u64,
    /// Wipe even when a preflight check failed (metal.wipe-anyway=1).
    #[arg(long)]
    pub wipe_anyway: bool,
    /// Keep an existing layout instead of paving it again
    /// (metal.keep-layout=1; dracut-metal-mdsquash always paves again).
    #[arg(long)]
    pub keep_layout: bool,
}

impl Default for WipeOpts {
    fn default() -> Self {
        // seed 000's default.
        WipeOpts {
            wipe_delay: 5,
            wipe_anyway: false,
            keep_layout: false,
        }
    }
}

impl WipeArgs {
    pub fn to_argv(&self) -> Vec<String> {
        let mut a = Argv::default();
        self.disks.push(&mut a);
        a.opt("wipe-delay", self.opts.wipe_delay);
        a.flag("wipe-anyway", self.opts.wipe_anyway);
        a.flag("keep-layout", self.opts.keep_layout);
        self.layout.push(&mut a);
        self.src.push(&mut a);
        self.fetch.push(&mut a);
        a.opt_if("luks-key-credential", self.luks_key_credential.as_ref());
        a.path("luks-key-url-file", self.luks_key_url_file.as_deref());
        a.0
    }
}

const DOC: &str = "https://github.com/Cray-HPE/dracut-metal-mdsquash";

pub fn run(a: WipeArgs) -> Result<()> {
    let d = &a.disks;
    crate::sys::disks::wait_settled(d)?;
    if layout_present(&d.sysroot_prefix, &[&d.sqfs_label, &d.oval_label]) {
        if a.opts.keep_layout {
            info!(
                "found LABEL={} and LABEL={}: an existing layout, nothing is wiped (metal.keep-layout=1)",
                d.sqfs_label, d.oval_label
            );
            return Ok(());
        }
        warn!(
            "found LABEL={} and LABEL={}: an existing layout; metal.no-wipe=0 wipes and paves it again, as dracut-metal-mdsquash does (metal.keep-layout=1 keeps it)",
            d.sqfs_label, d.oval_label
        );
    }
    let disks = scan_logged(d)?;
    preflight(&a, &disks)?;
    let names: Vec<String> = disks.iter().map(|x| x.name.clone()).collect();
    let arrays = arrays_on(&d.sysroot_prefix, &names);
    let vgs = volume_groups_on(&d.sysroot_prefix, &names);

    warn!("Warning: local storage device wipe [ safeguard: DISABLED ]");
    warn!("Warning: local storage devices WILL be wiped ({DOC}#metalno-wipe)");
    warn!("Warning: local storage device wipe commencing ...");
    warn!(
        "Warning: local storage device wipe ignores USB devices and block devices less then or equal to [{}] bytes.",
        d.min_disk_size_gib << 30
    );
    warn!(
        "Warning: local storage device wipe is targeting the following RAID(s): [{}]",
        arrays
            .iter()
            .map(|(m, _)| format!("/dev/{m}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    warn!(
        "Warning: local storage device wipe is targeting the following block devices: [{}]",
        disks.iter().map(|x| x.dev()).collect::<Vec<_>>().join(" ")
    );
    warn!(
        "Warning: volume groups to remove (vg_name=~ceph*, vg_name=~metal*): [{}]",
        vgs.join(" ")
    );
    if d.dry_run {
        info!("dry run (metal.dry-run=1): nothing was wiped");
        return Ok(());
    }
    warn!("Warning: nothing can be done to stop this except one one thing ...");
    warn!(
        "Warning: power this node off within the next [{}] seconds to cancel.",
        a.opts.wipe_delay
    );
    warn!("Warning: NOTE: this delay can be adjusted, see: {DOC}#metalwipe-delay)");
    for left in (1..=a.opts.wipe_delay).rev() {
        notify::status(&format!(
            "wiping local disks in {left} s (power off to cancel)"
        ));
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    notify::status("wiping local disks");

    for vg in &vgs {
        warn!("Warning: removing volume group [{vg}]");
        sh(&["lvm", "vgremove", "--force", "--yes", vg])?;
    }
    for (md, members) in &arrays {
        let dev = format!("/dev/{md}");
        run_ok(&["wipefs", "--all", "--force", &dev]);
        sh(&["mdadm", "--stop", &dev])?;
        for m in members {
            sh(&["mdadm", "--zero-superblock", &format!("/dev/{m}")])?;
        }
    }
    for disk in &disks {
        for p in crate::sys::disks::partitions(&d.sysroot_prefix, &disk.name) {
            sh(&["wipefs", "--all", "--force", &format!("/dev/{p}")])?;
        }
        sh(&["wipefs", "--all", "--force", &disk.dev()])?;
    }
    for disk in &disks {
        // partprobe fails on a disk with no partition table left: expected.
        run_ok(&["partprobe", &disk.dev()]);
    }
    settle();
    warn!("Warning: local storage disk wipe complete");
    Ok(())
}

/// Everything that can fail, checked before anything is destroyed: the
/// disks the layout will take hold it, the tools are here, the image
/// answers. One line per failed check; a dry run only reports them, and
/// metal.wipe-anyway=1 wipes regardless.
fn preflight(a: &WipeArgs, eligible: &[crate::sys::disks::Disk]) -> Result<()> {
    notify::status("preflight: checking disks, tools and the image before wiping");
    let mut failed = check::local(eligible, a.disks.disks, &a.layout);
    if !a.src.sources.is_empty() || !a.src.source_files.is_empty() {
        failed.extend(check::image(&a.src, &a.fetch, !a.disks.dry_run));
    }
    if let Some(name) = &a.luks_key_credential {
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(std::path::PathBuf::from);
        failed.extend(check::luks_credential(dir.as_deref(), name));
    }
    if let Some(file) = &a.luks_key_url_file {
        failed.extend(check::luks_key_url(file, &a.fetch));
    }
    if failed.is_empty() {
        info!("preflight passed: disks, tools, image and LUKS key");
        return Ok(());
    }
    for f in &failed {
        warn!("preflight failed: {f}");
    }
    if a.disks.dry_run {
        info!("dry run: the wipe would stop here, nothing wiped");
        return Ok(());
    }
    if a.opts.wipe_anyway {
        warn!("metal.wipe-anyway=1: wiping although the preflight failed");
        return Ok(());
    }
    bail!(
        "preflight failed, nothing was wiped ({} check(s); metal.wipe-anyway=1 wipes regardless): {}",
        failed.len(),
        failed.join("; ")
    )
}

/// md arrays all of whose members are on the selected disks, with members.
fn arrays_on(prefix: &std::path::Path, disks: &[String]) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(prefix.join("sys/block")) else {
        return out;
    };
    let mut names: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("md"))
        .collect();
    names.sort();
    for md in names {
        let members: Vec<String> = fs::read_dir(prefix.join("sys/block").join(&md).join("slaves"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let under: Vec<String> = disks_under(prefix, &md);
        if !members.is_empty() && under.iter().all(|u| disks.contains(u)) {
            out.push((md, members));
        }
    }
    out
}

/// Volume groups named ceph* or metal* whose PVs all sit on selected disks.
fn volume_groups_on(prefix: &std::path::Path, disks: &[String]) -> Vec<String> {
    let Ok(out) = sh(&[
        "lvm",
        "pvs",
        "--noheadings",
        "--separator",
        ",",
        "-o",
        "vg_name,pv_name",
    ]) else {
        return Vec::new();
    };
    let mut by_vg: std::collections::BTreeMap<String, bool> = Default::default();
    for line in out.lines() {
        let Some((vg, pv)) = line.trim().split_once(',') else {
            continue;
        };
        if !(vg.starts_with("ceph") || vg.starts_with("metal")) {
            continue;
        }
        let name = fs::canonicalize(pv)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
            .unwrap_or_default();
        let inside =
            !name.is_empty() && disks_under(prefix, &name).iter().all(|d| disks.contains(d));
        let e = by_vg.entry(vg.to_string()).or_insert(true);
        *e = *e && inside;
    }
    by_vg
        .into_iter()
        .filter(|(_, ok)| *ok)
        .map(|(vg, _)| vg)
        .collect()
}
