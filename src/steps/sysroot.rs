//! `metalroot sysroot`: the squashfs (or a lower device) plus an upper layer,
//! mounted as OverlayFS at /sysroot, in dracut dmsquash-live's layout:
//! the live medium at /run/initramfs/live, the base at /run/rootfsbase, and
//! /run/overlayfs, /run/ovlwork pointing at the upper and work directories.

use crate::args::{Argv, SYSROOT};
use crate::kinds::{
    RamMode, Size, Upper, ZramComp, ZramFs, DEFAULT_LIVE_DIR, DEFAULT_OVERLAY_SIZE_MIB,
    DEFAULT_SQUASHIMG, DEFAULT_ZRAM_FS, DEFAULT_ZRAM_SIZE, RAM_IMAGE,
};
use crate::sys::cmd::run as sh;
use crate::sys::mounts::{is_mountpoint, loop_attach, mount_dev, mount_fs, wait_for};
use crate::sys::systemd::WaitOpts;
use crate::sys::{loopdev, notify};
use crate::values::DevSpec;
use anyhow::{bail, Context, Result};
use clap::Args;
use nix::mount::MsFlags;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use tracing::info;

const DEFAULT_DEVICE_TIMEOUT: u64 = 90;

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct SysrootArgs {
    // The image.
    /// The live medium holding <live-dir>/<image> (root=live:).
    #[arg(long)]
    pub live_device: Option<DevSpec>,
    /// Directory of the image on the live medium (rd.live.dir).
    #[arg(long, default_value = DEFAULT_LIVE_DIR)]
    pub live_dir: String,
    /// File name of the squashfs image (rd.live.squashimg).
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
    // Where.
    /// Where to mount the root.
    #[arg(long, default_value = SYSROOT)]
    pub target: PathBuf,
    /// Seconds to wait for a device to appear.
    #[arg(long, default_value_t = DEFAULT_DEVICE_TIMEOUT)]
    pub device_timeout: u64,
    #[command(flatten)]
    pub wait: WaitOpts,
    // A persistent overlay, or none.
    /// Persistent overlay device (rd.live.overlay=<devspec>).
    #[arg(long)]
    pub overlay_device: Option<DevSpec>,
    /// Overlay directory or file on --overlay-device (rd.live.overlay=…:<path>).
    #[arg(long)]
    pub overlay_path: Option<String>,
    /// OverlayFS even for an image that carries LiveOS/rootfs.img, which
    /// otherwise becomes a device-mapper snapshot (rd.live.overlay.overlayfs).
    #[arg(long)]
    pub overlayfs: bool,
    /// No upper layer: the root is the read-only image (rd.live.overlay=none).
    #[arg(long)]
    pub no_overlay: bool,
    /// Empty the persistent overlay first (rd.live.overlay.reset).
    #[arg(long)]
    pub overlay_reset: bool,
    /// Mount the persistent overlay read-only (rd.live.overlay.readonly).
    #[arg(long)]
    pub overlay_readonly: bool,
    // A root that is not an image.
    /// The root is a whole iSCSI LUN of this target.
    #[arg(long)]
    pub iscsi_lun: Option<String>,
    /// The LUN of --iscsi-lun.
    #[arg(long, default_value_t = 0)]
    pub lun: u32,
    // The upper layer.
    /// tmpfs or zram upper layer (metal.overlay).
    #[arg(long, value_enum)]
    pub upper: Option<Upper>,
    /// Size of a tmpfs upper layer, in MiB (rd.live.overlay.size).
    #[arg(long, default_value_t = DEFAULT_OVERLAY_SIZE_MIB)]
    pub tmpfs_size_mib: u64,
    /// Size of the zram device: N[KMGT] or N% of RAM (metal.zram-size).
    #[arg(long)]
    pub zram_size: Option<Size>,
    /// Compression of the zram device (metal.zram-comp).
    #[arg(long)]
    pub zram_comp: Option<ZramComp>,
    /// Filesystem on the zram device (metal.zram-fs).
    #[arg(long, value_enum)]
    pub zram_fs: Option<ZramFs>,
    // Lower devices (seed 001).
    /// Lower device of / (seed 001).
    #[arg(long)]
    pub lower_device: Option<DevSpec>,
    /// Lower device of /var (seed 001), with --lower-device.
    #[arg(long)]
    pub var_lower_device: Option<DevSpec>,
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
            wait: WaitOpts::default(),
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
        a.opt_if("zram-fs", self.zram_fs.map(ZramFs::as_arg));
        a.flag("overlayfs", self.overlayfs);
        if self.has_tmpfs_upper() {
            a.opt("tmpfs-size-mib", self.tmpfs_size_mib);
        }
        if self.target != Path::new(SYSROOT) {
            a.opt("target", self.target.display());
        }
        self.wait.push(&mut a);
        if self.device_timeout != DEFAULT_DEVICE_TIMEOUT {
            a.opt("device-timeout", self.device_timeout);
        }
        a.0
    }
}

const LIVE: &str = crate::kinds::LIVE_MNT;
const BASE: &str = "/run/rootfsbase";
/// Where dracut mounts a squashfs that carries a filesystem image.
const SQUASHFS: &str = "/run/initramfs/squashfs";
/// The root filesystem images live media carry inside the squashfs, as
/// dracut looks for them (ext3fs.img on older Fedora and oVirt Node media).
const FS_IMAGES: &[&str] = &["LiveOS/rootfs.img", "LiveOS/ext3fs.img"];
/// dracut's name for the device-mapper snapshot that is the root.
const LIVE_RW: &str = "live-rw";

fn blkid(dev: &str, tag: &str) -> String {
    sh(&["blkid", "-s", tag, "-o", "value", dev])
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn mem_available() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// Refuses a copy into RAM that would not fit, instead of an OOM kill.
fn check_fits(what: &str, bytes: u64) -> Result<()> {
    let avail = mem_available();
    // Keep a quarter of what is free for the rest of the boot.
    if bytes > avail / 4 * 3 {
        bail!(
            "{what} needs {bytes} bytes of RAM but only {avail} bytes are available; not copying"
        );
    }
    Ok(())
}

fn copy_to_ram(image: &Path) -> Result<PathBuf> {
    let size = fs::metadata(image)
        .with_context(|| format!("stat {}", image.display()))?
        .len();
    check_fits(&format!("copying {} to RAM", image.display()), size)?;
    notify::status("copying the image to RAM");
    fs::copy(image, RAM_IMAGE)
        .with_context(|| format!("copying {} to {RAM_IMAGE}", image.display()))?;
    info!("copied {} to {RAM_IMAGE} ({size} bytes)", image.display());
    Ok(PathBuf::from(RAM_IMAGE))
}

/// The attached squashfs, and the filesystem image it carries instead of a
/// root tree, if any.
struct Squashfs {
    dev: String,
    fs_image: Option<PathBuf>,
}

/// Attaches the squashfs and looks inside: a root tree, or (oVirt Node,
/// older Fedora media) `LiveOS/rootfs.img`. A squashfs that carries an image
/// stays mounted where dracut mounts it, /run/initramfs/squashfs.
fn open_squashfs(image: &Path) -> Result<Squashfs> {
    if !image.exists() {
        bail!("the root image {} does not exist", image.display());
    }
    let dev = loop_attach(image)?;
    let at = Path::new(SQUASHFS);
    // The kernel says why only in dmesg; name the likely cause here.
    mount_fs(&dev, at, "squashfs", MsFlags::MS_RDONLY, None).with_context(|| {
        format!(
            "{} is not a squashfs image, or is damaged (dmesg has the kernel's reason)",
            image.display()
        )
    })?;
    let fs_image = fs_image_in(at).map(|f| at.join(f));
    match &fs_image {
        Some(f) => info!("the squashfs carries {}", f.display()),
        None => nix::mount::umount(at).with_context(|| format!("umount {SQUASHFS}"))?,
    }
    Ok(Squashfs { dev, fs_image })
}

/// The filesystem image a mounted squashfs carries, when it holds one and
/// no root tree.
fn fs_image_in(squashfs: &Path) -> Option<&'static str> {
    if squashfs.join("usr").exists() {
        return None;
    }
    FS_IMAGES
        .iter()
        .find(|f| squashfs.join(f).is_file())
        .copied()
}

/// Mounts the root's read-only base at `at`: the squashfs's tree, or the
/// filesystem image inside it.
fn mount_base(sq: &Squashfs, at: &Path) -> Result<()> {
    match &sq.fs_image {
        None => mount_fs(&sq.dev, at, "squashfs", MsFlags::MS_RDONLY, None),
        Some(img) => mount_dev(&loop_attach(img)?, at, true),
    }
}

fn tree_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            }
            total += m.len();
        }
    }
    total
}

pub fn run(a: SysrootArgs) -> Result<()> {
    a.wait.watch();
    let target = a.target.clone();
    if is_mountpoint(&target) {
        info!("{} is already mounted; nothing to do", target.display());
        return Ok(());
    }
    if let Some(lower) = &a.lower_device {
        return lower_devices(&a, lower);
    }
    if let Some(t) = &a.iscsi_lun {
        let want = format!("-iscsi-{t}-lun-{}", a.lun);
        let dev = wait_by_path(&want, a.device_timeout)?;
        return mount_dev(&dev, &target, false);
    }

    // The lower layer: the squashfs image.
    let mut live_id: Option<(String, String)> = None;
    let mut image = match (&a.image_file, &a.live_device) {
        (Some(f), _) => f.clone(),
        (None, Some(spec)) => {
            let dev = spec.dev_path();
            wait_for(&dev, a.device_timeout)?;
            if !is_mountpoint(Path::new(LIVE)) {
                mount_dev(&dev, Path::new(LIVE), true)?;
            }
            live_id = Some((blkid(&dev, "LABEL"), blkid(&dev, "UUID")));
            Path::new(LIVE).join(&a.live_dir).join(&a.image)
        }
        (None, None) => bail!("no root image: give --live-device or --image-file"),
    };
    if a.copy_to_ram {
        image = copy_to_ram(&image)?;
    }
    let sq = open_squashfs(&image)?;
    match a.ram {
        Some(RamMode::Copy) => {
            mount_base(&sq, Path::new(BASE))?;
            let need = tree_size(Path::new(BASE));
            check_fits("metal.ram=copy", need)?;
            let size = format!("size={}", need + need / 2 + (256 << 20));
            mount_fs(
                "tmpfs",
                &target,
                "tmpfs",
                MsFlags::empty(),
                Some(&format!("mode=0755,{size}")),
            )?;
            notify::status("copying the root tree into RAM");
            sh(&["cp", "-a", &format!("{BASE}/."), &target.to_string_lossy()])?;
            nix::mount::umount(BASE).context("umount /run/rootfsbase")?;
            info!("root copied into a tmpfs ({need} bytes)");
            return Ok(());
        }
        Some(RamMode::Squashfs) => {
            mount_base(&sq, &target)?;
            info!("root is the squashfs, read-only");
            return Ok(());
        }
        _ => {}
    }
    if let Some(img) = sq.fs_image.as_ref().filter(|_| wants_snapshot(&a)) {
        return snapshot_root(&a, img, live_id.as_ref());
    }
    mount_base(&sq, Path::new(BASE))?;
    if a.no_overlay {
        crate::sys::mounts::bind(Path::new(BASE), &target)?;
        return Ok(());
    }

    // The upper layer.
    let mut lowers = vec![BASE.to_string()];
    let (upper, work) = if let Some(spec) = &a.overlay_device {
        persistent_upper(&a, spec, live_id.as_ref(), &mut lowers)?
    } else if a.upper == Some(Upper::Zram) {
        let m = zram(&a)?;
        dirs(&m.join("upper"), &m.join("work"))?
    } else {
        tmpfs_upper(a.tmpfs_size_mib)?
    };
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        upper.display(),
        work.display()
    );
    mount_fs(
        "LiveOS_rootfs",
        &target,
        "overlay",
        MsFlags::empty(),
        Some(&opts),
    )?;
    notify::status("root assembled");
    Ok(())
}

/// dracut's choice for media that carry a filesystem image: a device-mapper
/// snapshot, unless OverlayFS is asked for (`rd.live.overlay.overlayfs`) or
/// the upper layer is one only OverlayFS has (zram, boot to RAM, none).
fn wants_snapshot(a: &SysrootArgs) -> bool {
    !a.overlayfs && !a.no_overlay && a.ram.is_none() && a.upper.is_none()
}

/// The device-mapper form: the root is a snapshot `live-rw` of the image,
/// whose copy-on-write store is the persistent overlay file
/// (`rd.live.overlay=<dev>:<file>`, seed 003's `dd` file) or, without one, a
/// sparse file in a tmpfs of `rd.live.overlay.size`.
fn snapshot_root(a: &SysrootArgs, img: &Path, live: Option<&(String, String)>) -> Result<()> {
    let base = loop_attach(img)?;
    let sectors = sh(&["blockdev", "--getsz", &base])?.trim().to_string();
    let (cow, kind) = match &a.overlay_device {
        Some(spec) => (persistent_cow(a, spec, live)?, "P"),
        None => (ram_cow(a.tmpfs_size_mib)?, "N"),
    };
    // Chunks of 8 sectors (4 KiB), as dracut makes them: a store made by
    // dracut stays readable.
    let table = format!("0 {sectors} snapshot {base} {cow} {kind} 8");
    sh(&["dmsetup", "create", LIVE_RW, "--table", &table])?;
    let root = format!("/dev/mapper/{LIVE_RW}");
    mount_dev(&root, &a.target, false)?;
    info!(
        "root is {root}: a snapshot of {} with its changes in {cow}",
        img.display()
    );
    notify::status("root assembled");
    Ok(())
}

/// Where dracut mounts `rd.live.overlay`'s device.
const OVERLAY_MNT: &str = "/run/initramfs/overlayfs";

/// Mounts `rd.live.overlay`'s device at /run/initramfs/overlayfs and returns
/// it with the overlay's path there: the given one, or dmsquash-live's
/// `<dir>/overlay-<label>-<uuid>` of the live medium.
fn overlay_on_device(
    a: &SysrootArgs,
    spec: &DevSpec,
    live: Option<&(String, String)>,
) -> Result<(String, PathBuf)> {
    let dev = spec.dev_path();
    wait_for(&dev, a.device_timeout)?;
    let mnt = Path::new(OVERLAY_MNT);
    if !is_mountpoint(mnt) {
        mount_dev(&dev, mnt, false)?;
    }
    let rel = match &a.overlay_path {
        Some(p) => p.trim_start_matches('/').to_string(),
        None => {
            let (label, uuid) = live.cloned().unwrap_or_default();
            format!("{}/overlay-{label}-{uuid}", a.live_dir)
        }
    };
    Ok((dev, mnt.join(rel)))
}

/// The persistent copy-on-write file on `rd.live.overlay`'s device, on a
/// read-write loop device. An empty (zeroed) file is a new store.
fn persistent_cow(
    a: &SysrootArgs,
    spec: &DevSpec,
    live: Option<&(String, String)>,
) -> Result<String> {
    if a.overlay_readonly {
        bail!(
            "rd.live.overlay.readonly=1 needs OverlayFS, but the image carries a filesystem \
             image and would be a device-mapper snapshot; add rd.live.overlay.overlayfs=1"
        );
    }
    let (dev, file) = overlay_on_device(a, spec, live)?;
    if !file.is_file() {
        bail!(
            "rd.live.overlay: the snapshot file {} does not exist on {dev} \
             (make it with dd if=/dev/zero of=<file> bs=1M count=<MiB>)",
            file.display()
        );
    }
    let fstype = blkid(&file.to_string_lossy(), "TYPE");
    if !is_cow_store(&fstype) {
        bail!(
            "rd.live.overlay: {} on {dev} holds a {fstype} filesystem, not a device-mapper \
             snapshot store; to use it as an OverlayFS upper add rd.live.overlay.overlayfs=1",
            file.display()
        );
    }
    if a.overlay_reset {
        info!("Resetting the device-mapper overlay {}", file.display());
        zero_header(&file)?;
    }
    let cow = loopdev::attach(&file, false)?;
    info!("persistent snapshot store {} on {dev}", file.display());
    Ok(cow)
}

/// What blkid says of a snapshot store: nothing for a new (zeroed) one, and
/// `DM_snapshot_cow` once the kernel has written its header.
fn is_cow_store(blkid_type: &str) -> bool {
    matches!(blkid_type, "" | "DM_snapshot_cow")
}

/// A snapshot store whose header is zeroed is empty again.
fn zero_header(file: &Path) -> Result<()> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(file)
        .with_context(|| format!("opening {}", file.display()))?;
    f.write_all(&[0u8; 64 << 10])
        .and_then(|()| f.sync_all())
        .with_context(|| format!("zeroing the header of {}", file.display()))
}

/// The tmpfs of `size_mib` that holds what is kept in RAM, mounted once.
fn tmpfs_overlay(size_mib: u64) -> Result<&'static Path> {
    let m = Path::new("/run/initramfs/tmpfs-overlay");
    if !is_mountpoint(m) {
        mount_fs(
            "tmpfs",
            m,
            "tmpfs",
            MsFlags::empty(),
            Some(&format!("mode=0755,size={size_mib}m")),
        )?;
    }
    Ok(m)
}

/// A sparse store in a tmpfs of `size_mib`: changes last until power-off.
fn ram_cow(size_mib: u64) -> Result<String> {
    let m = tmpfs_overlay(size_mib)?;
    let file = m.join("overlay");
    let f = fs::File::create(&file).with_context(|| format!("creating {}", file.display()))?;
    f.set_len(size_mib << 20)
        .with_context(|| format!("sizing {}", file.display()))?;
    loopdev::attach(&file, false)
}

fn dirs(upper: &Path, work: &Path) -> Result<(PathBuf, PathBuf)> {
    for d in [upper, work] {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    Ok((upper.to_path_buf(), work.to_path_buf()))
}

fn tmpfs_upper(size_mib: u64) -> Result<(PathBuf, PathBuf)> {
    let m = tmpfs_overlay(size_mib)?;
    let r = dirs(&m.join("overlayfs"), &m.join("ovlwork"))?;
    link_run(&r.0, &r.1)?;
    Ok(r)
}

/// /run/overlayfs and /run/ovlwork, as dracut leaves them for the real root.
fn link_run(upper: &Path, work: &Path) -> Result<()> {
    for (l, t) in [("/run/overlayfs", upper), ("/run/ovlwork", work)] {
        let _ = fs::remove_file(l);
        if Path::new(l).is_dir() {
            continue;
        }
        symlink(t, l).with_context(|| format!("linking {l}"))?;
    }
    Ok(())
}

/// `rd.live.overlay=<dev>[:<path>]`: the upper directory in dmsquash-live's
/// place, `<dir>/overlay-<label>-<uuid>` of the live medium, with `ovlwork`
/// beside it; or, when the path is a file, a filesystem image holding both.
fn persistent_upper(
    a: &SysrootArgs,
    spec: &DevSpec,
    live: Option<&(String, String)>,
    lowers: &mut Vec<String>,
) -> Result<(PathBuf, PathBuf)> {
    let (dev, mut upper) = overlay_on_device(a, spec, live)?;
    let mut work = upper
        .parent()
        .unwrap_or(Path::new(OVERLAY_MNT))
        .join("ovlwork");
    if upper.is_file() {
        // oVirt's form: a filesystem image file holding the changes.
        if is_cow_store(&blkid(&upper.to_string_lossy(), "TYPE")) {
            bail!(
                "rd.live.overlay: {} on {dev} holds no filesystem (an empty file or a \
                 device-mapper snapshot store): a snapshot store needs an image that carries \
                 LiveOS/rootfs.img; an OverlayFS upper must be a filesystem image (mkfs.ext4 it)",
                upper.display()
            );
        }
        let img = Path::new("/run/initramfs/overlay-image");
        mount_dev(&loopdev::attach(&upper, false)?, img, false)?;
        upper = img.join("overlayfs");
        work = img.join("ovlwork");
    } else if a.overlay_path.is_some() && !upper.exists() {
        bail!(
            "rd.live.overlay: {} does not exist on {dev}",
            upper.display()
        );
    }
    if a.overlay_reset && upper.exists() {
        info!(
            "Resetting the OverlayFS overlay directory {}",
            upper.display()
        );
        fs::remove_dir_all(&upper).with_context(|| format!("emptying {}", upper.display()))?;
        let _ = fs::remove_dir_all(&work);
    }
    dirs(&upper, &work)?;
    if a.overlay_readonly {
        // The persistent layer becomes a read-only middle layer.
        let _ = fs::remove_file("/run/overlayfs-r");
        symlink(&upper, "/run/overlayfs-r").context("linking /run/overlayfs-r")?;
        lowers.insert(0, upper.to_string_lossy().to_string());
        return tmpfs_upper(a.tmpfs_size_mib);
    }
    link_run(&upper, &work)?;
    info!("persistent overlay at {} on {dev}", upper.display());
    Ok((upper, work))
}

/// A zram device with a filesystem, mounted at /run/initramfs/zram (seed 001).
fn zram(a: &SysrootArgs) -> Result<PathBuf> {
    let size = match a.zram_size.clone().unwrap_or(DEFAULT_ZRAM_SIZE) {
        Size::PercentOfRam(pct) => {
            let total = fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|m| {
                    m.lines()
                        .next()
                        .and_then(|l| l.split_whitespace().nth(1))
                        .and_then(|k| k.parse::<u64>().ok())
                })
                .unwrap_or(0)
                * 1024;
            (total * u64::from(pct) / 100).to_string()
        }
        Size::Bytes(b) => b.to_string(),
    };
    let comp = a.zram_comp.clone().unwrap_or_default().to_string();
    let fstype = a.zram_fs.unwrap_or(DEFAULT_ZRAM_FS);
    sh(&["modprobe", "zram"]).ok();
    let dev = sh(&["zramctl", "--find", "--size", &size, "--algorithm", &comp])?;
    let dev = dev.trim().to_string();
    match fstype {
        ZramFs::Xfs => sh(&["mkfs.xfs", "-f", "-q", &dev])?,
        ZramFs::Ext4 => sh(&["mkfs.ext4", "-q", "-F", &dev])?,
    };
    let m = PathBuf::from("/run/initramfs/zram");
    mount_dev(&dev, &m, false)?;
    info!(
        "zram upper layer {dev} ({size} bytes, {comp}, {})",
        fstype.as_arg()
    );
    Ok(m)
}

fn wait_by_path(suffix: &str, secs: u64) -> Result<String> {
    let what = format!("a device /dev/disk/by-path/*{suffix}");
    crate::sys::retry::poll(&what, std::time::Duration::from_secs(secs), || {
        fs::read_dir("/dev/disk/by-path")
            .ok()?
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(suffix))
            .map(|e| e.path().to_string_lossy().to_string())
    })
}

/// Seed 001: read-only lower devices for / and /var, upper on zram or tmpfs.
fn lower_devices(a: &SysrootArgs, lower: &DevSpec) -> Result<()> {
    let upper_root = if a.upper == Some(Upper::Zram) {
        zram(a)?
    } else {
        tmpfs_overlay(a.tmpfs_size_mib)?.to_path_buf()
    };
    let mut layers = vec![("root", lower.clone(), a.target.clone())];
    if let Some(v) = &a.var_lower_device {
        layers.push(("var", v.clone(), a.target.join("var")));
    }
    for (name, spec, at) in layers {
        let dev = spec.dev_path();
        wait_for(&dev, a.device_timeout)?;
        let low = PathBuf::from(format!("/run/initramfs/lower/{name}"));
        mount_dev(&dev, &low, true)?;
        let (upper, work) = dirs(
            &upper_root.join("upper").join(name),
            &upper_root.join("work").join(name),
        )?;
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            low.display(),
            upper.display(),
            work.display()
        );
        mount_fs("overlay", &at, "overlay", MsFlags::empty(), Some(&opts))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Cmd};
    use clap::Parser;

    fn args(extra: &[&str]) -> SysrootArgs {
        let mut argv = vec!["metalroot", "sysroot", "--live-device", "LABEL=L"];
        argv.extend(extra);
        match Cli::parse_from(argv).cmd {
            Cmd::Sysroot(a) => a,
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn snapshot_is_dracuts_default_for_a_filesystem_image() {
        assert!(wants_snapshot(&args(&[])));
        assert!(wants_snapshot(&args(&[
            "--overlay-device",
            "/dev/sdb",
            "--overlay-path",
            "/persist-hda.img"
        ])));
        for other in [
            &["--overlayfs"][..],
            &["--no-overlay"],
            &["--upper", "zram"],
            &["--ram", "overlay"],
        ] {
            assert!(!wants_snapshot(&args(other)), "{other:?}");
        }
    }

    #[test]
    fn finds_the_filesystem_image_only_without_a_root_tree() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(fs_image_in(d.path()), None);
        fs::create_dir_all(d.path().join("LiveOS")).unwrap();
        fs::write(d.path().join("LiveOS/ext3fs.img"), b"").unwrap();
        assert_eq!(fs_image_in(d.path()), Some("LiveOS/ext3fs.img"));
        fs::write(d.path().join("LiveOS/rootfs.img"), b"").unwrap();
        assert_eq!(fs_image_in(d.path()), Some("LiveOS/rootfs.img"));
        // A root tree that happens to keep an image is still a tree.
        fs::create_dir_all(d.path().join("usr")).unwrap();
        assert_eq!(fs_image_in(d.path()), None);
    }

    #[test]
    fn a_store_is_empty_or_what_blkid_calls_a_snapshot() {
        assert!(is_cow_store(""));
        assert!(is_cow_store("DM_snapshot_cow"));
        assert!(!is_cow_store("ext4"));
    }

    #[test]
    fn zeroing_the_header_empties_a_store() {
        let (_d, f) = crate::testing::temp_path("persist.img");
        fs::write(&f, vec![0xAB; 256 << 10]).unwrap();
        zero_header(&f).unwrap();
        let got = fs::read(&f).unwrap();
        assert_eq!(got.len(), 256 << 10, "the store keeps its size");
        assert!(got[..64 << 10].iter().all(|&b| b == 0));
        assert!(got[64 << 10..].iter().all(|&b| b == 0xAB));
    }
}
