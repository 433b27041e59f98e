//! Seed 000's local disks: wipe, then build or assemble the RAID layout.

use super::{s, Net, Step, DEFAULT_OVAL_LABEL, DEFAULT_SQFS_LABEL};
use crate::cli::Cmd;
use crate::cli::{DiskArgs, ImageArgs, LayoutArgs, WipeArgs};
use crate::kinds::ImageSource;
use crate::params::{Config, OverlayDev, Root};
use crate::values::Source;
use std::path::PathBuf;

/// The disks are paved only when an image is fetched onto them.
pub fn paves(c: &Config) -> bool {
    !c.servers.is_empty() && c.ram.is_none()
}

/// The label of the array the image is stored on.
pub fn sqfs_label(c: &Config) -> String {
    match &c.root {
        Some(Root::LiveDevice { device }) => device.label().map(str::to_string),
        _ => None,
    }
    .unwrap_or_else(|| s(DEFAULT_SQFS_LABEL))
}

fn oval_label(c: &Config) -> String {
    match &c.overlay {
        Some(OverlayDev::Device { device, .. }) => device.label().map(str::to_string),
        _ => None,
    }
    .unwrap_or_else(|| s(DEFAULT_OVAL_LABEL))
}

/// The wipe (unless metal.no-wipe) and the layout; both wait for `logins`
/// so that network LUNs are visible, and refused, when disks are chosen.
pub fn plan(c: &Config, logins: &[String], src: &ImageArgs) -> Vec<Step> {
    let disks = DiskArgs {
        disks: c.disks,
        min_disk_size_gib: c.min_disk_size_gib,
        sqfs_label: sqfs_label(c),
        oval_label: oval_label(c),
        allow: c.disk_allow.clone(),
        protect_label: c
            .servers
            .iter()
            .filter_map(|src| match src {
                Source::File { label, .. } => Some(label.clone()),
                Source::Http { .. } => None,
            })
            .collect(),
        dry_run: c.dry_run,
        sysroot_prefix: PathBuf::from("/"),
    };
    let mut steps = Vec::new();
    if !c.no_wipe {
        let mut st = Step::new(
            "metalroot-wipe",
            s("metalroot: wipe local disks (seed 000 metal.no-wipe=0)"),
            Cmd::Wipe(WipeArgs {
                disks: disks.clone(),
                opts: c.wipe.clone(),
                layout: c.layout.clone(),
                src: src.clone(),
                fetch: c.fetch.clone(),
            }),
        );
        st.destructive = !c.dry_run;
        // The preflight waits for the image server up to metal.fetch-timeout.
        st.timeout_sec = Some(600 + c.fetch.timeout);
        if !src.source_files.is_empty()
            || src.sources.iter().any(|s| matches!(s, ImageSource::Url(_)))
        {
            st.net = Net::Online;
        }
        st.wants.extend(logins.iter().cloned());
        steps.push(st);
    }
    let mut st = Step::new(
        "metalroot-layout",
        s("metalroot: build or assemble the local RAID layout"),
        Cmd::Layout(LayoutArgs {
            disks,
            opts: c.layout.clone(),
            no_wipe: c.no_wipe,
        }),
    );
    st.destructive = !c.dry_run;
    st.timeout_sec = Some(900);
    if !c.no_wipe {
        st.requires.push(s("metalroot-wipe.service"));
    }
    st.wants.extend(logins.iter().cloned());
    steps.push(st);
    steps
}

/// A dry run stops the boot after the disk steps reported what they would do.
pub fn dry_run_end() -> Step {
    let mut st = Step::new(
        "metalroot-dry-run",
        s("metalroot: dry run finished, nothing was changed"),
        Cmd::Fail {
            message: s("dry run (metal.dry-run=1): nothing was wiped or created; the actions are in journalctl -u metalroot-wipe -u metalroot-layout"),
        },
    );
    st.requires.push(s("metalroot-layout.service"));
    st.required_by.push(s("initrd-root-fs.target"));
    st.before.push(s("initrd-root-fs.target"));
    st
}
