//! Seed 000's local disks: wipe, then build or assemble the RAID layout.

use super::blockstack::LUKS_KEY_URL_FILE;
use super::{s, Net, Step, DEFAULT_OVAL_LABEL, DEFAULT_SQFS_LABEL};
use crate::cli::Cmd;
use crate::cli::{DiskArgs, ImageArgs, LayoutArgs, WipeArgs};
use crate::kinds::ImageSource;
use crate::params::{Config, LuksKey, OverlayDev, Root};
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

/// What the disk steps do with a node that is already paved, and why: the
/// first thing an operator must know before booting a fleet.
pub fn pave_note(c: &Config) -> String {
    if !c.wipe_refused.is_empty() {
        s("pave: refused (see the warnings); nothing is wiped or created")
    } else if c.no_wipe {
        s("pave: metal.no-wipe=1: nothing is wiped; an existing layout is assembled, blank disks are paved, disks with data are refused")
    } else if c.wipe.keep_layout {
        s("pave: metal.keep-layout=1 (metalroot's own, opt-in): an existing layout is kept as it is; otherwise the disks are wiped and paved")
    } else {
        s("pave: metal.no-wipe=0: the disks are wiped and paved on every boot, an existing layout too, as dracut-metal-mdsquash does (metal.keep-layout=1 keeps an existing layout)")
    }
}

/// The wipe step when a parameter that chooses what is wiped had a bad
/// value: it fails with every such value named, destroys nothing, and the
/// layout (which requires it) does not run. The other steps still do.
fn refused(c: &Config) -> Step {
    let mut st = Step::new(
        "metalroot-wipe",
        s("metalroot: wipe local disks (refused: a bad value)"),
        Cmd::Fail {
            message: format!(
                "the wipe is refused, nothing was wiped or created: {}",
                c.wipe_refused.join("; ")
            ),
        },
    );
    st.required_by.push(s("initrd-root-fs.target"));
    st.before.push(s("initrd-root-fs.target"));
    st
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
    let refuse = !c.wipe_refused.is_empty();
    if refuse {
        steps.push(refused(c));
    } else if !c.no_wipe {
        // The preflight also checks the LUKS key the boot will need: the
        // same credential (loaded by this unit too) or URL secret file.
        let (luks_key_credential, luks_key_url_file) = match &c.luks_key {
            Some(LuksKey::Credential(name)) => (Some(name.clone()), None),
            Some(LuksKey::Url(_)) => (None, Some(PathBuf::from(LUKS_KEY_URL_FILE))),
            None => (None, None),
        };
        let mut st = Step::new(
            "metalroot-wipe",
            s("metalroot: wipe local disks (seed 000 metal.no-wipe=0)"),
            Cmd::Wipe(WipeArgs {
                disks: disks.clone(),
                opts: c.wipe.clone(),
                layout: c.layout.clone(),
                src: src.clone(),
                fetch: c.fetch.clone(),
                luks_key_credential: luks_key_credential.clone(),
                luks_key_url_file: luks_key_url_file.clone(),
            }),
        );
        st.credentials.extend(luks_key_credential);
        // And the image's signature, by the same trusted keys as the fetch.
        st.credentials.extend(c.fetch.verify_key.clone());
        st.destructive = !c.dry_run;
        // The preflight waits for the image server up to metal.fetch-timeout.
        st.timeout_sec = Some(600 + c.fetch.timeout);
        if !src.source_files.is_empty()
            || src.sources.iter().any(|s| matches!(s, ImageSource::Url(_)))
            || luks_key_url_file.is_some()
        {
            st.net = Net::Online;
        }
        st.wants.extend(logins.iter().cloned());
        steps.push(st);
    }
    let mut st = if refuse {
        // Same unit name, so `systemctl status metalroot-layout` says why
        // nothing was built; never destructive, even if started by hand.
        Step::new(
            "metalroot-layout",
            s("metalroot: build the local RAID layout (refused with the wipe)"),
            Cmd::Fail {
                message: s("the layout is not built: the wipe was refused (systemctl status metalroot-wipe)"),
            },
        )
    } else {
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
        st
    };
    st.timeout_sec = Some(900);
    if refuse || !c.no_wipe {
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
