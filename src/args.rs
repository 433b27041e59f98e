//! The arguments of each step: one struct per step, built by the plan from
//! the typed `Config`, written into ExecStart= by `to_argv()` and read back
//! by the step's clap parser. The argv stays explicit so `systemctl cat`
//! shows exactly what runs.

use crate::kinds::{
    DevSpec, DiskId, ImageSource, MdLevel, RamMode, Size, Upper, DEFAULT_FETCH_TIMEOUT,
    DEFAULT_LIVE_DIR, DEFAULT_OVERLAY_SIZE_MIB, DEFAULT_SQUASHIMG,
};
use clap::Args;
use std::fmt::Display;
use std::path::{Path, PathBuf};

/// The step binary every unit runs.
pub const BIN: &str = "/usr/bin/metalroot";
/// Where the root is assembled and handed over from.
pub const SYSROOT: &str = "/sysroot";
/// The luks-open step's `--timeout` when none is given.
const DEFAULT_KEY_TIMEOUT: u64 = 300;
const DEFAULT_DEVICE_TIMEOUT: u64 = 90;

/// Appends `--flag value` pairs in the order the step's page lists them.
#[derive(Default)]
pub struct Argv(pub Vec<String>);

impl Argv {
    pub(crate) fn flag(&mut self, name: &str, on: bool) {
        if on {
            self.0.push(format!("--{name}"));
        }
    }
    pub(crate) fn opt(&mut self, name: &str, v: impl Display) {
        self.0.push(format!("--{name}"));
        self.0.push(v.to_string());
    }
    pub(crate) fn opt_if<T: Display>(&mut self, name: &str, v: Option<T>) {
        if let Some(v) = v {
            self.opt(name, v);
        }
    }
    pub(crate) fn each<T: Display>(&mut self, name: &str, vs: impl IntoIterator<Item = T>) {
        for v in vs {
            self.opt(name, v);
        }
    }
    pub(crate) fn path(&mut self, name: &str, p: Option<&Path>) {
        self.opt_if(name, p.map(Path::display));
    }
}

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
    fn push(&self, a: &mut Argv) {
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

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct WipeArgs {
    #[command(flatten)]
    pub disks: DiskArgs,
    /// Seconds to wait so an operator can power off (metal.wipe-delay).
    #[arg(long)]
    pub wipe_delay: u64,
}

impl WipeArgs {
    pub fn to_argv(&self) -> Vec<String> {
        let mut a = Argv::default();
        self.disks.push(&mut a);
        a.opt("wipe-delay", self.wipe_delay);
        a.0
    }
}

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct LayoutArgs {
    #[command(flatten)]
    pub disks: DiskArgs,
    #[arg(long, value_enum)]
    pub md_level: MdLevel,
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

impl LayoutArgs {
    pub fn to_argv(&self) -> Vec<String> {
        let mut a = Argv::default();
        self.disks.push(&mut a);
        a.opt("md-level", self.md_level.as_mdadm());
        a.opt("sqfs-size-gb", self.sqfs_size_gb);
        a.opt("oval-size-gb", self.oval_size_gb);
        a.opt("aux-size-gb", self.aux_size_gb);
        a.flag("no-wipe", self.no_wipe);
        a.0
    }
}

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct FetchArgs {
    /// Image server, tried in order (metal.server).
    #[arg(long = "source")]
    pub sources: Vec<ImageSource>,
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
    #[arg(long, default_value = DEFAULT_LIVE_DIR)]
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
    #[arg(long, default_value_t = DEFAULT_FETCH_TIMEOUT)]
    pub timeout: u64,
    /// The order of `--source` and `--source-file` on the command line,
    /// which clap's two lists lose (`Cli::try_parse_ordered` fills it).
    #[arg(skip)]
    pub order: Vec<SourceKind>,
}

/// Which of fetch's two source lists a source is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Url,
    File,
}

impl FetchArgs {
    pub fn to_argv(&self) -> Vec<String> {
        let mut a = Argv::default();
        let (mut urls, mut files) = (self.sources.iter(), self.source_files.iter());
        // Sources in their order; any the order does not cover after it.
        for k in &self.order {
            match k {
                SourceKind::Url => a.each("source", urls.next()),
                SourceKind::File => a.each("source-file", files.next().map(|p| p.display())),
            }
        }
        a.each("source", urls);
        a.each("source-file", files.map(|p| p.display()));
        a.opt("image", &self.image);
        a.flag("exact-url", self.exact_url);
        a.path("dest-file", self.dest_file.as_deref());
        if let Some(l) = &self.dest_label {
            // The directory matters only on a labelled filesystem.
            a.opt("dest-label", l);
            a.path("mount", self.mount.as_deref());
            a.opt("dir", &self.dir);
        }
        a.opt_if("sha256", self.sha256.as_ref());
        a.path("ca", self.ca.as_deref());
        a.flag("ipv4", self.ipv4);
        a.opt("timeout", self.timeout);
        a.0
    }
}

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct SysrootArgs {
    #[arg(long)]
    pub live_device: Option<DevSpec>,
    #[arg(long, default_value = DEFAULT_LIVE_DIR)]
    pub live_dir: String,
    #[arg(long, default_value = DEFAULT_SQUASHIMG)]
    pub image: String,
    /// The squashfs image file (already in RAM).
    #[arg(long)]
    pub image_file: Option<PathBuf>,
    /// Copy the image to RAM first (rd.live.ram=1).
    #[arg(long)]
    pub copy_to_ram: bool,
    /// Boot-to-RAM mode: copy, squashfs or overlay (metal.ram).
    #[arg(long, value_enum)]
    pub ram: Option<RamMode>,
    #[arg(long)]
    pub overlay_device: Option<DevSpec>,
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
    #[arg(long, value_enum)]
    pub upper: Option<Upper>,
    #[arg(long)]
    pub zram_size: Option<Size>,
    #[arg(long)]
    pub zram_comp: Option<String>,
    #[arg(long)]
    pub zram_fs: Option<String>,
    #[arg(long, default_value_t = DEFAULT_OVERLAY_SIZE_MIB)]
    pub tmpfs_size_mib: u64,
    /// Lower device of / (seed 001).
    #[arg(long)]
    pub lower_device: Option<DevSpec>,
    /// Lower device of /var (seed 001).
    #[arg(long)]
    pub var_lower_device: Option<DevSpec>,
    /// The root is a whole iSCSI LUN of this target.
    #[arg(long)]
    pub iscsi_lun: Option<String>,
    #[arg(long, default_value_t = 0)]
    pub lun: u32,
    /// Where to mount the root.
    #[arg(long, default_value = SYSROOT)]
    pub target: PathBuf,
    /// Seconds to wait for a device to appear.
    #[arg(long, default_value_t = DEFAULT_DEVICE_TIMEOUT)]
    pub device_timeout: u64,
}

impl Default for SysrootArgs {
    fn default() -> Self {
        SysrootArgs {
            live_device: None,
            live_dir: DEFAULT_LIVE_DIR.to_string(),
            image: DEFAULT_SQUASHIMG.to_string(),
            image_file: None,
            copy_to_ram: false,
            ram: None,
            overlay_device: None,
            overlay_path: None,
            overlay_reset: false,
            overlay_readonly: false,
            overlayfs: false,
            no_overlay: false,
            upper: None,
            zram_size: None,
            zram_comp: None,
            zram_fs: None,
            tmpfs_size_mib: DEFAULT_OVERLAY_SIZE_MIB,
            lower_device: None,
            var_lower_device: None,
            iscsi_lun: None,
            lun: 0,
            target: PathBuf::from(SYSROOT),
            device_timeout: DEFAULT_DEVICE_TIMEOUT,
        }
    }
}

impl SysrootArgs {
    /// Boot-to-RAM copy and squashfs have no upper layer to size.
    pub fn has_tmpfs_upper(&self) -> bool {
        !matches!(self.ram, Some(RamMode::Copy | RamMode::Squashfs))
    }

    pub fn to_argv(&self) -> Vec<String> {
        let mut a = Argv::default();
        a.opt_if("lower-device", self.lower_device.as_ref());
        a.opt_if("var-lower-device", self.var_lower_device.as_ref());
        if let Some(d) = &self.live_device {
            // Explicit even at their defaults: `systemctl cat` shows the file.
            a.opt("live-device", d);
            a.opt("live-dir", &self.live_dir);
            a.opt("image", &self.image);
        }
        a.flag("copy-to-ram", self.copy_to_ram);
        if let Some(t) = &self.iscsi_lun {
            a.opt("iscsi-lun", t);
            a.opt("lun", self.lun);
        }
        a.path("image-file", self.image_file.as_deref());
        a.opt_if("ram", self.ram.map(RamMode::as_arg));
        a.opt_if("overlay-device", self.overlay_device.as_ref());
        a.opt_if("overlay-path", self.overlay_path.as_ref());
        a.flag("overlay-reset", self.overlay_reset);
        a.flag("overlay-readonly", self.overlay_readonly);
        a.flag("no-overlay", self.no_overlay);
        a.opt_if("upper", self.upper.map(Upper::as_arg));
        a.opt_if("zram-size", self.zram_size.as_ref());
        a.opt_if("zram-comp", self.zram_comp.as_ref());
        a.opt_if("zram-fs", self.zram_fs.as_ref());
        a.flag("overlayfs", self.overlayfs);
        if self.has_tmpfs_upper() {
            a.opt("tmpfs-size-mib", self.tmpfs_size_mib);
        }
        if self.target != Path::new(SYSROOT) {
            a.opt("target", self.target.display());
        }
        if self.device_timeout != DEFAULT_DEVICE_TIMEOUT {
            a.opt("device-timeout", self.device_timeout);
        }
        a.0
    }
}

#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
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

impl IscsiArgs {
    pub fn to_argv(&self) -> Vec<String> {
        let mut a = Argv::default();
        a.flag("firmware", self.firmware);
        a.opt_if("initiator", self.initiator.as_ref());
        a.opt_if("retries", self.retries);
        a.each("param", &self.params);
        a.opt_if("portal", self.portal.as_ref());
        a.each("discover", &self.discover);
        a.path("discovery-auth-file", self.discovery_auth_file.as_deref());
        a.opt_if("group", self.group);
        a.opt_if("iface", self.iface.as_ref());
        if let Some(t) = &self.target {
            a.opt("target", t);
            a.opt("lun", self.lun);
        }
        a.path("auth-file", self.auth_file.as_deref());
        a.0
    }
}

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct MultipathArgs {}

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct LuksArgs {
    #[arg(long)]
    pub device: DevSpec,
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
    #[arg(long, default_value_t = DEFAULT_KEY_TIMEOUT)]
    pub timeout: u64,
}

impl LuksArgs {
    /// Arguments for `device` unlocked as `name`; the key is added after.
    pub fn new(device: DevSpec, name: String) -> LuksArgs {
        LuksArgs {
            device,
            name,
            key_credential: None,
            key_url_file: None,
            ca: None,
            ipv4: false,
            timeout: DEFAULT_KEY_TIMEOUT,
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
            a.path("ca", self.ca.as_deref());
            a.flag("ipv4", self.ipv4);
            a.opt("timeout", self.timeout);
        }
        a.0
    }
}

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct LvmArgs {
    #[arg(long)]
    pub readonly: bool,
    #[arg(long)]
    pub device: Option<String>,
}

impl LvmArgs {
    pub fn to_argv(&self) -> Vec<String> {
        let mut a = Argv::default();
        a.flag("readonly", self.readonly);
        a.opt_if("device", self.device.as_ref());
        a.0
    }
}

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct HandoverArgs {
    #[arg(long, default_value = SYSROOT)]
    pub root: PathBuf,
    /// Write fstab entries for the seed-000 arrays.
    #[arg(long)]
    pub metal_arrays: bool,
    #[arg(long)]
    pub iscsi: bool,
    #[arg(long)]
    pub multipath: bool,
}

impl HandoverArgs {
    pub fn to_argv(&self) -> Vec<String> {
        let mut a = Argv::default();
        // Explicit even at the default, for `systemctl cat`.
        a.opt("root", self.root.display());
        a.flag("metal-arrays", self.metal_arrays);
        a.flag("iscsi", self.iscsi);
        a.flag("multipath", self.multipath);
        a.0
    }
}
