//! The command line of the `metalroot` binary: one subcommand per step.
//! The generator writes these arguments into ExecStart=, so `systemctl cat`
//! shows exactly what runs and an operator can re-run a step by hand.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "metalroot",
    version,
    about = "Prepares a server's root filesystem from inside a systemd initrd"
)]
pub struct Cli {
    /// Log metalroot's own debug lines (metal.debug=1).
    #[arg(long, global = true)]
    pub debug: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Print the plan for a command line, touching nothing.
    Plan(PlanArgs),
    /// Stop the boot with a message (used for an invalid command line).
    Fail { message: String },
    /// Wipe the selected local disks (seed 000).
    Wipe(WipeArgs),
    /// Build or assemble the RAID layout (seed 000).
    Layout(LayoutArgs),
    /// Fetch and verify the root image.
    Fetch(FetchArgs),
    /// Assemble the root filesystem at /sysroot.
    Sysroot(SysrootArgs),
    /// Log in to an iSCSI target.
    IscsiLogin(IscsiArgs),
    /// Start multipathd over the iSCSI paths.
    Multipath(MultipathArgs),
    /// Unlock a LUKS device with systemd-cryptsetup.
    LuksOpen(LuksArgs),
    /// Probe partitions and activate LVM.
    LvmActivate(LvmArgs),
    /// Hand the assembled system over to the real root.
    Handover(HandoverArgs),
    /// A shell before switch-root; leaving it continues the boot.
    Trap,
    /// For the emergency shell: every metalroot unit, its state, its last
    /// status line and error, and the plan (asks systemd over D-Bus).
    Status(StatusArgs),
}

impl Cmd {
    /// The step's name, as in `METALROOT_STEP=` and the unit name.
    pub fn name(&self) -> &'static str {
        match self {
            Cmd::Plan(_) => "plan",
            Cmd::Fail { .. } => "fail",
            Cmd::Wipe(_) => "wipe",
            Cmd::Layout(_) => "layout",
            Cmd::Fetch(_) => "fetch",
            Cmd::Sysroot(_) => "sysroot",
            Cmd::IscsiLogin(_) => "iscsi-login",
            Cmd::Multipath(_) => "multipath",
            Cmd::LuksOpen(_) => "luks-open",
            Cmd::LvmActivate(_) => "lvm-activate",
            Cmd::Handover(_) => "handover",
            Cmd::Trap => "trap",
            Cmd::Status(_) => "status",
        }
    }
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The command line to plan for (default: /proc/cmdline).
    #[arg(long)]
    pub cmdline: Option<String>,
    /// Site defaults (default: /etc/metalroot.conf if present).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also scan this machine's disks and say, for each, whether the plan
    /// would wipe it, partition it or keep it, and why (reads sysfs only).
    #[arg(long)]
    pub scan_disks: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Leave out the plan.
    #[arg(long)]
    pub no_plan: bool,
    /// Do not run journalctl for the failed units' error lines.
    #[arg(long)]
    pub no_journal: bool,
}

#[derive(Args, Debug, Clone)]
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
    pub allow: Vec<String>,
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

#[derive(Args, Debug)]
pub struct WipeArgs {
    #[command(flatten)]
    pub disks: DiskArgs,
    /// Seconds to wait so an operator can power off (metal.wipe-delay).
    #[arg(long)]
    pub wipe_delay: u64,
}

#[derive(Args, Debug)]
pub struct LayoutArgs {
    #[command(flatten)]
    pub disks: DiskArgs,
    #[arg(long)]
    pub md_level: String,
    #[arg(long)]
    pub sqfs_size_gb: u64,
    #[arg(long)]
    pub oval_size_gb: u64,
    #[arg(long)]
    pub aux_size_gb: u64,
    /// The disks were not wiped: refuse any that still carry signatures.
    #[arg(long)]
    pub no_wipe: bool,
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// Image server, tried in order (metal.server).
    #[arg(long = "source")]
    pub sources: Vec<String>,
    /// A file holding a source URL with a password (0600, under /run).
    #[arg(long = "source-file")]
    pub source_files: Vec<PathBuf>,
    /// Image file name (rd.live.squashimg).
    #[arg(long)]
    pub image: String,
    /// The source URL is the image itself (root=live:<url>).
    #[arg(long)]
    pub exact_url: bool,
    /// Store the image in this file (RAM).
    #[arg(long, conflicts_with = "dest_label")]
    pub dest_file: Option<PathBuf>,
    /// Store the image on the filesystem with this label.
    #[arg(long, requires = "mount")]
    pub dest_label: Option<String>,
    #[arg(long)]
    pub mount: Option<PathBuf>,
    /// Directory on that filesystem (rd.live.dir).
    #[arg(long, default_value = "LiveOS")]
    pub dir: String,
    /// Expected SHA-256 (metal.sha256); else the server's <image>.sha256.
    #[arg(long)]
    pub sha256: Option<String>,
    /// Extra CA certificate file for https (metal.ca).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Resolve and connect over IPv4 only (metal.ipv4=1).
    #[arg(long)]
    pub ipv4: bool,
    /// Give up after this many seconds in all.
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
}

#[derive(Args, Debug)]
pub struct SysrootArgs {
    #[arg(long)]
    pub live_device: Option<String>,
    #[arg(long, default_value = "LiveOS")]
    pub live_dir: String,
    #[arg(long, default_value = "squashfs.img")]
    pub image: String,
    /// The squashfs image file (already in RAM).
    #[arg(long)]
    pub image_file: Option<PathBuf>,
    /// Copy the image to RAM first (rd.live.ram=1).
    #[arg(long)]
    pub copy_to_ram: bool,
    /// Boot-to-RAM mode: copy, squashfs or overlay (metal.ram).
    #[arg(long)]
    pub ram: Option<String>,
    #[arg(long)]
    pub overlay_device: Option<String>,
    #[arg(long)]
    pub overlay_path: Option<String>,
    #[arg(long)]
    pub overlay_reset: bool,
    #[arg(long)]
    pub overlay_readonly: bool,
    /// OverlayFS even for an image that carries LiveOS/rootfs.img, which
    /// otherwise becomes a device-mapper snapshot (rd.live.overlay.overlayfs).
    #[arg(long)]
    pub overlayfs: bool,
    #[arg(long)]
    pub no_overlay: bool,
    /// tmpfs or zram upper layer (metal.overlay).
    #[arg(long)]
    pub upper: Option<String>,
    #[arg(long)]
    pub zram_size: Option<String>,
    #[arg(long)]
    pub zram_comp: Option<String>,
    #[arg(long)]
    pub zram_fs: Option<String>,
    #[arg(long, default_value_t = 32768)]
    pub tmpfs_size_mib: u64,
    /// Lower device of / (seed 001).
    #[arg(long)]
    pub lower_device: Option<String>,
    /// Lower device of /var (seed 001).
    #[arg(long)]
    pub var_lower_device: Option<String>,
    /// The root is a whole iSCSI LUN of this target.
    #[arg(long)]
    pub iscsi_lun: Option<String>,
    #[arg(long, default_value_t = 0)]
    pub lun: u32,
    /// Where to mount the root.
    #[arg(long, default_value = "/sysroot")]
    pub target: PathBuf,
    /// Seconds to wait for a device to appear.
    #[arg(long, default_value_t = 90)]
    pub device_timeout: u64,
}

#[derive(Args, Debug)]
pub struct IscsiArgs {
    /// Log in with the firmware's iBFT table.
    #[arg(long)]
    pub firmware: bool,
    #[arg(long)]
    pub initiator: Option<String>,
    #[arg(long)]
    pub retries: Option<u64>,
    #[arg(long = "param")]
    pub params: Vec<String>,
    #[arg(long)]
    pub portal: Option<String>,
    #[arg(long = "discover")]
    pub discover: Vec<String>,
    #[arg(long)]
    pub discovery_auth_file: Option<PathBuf>,
    #[arg(long)]
    pub group: Option<u32>,
    #[arg(long)]
    pub iface: Option<String>,
    #[arg(long)]
    pub target: Option<String>,
    #[arg(long, default_value_t = 0)]
    pub lun: u32,
    /// CHAP credentials (0600 file of key=value lines).
    #[arg(long)]
    pub auth_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct MultipathArgs {}

#[derive(Args, Debug)]
pub struct LuksArgs {
    #[arg(long)]
    pub device: String,
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub key_credential: Option<String>,
    #[arg(long)]
    pub key_url_file: Option<PathBuf>,
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Resolve and connect over IPv4 only (metal.ipv4=1).
    #[arg(long)]
    pub ipv4: bool,
    /// Seconds to keep retrying the key's URL (metal.fetch-timeout).
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

#[derive(Args, Debug)]
pub struct LvmArgs {
    #[arg(long)]
    pub readonly: bool,
    #[arg(long)]
    pub device: Option<String>,
}

#[derive(Args, Debug)]
pub struct HandoverArgs {
    #[arg(long, default_value = "/sysroot")]
    pub root: PathBuf,
    /// Write fstab entries for the seed-000 arrays.
    #[arg(long)]
    pub metal_arrays: bool,
    #[arg(long)]
    pub iscsi: bool,
    #[arg(long)]
    pub multipath: bool,
}
