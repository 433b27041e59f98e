//! /sysroot: the live image with its overlay, lower devices, or an iSCSI LUN.

use super::image::Image;
use super::{s, Step, RAM_IMAGE};
use crate::cli::Cmd;
use crate::cli::SysrootArgs;
use crate::kinds::DEFAULT_OVERLAY_SIZE_MIB;
use crate::params::{Config, OverlayDev, Root, Upper};
use std::path::PathBuf;

/// False when systemd mounts root= itself: no image, no lower device and a
/// root= metalroot does not handle.
pub fn needed(c: &Config, image: &Image) -> bool {
    c.lower.is_some() || !matches!(c.root, Some(Root::Other { .. }) | None) || image.fetched()
}

pub fn plan(
    c: &Config,
    image: &Image,
    fetch_unit: Option<String>,
    block: &[String],
    logins: &[String],
) -> Step {
    let mut a = SysrootArgs::default();
    match (&c.root, &c.lower) {
        (_, Some(lower)) => {
            a.lower_device = Some(lower.clone());
            a.var_lower_device = c.lower_var.clone();
            // The lower devices are the block stack's (seed 001).
            a.wait.device_from = block.to_vec();
        }
        (Some(Root::LiveDevice { device }), None) if !image.fetched() || !image.in_ram => {
            a.live_device = Some(device.clone());
            a.live_dir = c.live_dir.clone();
            a.image = c.squashimg.clone();
            a.copy_to_ram = c.live_ram;
        }
        (Some(Root::IscsiLun { target }), None) => {
            a.iscsi_lun = Some(target.target.clone());
            a.lun = target.lun;
            a.wait.device_from = logins.to_vec();
        }
        _ => a.image_file = Some(PathBuf::from(RAM_IMAGE)),
    }
    a.ram = c.ram;
    match (&c.overlay, c.upper) {
        (Some(OverlayDev::Device { device, path }), _) => {
            a.overlay_device = Some(device.clone());
            a.overlay_path = path.clone();
            a.overlay_reset = c.overlay_reset;
            a.overlay_readonly = c.overlay_readonly;
        }
        (Some(OverlayDev::None), _) => a.no_overlay = true,
        (None, Some(Upper::Zram)) => {
            a.upper = Some(Upper::Zram);
            a.zram_size = Some(c.zram.size.clone());
            a.zram_comp = Some(c.zram.comp.clone());
            a.zram_fs = Some(c.zram.fs);
        }
        // A tmpfs upper is the step's default.
        (None, _) => {}
    }
    a.overlayfs = c.overlayfs;
    a.tmpfs_size_mib = if a.has_tmpfs_upper() {
        c.overlay_size_mib
    } else {
        DEFAULT_OVERLAY_SIZE_MIB
    };
    let mut st = Step::new(
        "metalroot-sysroot",
        s("metalroot: assemble the root filesystem at /sysroot"),
        Cmd::Sysroot(a),
    );
    if let Some(f) = fetch_unit {
        st.requires.push(f);
    }
    st.wants.extend(block.iter().cloned());
    st.pulls.extend(logins.iter().cloned());
    st.before.push(s("initrd-root-fs.target"));
    st.required_by.push(s("initrd-root-fs.target"));
    st
}
