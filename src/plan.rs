//! Config → Plan: which steps run, with which explicit arguments, in which
//! order. Pure: no I/O. The generator writes what `units` renders from this.

use crate::error::ParamError;
use crate::iscsi_spec::{Chap, IscsiTarget, DEFAULT_PORT};
use crate::params::{Config, LuksKey, OverlayDev, RamMode, Root, Upper};
use crate::values::{DevSpec, Source};
use serde::Serialize;

pub const BIN: &str = "/usr/bin/metalroot";
/// Where secrets moved off the command line live (tmpfs, 0700 dir, 0600 files).
pub const SECRETS_DIR: &str = "/run/metalroot/secrets";
/// Where the live medium is mounted, as dracut's dmsquash-live does.
pub const LIVE_MNT: &str = "/run/initramfs/live";
/// Where an image fetched to RAM is kept, as dracut's `rd.live.ram` does.
pub const RAM_IMAGE: &str = "/run/initramfs/squashed.img";

pub const DEFAULT_SQFS_LABEL: &str = "SQFSRAID";
pub const DEFAULT_OVAL_LABEL: &str = "ROOTRAID";

/// How a step's unit waits for the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Net {
    None,
    Online,
}

/// One unit of work: a oneshot service running `argv`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Unit name without `.service`.
    pub name: String,
    pub description: String,
    pub argv: Vec<String>,
    /// Wipes, partitions or creates filesystems.
    pub destructive: bool,
    pub net: Net,
    /// Units this one must follow and needs (Requires= + After=).
    pub requires: Vec<String>,
    /// Units this one follows and pulls in, but survives failing (Wants= + After=).
    pub wants: Vec<String>,
    /// Units this one pulls in without waiting for them (Wants= only): iSCSI
    /// logins, whose devices the step waits for itself, so a dead target
    /// does not hold up the boot.
    pub pulls: Vec<String>,
    /// Units that must wait for this one (Before=).
    pub before: Vec<String>,
    /// `<target>.requires/` or `.wants/` symlinks.
    pub required_by: Vec<String>,
    pub wanted_by: Vec<String>,
    /// A step that owns the console (the trap shell).
    pub interactive: bool,
    /// None: no limit (a download may take long; its own timeout applies).
    pub timeout_sec: Option<u64>,
    /// systemd credentials the step reads (LoadCredential=).
    pub credentials: Vec<String>,
    /// Its failure stops the boot (OnFailure=emergency.target). iSCSI logins
    /// are not fatal: a dead target must not stop the others, and the step
    /// that needs a device fails on its own if it never comes.
    pub fatal: bool,
}

impl Step {
    fn new(name: &str, description: String, argv: Vec<String>) -> Step {
        Step {
            name: name.to_string(),
            description,
            argv,
            destructive: false,
            net: Net::None,
            requires: Vec::new(),
            wants: Vec::new(),
            pulls: Vec::new(),
            before: Vec::new(),
            required_by: Vec::new(),
            wanted_by: Vec::new(),
            interactive: false,
            timeout_sec: None,
            credentials: Vec::new(),
            fatal: true,
        }
    }

    pub fn unit(&self) -> String {
        format!("{}.service", self.name)
    }
}

/// A secret moved off the command line into a 0600 file for a step.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Secret {
    pub path: String,
    #[serde(skip)]
    pub contents: String,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({}, <redacted>)", self.path)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub config: Config,
    pub steps: Vec<Step>,
    pub secrets: Vec<Secret>,
    pub notes: Vec<String>,
}

impl Plan {
    pub fn destructive(&self) -> bool {
        self.steps.iter().any(|s| s.destructive)
    }
}

fn s(v: &str) -> String {
    v.to_string()
}

/// Builds the plan; cross-parameter conflicts are reported as `ParamError`
/// here, before any unit exists.
pub fn build(mut c: Config) -> Result<Plan, ParamError> {
    validate(&mut c)?;
    let mut steps: Vec<Step> = Vec::new();
    let mut secrets: Vec<Secret> = Vec::new();
    let mut notes = c.ignored.clone();
    let debug = c.debug;

    let live_label = match &c.root {
        Some(Root::LiveDevice { device }) => device.label().map(str::to_string),
        _ => None,
    };
    let oval_label = match &c.overlay {
        Some(OverlayDev::Device { device, .. }) => device.label().map(str::to_string),
        _ => None,
    };

    // 1. Local disks (seed 000): only when an image is fetched onto them.
    let paves = !c.servers.is_empty() && c.ram.is_none();
    if paves {
        let sqfs = live_label.clone().unwrap_or_else(|| s(DEFAULT_SQFS_LABEL));
        let oval = oval_label.clone().unwrap_or_else(|| s(DEFAULT_OVAL_LABEL));
        let mut common = vec![
            s("--disks"),
            c.disks.to_string(),
            s("--min-disk-size-gib"),
            c.min_disk_size_gib.to_string(),
            s("--sqfs-label"),
            sqfs.clone(),
            s("--oval-label"),
            oval.clone(),
        ];
        for id in &c.disk_allow {
            common.push(s("--allow"));
            common.push(match id {
                crate::params::DiskId::Serial(x) => format!("serial:{x}"),
                crate::params::DiskId::Wwn(x) => format!("wwn:{x}"),
            });
        }
        for src in &c.servers {
            if let Source::File { label, .. } = src {
                common.push(s("--protect-label"));
                common.push(label.clone());
            }
        }
        if c.dry_run {
            common.push(s("--dry-run"));
        }
        if !c.no_wipe {
            let mut argv = vec![s(BIN), s("wipe")];
            argv.extend(common.clone());
            argv.extend([s("--wipe-delay"), c.wipe_delay.to_string()]);
            let mut st = Step::new(
                "metalroot-wipe",
                s("metalroot: wipe local disks (seed 000 metal.no-wipe=0)"),
                argv,
            );
            st.destructive = !c.dry_run;
            st.timeout_sec = Some(600);
            steps.push(st);
        }
        let mut argv = vec![s(BIN), s("layout")];
        argv.extend(common);
        argv.extend([
            s("--md-level"),
            s(c.md_level.as_mdadm()),
            s("--sqfs-size-gb"),
            c.sqfs_md_size_gb.to_string(),
            s("--oval-size-gb"),
            c.oval_md_size_gb.to_string(),
            s("--aux-size-gb"),
            c.aux_md_size_gb.to_string(),
        ]);
        if c.no_wipe {
            argv.push(s("--no-wipe"));
        }
        let mut st = Step::new(
            "metalroot-layout",
            s("metalroot: build or assemble the local RAID layout"),
            argv,
        );
        st.destructive = !c.dry_run;
        st.timeout_sec = Some(900);
        if !c.no_wipe {
            st.requires.push(s("metalroot-wipe.service"));
        }
        steps.push(st);
        if c.dry_run {
            let mut st = Step::new(
                "metalroot-dry-run",
                s("metalroot: dry run finished, nothing was changed"),
                vec![
                    s(BIN),
                    s("fail"),
                    s("dry run (metal.dry-run=1): nothing was wiped or created; the actions are in journalctl -u metalroot-wipe -u metalroot-layout"),
                ],
            );
            st.requires.push(s("metalroot-layout.service"));
            st.required_by.push(s("initrd-root-fs.target"));
            st.before.push(s("initrd-root-fs.target"));
            steps.push(st);
            return Ok(finish(c, steps, secrets, notes, debug));
        }
    }

    // 2. Network block devices: iSCSI, multipath, LUKS, LVM (seeds 001, 004).
    // iSCSI logins (pulled in, not waited for) and the block steps after
    // them (waited for, in order).
    let mut iscsi_units: Vec<String> = Vec::new();
    let mut block_units: Vec<String> = Vec::new();
    let targets = iscsi_targets(&c)?;
    if !targets.is_empty() || c.iscsi_firmware || c.iscsi_ibft {
        let initiator = c.iscsi_initiator.clone();
        let mut common = Vec::new();
        if let Some(i) = &initiator {
            common.extend([s("--initiator"), i.clone()]);
        }
        if let Some(r) = c.iscsi_login_retry_max {
            common.extend([s("--retries"), r.to_string()]);
        }
        for p in &c.iscsi_params {
            common.extend([s("--param"), p.clone()]);
        }
        let mut discovery_auth: Option<String> = None;
        if let Some(chap) = &c.discovery_chap {
            let path = format!("{SECRETS_DIR}/iscsi-discovery.auth");
            secrets.push(Secret {
                path: path.clone(),
                contents: chap_file(chap),
            });
            discovery_auth = Some(path);
        }
        if c.iscsi_firmware || c.iscsi_ibft {
            let mut argv = vec![s(BIN), s("iscsi-login"), s("--firmware")];
            argv.extend(common.clone());
            let mut st = Step::new(
                "metalroot-iscsi-firmware",
                s("metalroot: iSCSI login from the firmware table (iBFT)"),
                argv,
            );
            st.net = Net::Online;
            st.fatal = false;
            iscsi_units.push(st.unit());
            steps.push(st);
        }
        for (i, t) in targets.iter().enumerate() {
            let n = i + 1;
            let mut argv = vec![s(BIN), s("iscsi-login")];
            argv.extend(common.clone());
            match &t.target.server {
                Some(srv) => argv.extend([s("--portal"), portal_arg(srv, t.target.port)]),
                None => {
                    for (h, p) in &c.iscsi_discovery {
                        argv.extend([s("--discover"), portal_arg(h, *p)]);
                    }
                    if let Some(a) = &discovery_auth {
                        argv.extend([s("--discovery-auth-file"), a.clone()]);
                    }
                }
            }
            if let Some(g) = t.group {
                argv.extend([s("--group"), g.to_string()]);
            }
            if let Some(iface) = &t.target.iface {
                argv.extend([s("--iface"), iface.clone()]);
            }
            argv.extend([s("--target"), t.target.target.clone()]);
            argv.extend([s("--lun"), t.target.lun.to_string()]);
            if let Some(chap) = &t.target.chap {
                let path = format!("{SECRETS_DIR}/iscsi-{n}.auth");
                secrets.push(Secret {
                    path: path.clone(),
                    contents: chap_file(chap),
                });
                argv.extend([s("--auth-file"), path]);
            }
            let where_ = t
                .target
                .server
                .as_deref()
                .map(|h| portal_arg(h, t.target.port))
                .unwrap_or_else(|| s("discovered portals"));
            let mut st = Step::new(
                &format!("metalroot-iscsi-{n}"),
                format!(
                    "metalroot: iSCSI login to {} at {}",
                    t.target.target, where_
                ),
                argv,
            );
            st.net = Net::Online;
            st.fatal = false;
            iscsi_units.push(st.unit());
            steps.push(st);
        }
    }
    if c.multipath {
        let mut st = Step::new(
            "metalroot-multipath",
            s("metalroot: multipath over the iSCSI paths"),
            vec![s(BIN), s("multipath")],
        );
        // Builds the maps from the paths the logins gave: it must follow
        // them (Wants= + After=), or it runs before any path exists. A dead
        // path is not fatal: its login fails (after its retries) and the
        // map is built from the others.
        st.wants = iscsi_units.clone();
        block_units = vec![st.unit()];
        steps.push(st);
    }
    if let Some(dev) = &c.luks {
        let mut argv = vec![
            s(BIN),
            s("luks-open"),
            s("--device"),
            dev.to_string(),
            s("--name"),
            c.luks_name.clone(),
        ];
        match &c.luks_key {
            Some(LuksKey::Credential(name)) => argv.extend([s("--key-credential"), name.clone()]),
            Some(LuksKey::Url(url)) => {
                let path = format!("{SECRETS_DIR}/luks-key.url");
                secrets.push(Secret {
                    path: path.clone(),
                    contents: url.clone(),
                });
                argv.extend([s("--key-url-file"), path]);
                if let Some(ca) = &c.ca_file {
                    argv.extend([s("--ca"), ca.clone()]);
                }
                if c.ipv4 {
                    argv.push(s("--ipv4"));
                }
                argv.extend([s("--timeout"), c.fetch_timeout.to_string()]);
            }
            None => {}
        }
        let mut st = Step::new(
            "metalroot-luks",
            format!("metalroot: unlock LUKS device {dev} as {}", c.luks_name),
            argv,
        );
        st.wants = block_units.clone();
        st.pulls = iscsi_units.clone();
        match &c.luks_key {
            Some(LuksKey::Url(_)) => st.net = Net::Online,
            Some(LuksKey::Credential(name)) => st.credentials.push(name.clone()),
            None => {}
        }
        block_units = vec![st.unit()];
        steps.push(st);
    }
    if c.lvm {
        let mut argv = vec![s(BIN), s("lvm-activate"), s("--readonly")];
        if c.luks.is_some() {
            argv.extend([s("--device"), format!("/dev/mapper/{}", c.luks_name)]);
        }
        let mut st = Step::new(
            "metalroot-lvm",
            s("metalroot: probe partitions and activate LVM read-only"),
            argv,
        );
        st.wants = block_units.clone();
        st.pulls = iscsi_units.clone();
        block_units = vec![st.unit()];
        steps.push(st);
    }

    // Network LUNs must be visible before the disks are chosen, so the wipe
    // sees (and refuses) them rather than racing their login.
    if paves {
        for st in steps.iter_mut() {
            if st.name == "metalroot-wipe" || st.name == "metalroot-layout" {
                // Here the wait is the point: the LUNs must be visible.
                st.wants.extend(iscsi_units.iter().cloned());
            }
        }
    }

    // 3. The image: fetched to the local array or to RAM.
    let mut fetch_unit: Option<String> = None;
    // rd.live.ram with metal.server: fetched onto SQFSRAID (cached for the
    // next boot), then copied to RAM by the sysroot step.
    let ram_image = c.ram.is_some() || matches!(c.root, Some(Root::LiveUrl { .. }));
    let sources: Vec<Source> = match &c.root {
        Some(Root::LiveUrl { source }) => vec![source.clone()],
        _ => c.servers.clone(),
    };
    if !sources.is_empty() {
        let mut argv = vec![s(BIN), s("fetch")];
        for (i, src) in sources.iter().enumerate() {
            match src {
                Source::Http {
                    url,
                    has_password: true,
                } => {
                    let path = format!("{SECRETS_DIR}/source-{}.url", i + 1);
                    secrets.push(Secret {
                        path: path.clone(),
                        contents: url.clone(),
                    });
                    argv.extend([s("--source-file"), path]);
                }
                Source::Http { url, .. } => argv.extend([s("--source"), url.clone()]),
                Source::File { .. } => argv.extend([s("--source"), src.shown()]),
            }
        }
        argv.extend([s("--image"), c.squashimg.clone()]);
        let root_is_url = matches!(c.root, Some(Root::LiveUrl { .. }));
        if root_is_url {
            argv.push(s("--exact-url"));
        }
        if ram_image {
            argv.extend([s("--dest-file"), s(RAM_IMAGE)]);
        } else {
            let label = live_label.clone().unwrap_or_else(|| s(DEFAULT_SQFS_LABEL));
            argv.extend([
                s("--dest-label"),
                label,
                s("--mount"),
                s(LIVE_MNT),
                s("--dir"),
                c.live_dir.clone(),
            ]);
        }
        if let Some(h) = &c.sha256 {
            argv.extend([s("--sha256"), h.clone()]);
        }
        if let Some(ca) = &c.ca_file {
            argv.extend([s("--ca"), ca.clone()]);
        }
        if c.ipv4 {
            argv.push(s("--ipv4"));
        }
        argv.extend([s("--timeout"), c.fetch_timeout.to_string()]);
        let mut st = Step::new(
            "metalroot-fetch",
            format!(
                "metalroot: fetch the root image from {}",
                sources
                    .iter()
                    .map(Source::shown)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            argv,
        );
        if sources.iter().any(|x| matches!(x, Source::Http { .. })) {
            st.net = Net::Online;
        }
        if paves {
            st.requires.push(s("metalroot-layout.service"));
        }
        fetch_unit = Some(st.unit());
        steps.push(st);
    }

    // 4. /sysroot.
    let mut sysroot_argv = vec![s(BIN), s("sysroot")];
    let mut sysroot = true;
    match (&c.root, &c.lower) {
        (_, Some(lower)) => {
            sysroot_argv.extend([s("--lower-device"), lower.to_string()]);
            if let Some(v) = &c.lower_var {
                sysroot_argv.extend([s("--var-lower-device"), v.to_string()]);
            }
        }
        (Some(Root::LiveDevice { device }), None) if fetch_unit.is_none() || !ram_image => {
            sysroot_argv.extend([
                s("--live-device"),
                device.to_string(),
                s("--live-dir"),
                c.live_dir.clone(),
                s("--image"),
                c.squashimg.clone(),
            ]);
            if c.live_ram {
                sysroot_argv.push(s("--copy-to-ram"));
            }
        }
        (Some(Root::IscsiLun { target }), None) => {
            sysroot_argv.extend([
                s("--iscsi-lun"),
                target.target.clone(),
                s("--lun"),
                target.lun.to_string(),
            ]);
        }
        (Some(Root::Other { .. }), None) | (None, None) if fetch_unit.is_none() => sysroot = false,
        _ => sysroot_argv.extend([s("--image-file"), s(RAM_IMAGE)]),
    }
    if sysroot {
        if let Some(mode) = c.ram {
            sysroot_argv.extend([
                s("--ram"),
                s(match mode {
                    RamMode::Copy => "copy",
                    RamMode::Squashfs => "squashfs",
                    RamMode::Overlay => "overlay",
                }),
            ]);
        }
        match (&c.overlay, c.upper) {
            (Some(OverlayDev::Device { device, path }), _) => {
                sysroot_argv.extend([s("--overlay-device"), device.to_string()]);
                if let Some(p) = path {
                    sysroot_argv.extend([s("--overlay-path"), p.clone()]);
                }
                if c.overlay_reset {
                    sysroot_argv.push(s("--overlay-reset"));
                }
                if c.overlay_readonly {
                    sysroot_argv.push(s("--overlay-readonly"));
                }
            }
            (Some(OverlayDev::None), _) => sysroot_argv.push(s("--no-overlay")),
            (None, Some(Upper::Zram)) => sysroot_argv.extend([
                s("--upper"),
                s("zram"),
                s("--zram-size"),
                c.zram_size.arg(),
                s("--zram-comp"),
                c.zram_comp.clone(),
                s("--zram-fs"),
                c.zram_fs.clone(),
            ]),
            (None, _) => {}
        }
        if c.overlayfs {
            sysroot_argv.push(s("--overlayfs"));
        }
        if !matches!(c.ram, Some(RamMode::Copy | RamMode::Squashfs)) {
            sysroot_argv.extend([s("--tmpfs-size-mib"), c.overlay_size_mib.to_string()]);
        }
        let mut st = Step::new(
            "metalroot-sysroot",
            s("metalroot: assemble the root filesystem at /sysroot"),
            sysroot_argv,
        );
        if let Some(f) = &fetch_unit {
            st.requires.push(f.clone());
        }
        st.wants.extend(block_units.clone());
        st.pulls.extend(iscsi_units.clone());
        st.before.push(s("initrd-root-fs.target"));
        st.required_by.push(s("initrd-root-fs.target"));
        steps.push(st);
    } else {
        // systemd mounts root= itself; the block steps only have to run first.
        for st in steps.iter_mut() {
            if block_units.contains(&st.unit()) || iscsi_units.contains(&st.unit()) {
                st.before.push(s("initrd-root-device.target"));
                st.wanted_by.push(s("initrd-root-device.target"));
            }
        }
    }

    // 5. Hand-over to the real root, then the optional trap.
    let mut argv = vec![s(BIN), s("handover"), s("--root"), s("/sysroot")];
    if paves {
        argv.push(s("--metal-arrays"));
    }
    if !targets.is_empty() || c.iscsi_firmware || c.iscsi_ibft {
        argv.push(s("--iscsi"));
    }
    if c.multipath {
        argv.push(s("--multipath"));
    }
    let mut st = Step::new(
        "metalroot-handover",
        s("metalroot: hand the assembled system over to the real root"),
        argv,
    );
    st.wants.push(s("initrd-root-fs.target"));
    if sysroot {
        st.requires.push(s("metalroot-sysroot.service"));
    }
    st.wants.push(s("initrd-fs.target"));
    st.before.push(s("initrd.target"));
    st.wanted_by.push(s("initrd.target"));
    steps.push(st);

    if c.trap {
        let mut st = Step::new(
            "metalroot-trap",
            s("metalroot: trap shell before switch-root (metal.trap=1)"),
            vec![s(BIN), s("trap")],
        );
        st.interactive = true;
        st.wants.push(s("metalroot-handover.service"));
        st.before.push(s("initrd.target"));
        st.wanted_by.push(s("initrd.target"));
        steps.push(st);
    }
    if debug {
        notes.push(s("metal.debug=1: metalroot's own steps log at debug level"));
    }
    Ok(finish(c, steps, secrets, notes, debug))
}

fn finish(
    c: Config,
    mut steps: Vec<Step>,
    secrets: Vec<Secret>,
    notes: Vec<String>,
    debug: bool,
) -> Plan {
    if debug {
        for st in &mut steps {
            st.argv.insert(2, s("--debug"));
        }
    }
    Plan {
        config: c,
        steps,
        secrets,
        notes,
    }
}

struct TargetPlan {
    target: IscsiTarget,
    group: Option<u32>,
}

fn iscsi_targets(c: &Config) -> Result<Vec<TargetPlan>, ParamError> {
    let root_target = match &c.root {
        Some(Root::IscsiLun { target }) => Some(target.clone()),
        _ => None,
    };
    let mut out: Vec<TargetPlan> = root_target
        .iter()
        .chain(c.netroots.iter())
        .map(|t| {
            let mut t = t.clone();
            if t.chap.is_none() {
                t.chap = c.iscsi_chap.clone();
            }
            TargetPlan {
                target: t,
                group: None,
            }
        })
        .collect();
    let m = &c.iscsi_manual;
    if let Some(name) = &m.target_name {
        out.push(TargetPlan {
            target: IscsiTarget {
                server: m.target_ip.clone(),
                port: m.target_port.unwrap_or(DEFAULT_PORT),
                iface: None,
                netdev: None,
                lun: 0,
                target: name.clone(),
                chap: c.iscsi_chap.clone(),
            },
            group: m.target_group,
        });
    }
    Ok(out)
}

/// `KEY=VALUE` lines read by `metalroot iscsi-login --auth-file`.
fn chap_file(c: &Chap) -> String {
    let mut out = format!("username={}\npassword={}\n", c.username, c.password);
    if let (Some(u), Some(p)) = (&c.username_in, &c.password_in) {
        out.push_str(&format!("username_in={u}\npassword_in={p}\n"));
    }
    out
}

fn portal_arg(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Checks that need more than one parameter, and fills the seed's defaults.
fn validate(c: &mut Config) -> Result<(), ParamError> {
    if c.disks < c.md_level.min_disks() {
        return Err(ParamError::new(
            "metal.disks",
            &c.disks.to_string(),
            format!(
                "metal.md-level={} needs at least {} disks",
                c.md_level.as_mdadm(),
                c.md_level.min_disks()
            ),
        ));
    }
    if !c.servers.is_empty() {
        match &c.root {
            // Seed 000: the default root is live:LABEL=SQFSRAID.
            None => {
                c.root = Some(Root::LiveDevice {
                    device: DevSpec::Label(s(DEFAULT_SQFS_LABEL)),
                })
            }
            Some(Root::LiveDevice { device }) if device.label().is_some() || c.ram.is_some() => {}
            Some(r) => {
                let shown = match r {
                    Root::LiveDevice { device } => format!("live:{device}"),
                    Root::LiveUrl { source } => format!("live:{}", source.shown()),
                    Root::IscsiLun { target } => format!("iscsi:…:{}", target.target),
                    Root::Other { value } => value.clone(),
                };
                return Err(ParamError::new(
                    "root",
                    &shown,
                    "with metal.server, root= must be live:LABEL=<label> (the array the image is stored on)",
                ));
            }
        }
        if c.ram.is_none() && c.overlay.is_none() && c.upper.is_none() {
            // Seed 000: the default overlay is the ROOTRAID array.
            c.overlay = Some(OverlayDev::Device {
                device: DevSpec::Label(s(DEFAULT_OVAL_LABEL)),
                path: None,
            });
            c.overlayfs = true;
        }
    }
    if let (Some(_), Some(Upper::Zram | Upper::Tmpfs)) = (&c.overlay, c.upper) {
        if !matches!(c.overlay, Some(OverlayDev::None)) {
            return Err(ParamError::new(
                "metal.overlay",
                if c.upper == Some(Upper::Zram) {
                    "zram"
                } else {
                    "tmpfs"
                },
                "conflicts with rd.live.overlay=<device>: choose a persistent or a RAM upper layer",
            ));
        }
    }
    if let (Some(OverlayDev::None), Some(u)) = (&c.overlay, c.upper) {
        return Err(ParamError::new(
            "metal.overlay",
            if u == Upper::Zram { "zram" } else { "tmpfs" },
            "conflicts with rd.live.overlay=none (no overlay at all)",
        ));
    }
    if let (Some(RamMode::Copy | RamMode::Squashfs), Some(u)) = (c.ram, c.upper) {
        return Err(ParamError::new(
            "metal.overlay",
            if u == Upper::Zram { "zram" } else { "tmpfs" },
            "metal.ram=copy and metal.ram=squashfs have no overlay; use metal.ram=overlay",
        ));
    }
    if c.lower_var.is_some() && c.lower.is_none() {
        return Err(ParamError::new(
            "metal.lower.var",
            &c.lower_var
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_default(),
            "needs metal.lower (the root's lower device)",
        ));
    }
    if c.lower.is_some() && matches!(c.root, Some(Root::LiveDevice { .. } | Root::LiveUrl { .. })) {
        return Err(ParamError::new(
            "metal.lower",
            &c.lower.as_ref().map(|d| d.to_string()).unwrap_or_default(),
            "conflicts with root=live:",
        ));
    }
    if c.luks.is_some() && c.luks_key.is_none() {
        return Err(ParamError::new(
            "metal.luks",
            &c.luks.as_ref().map(|d| d.to_string()).unwrap_or_default(),
            "needs metal.luks.key=cred:<name> or metal.luks.key=https://…",
        ));
    }
    if c.luks_key.is_some() && c.luks.is_none() {
        return Err(ParamError::secret(
            "metal.luks.key",
            "needs metal.luks=<device>",
        ));
    }
    if c.ram.is_some()
        && c.servers.is_empty()
        && !matches!(c.root, Some(Root::LiveUrl { .. } | Root::LiveDevice { .. }))
    {
        return Err(ParamError::new(
            "metal.ram",
            "",
            "needs an image: metal.server=… or root=live:…",
        ));
    }
    let root_target = match &c.root {
        Some(Root::IscsiLun { target }) => Some(target),
        _ => None,
    };
    for t in c.netroots.iter().chain(root_target) {
        if t.server.is_none() && c.iscsi_discovery.is_empty() {
            return Err(ParamError::new(
                "netroot",
                &format!("iscsi:…:{}", t.target),
                "no server given and no metal.iscsi.discovery portal to discover the target",
            ));
        }
    }
    let m = &c.iscsi_manual;
    if m.target_name.is_some() && m.target_ip.is_none() && c.iscsi_discovery.is_empty() {
        return Err(ParamError::new(
            "rd.iscsi.target.name",
            m.target_name.as_deref().unwrap_or(""),
            "needs rd.iscsi.target.ip or metal.iscsi.discovery",
        ));
    }
    if m.target_ip.is_some() && m.target_name.is_none() {
        return Err(ParamError::new(
            "rd.iscsi.target.ip",
            m.target_ip.as_deref().unwrap_or(""),
            "needs rd.iscsi.target.name",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::split;

    fn plan(line: &str) -> Plan {
        build(Config::parse(&[], &split(line)).unwrap()).unwrap()
    }

    fn names(p: &Plan) -> Vec<&str> {
        p.steps.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn seed_000_minimal() {
        let p = plan("metal.server=http://pit/ root=live:LABEL=SQFSRAID");
        assert_eq!(
            names(&p),
            [
                "metalroot-wipe",
                "metalroot-layout",
                "metalroot-fetch",
                "metalroot-sysroot",
                "metalroot-handover"
            ]
        );
        let sys = &p.steps[3].argv;
        assert!(sys.contains(&s("LABEL=ROOTRAID")), "{sys:?}");
        assert!(p.destructive());
    }

    #[test]
    fn no_wipe_drops_the_wipe_step() {
        let p = plan("metal.server=http://pit/ metal.no-wipe=1");
        assert_eq!(names(&p)[0], "metalroot-layout");
        assert!(p.steps[0].argv.contains(&s("--no-wipe")));
    }

    #[test]
    fn dry_run_is_not_destructive() {
        let p = plan("metal.server=http://pit/ metal.dry-run=1");
        assert!(!p.destructive());
        assert!(p.steps.iter().all(|s| s.name != "metalroot-fetch"));
    }

    #[test]
    fn live_device_only_mounts() {
        let p = plan("root=live:CDLABEL=Fedora rd.live.image");
        assert_eq!(names(&p), ["metalroot-sysroot", "metalroot-handover"]);
        assert!(!p.destructive());
    }

    #[test]
    fn livenet_fetches_to_ram() {
        let p = plan("root=live:https://10.0.2.2/img/squashfs.img");
        assert_eq!(names(&p)[0], "metalroot-fetch");
        assert!(p.steps[0].argv.contains(&s(RAM_IMAGE)));
        assert!(!p.destructive());
    }

    #[test]
    fn chap_secret_goes_to_a_file() {
        let p = plan("netroot=iscsi:u:topsecret@10.0.2.2::::iqn.2009-06.dracut:t0 root=/dev/sda1");
        let all: String = p.steps.iter().flat_map(|s| s.argv.clone()).collect();
        assert!(!all.contains("topsecret"));
        assert_eq!(p.secrets.len(), 1);
        assert!(p.secrets[0].contents.contains("topsecret"));
        assert!(format!("{p:?}").find("topsecret").is_none());
    }

    #[test]
    fn conflicting_parameters() {
        let c = Config::parse(&[], &split("metal.server=http://x/ root=live:UUID=1234")).unwrap();
        assert_eq!(build(c).unwrap_err().param, "root");
        let c = Config::parse(
            &[],
            &split("metal.md-level=raid6 metal.disks=2 metal.server=http://x/"),
        )
        .unwrap();
        assert_eq!(build(c).unwrap_err().param, "metal.disks");
    }

    #[test]
    fn root_iscsi_target_is_the_root_whatever_the_order() {
        for line in [
            "root=iscsi:10.0.0.1::::iqn.a:root netroot=iscsi:10.0.0.2::::iqn.b:data",
            "netroot=iscsi:10.0.0.2::::iqn.b:data root=iscsi:10.0.0.1::::iqn.a:root",
        ] {
            let p = plan(line);
            let n = p
                .steps
                .iter()
                .filter(|s| s.name.starts_with("metalroot-iscsi-"))
                .count();
            assert_eq!(n, 2, "{line}");
            let sys = p
                .steps
                .iter()
                .find(|s| s.name == "metalroot-sysroot")
                .unwrap();
            assert!(
                sys.argv.contains(&s("iqn.a:root")),
                "{line}: {:?}",
                sys.argv
            );
        }
    }

    #[test]
    fn multipath_follows_every_login() {
        let p = plan(
            "root=/dev/mapper/mpatha netroot=iscsi:10.0.0.1::3262::iqn.a:root \
             netroot=iscsi:10.0.0.1::3260::iqn.a:root rd.multipath=default",
        );
        let mp = p
            .steps
            .iter()
            .find(|s| s.name == "metalroot-multipath")
            .unwrap();
        // Wants= + After=: the maps are built from the paths the logins gave.
        assert_eq!(
            mp.wants,
            ["metalroot-iscsi-1.service", "metalroot-iscsi-2.service"]
        );
    }

    #[test]
    fn rd_live_ram_with_server_caches_on_disk_then_copies() {
        let p = plan("metal.server=http://pit/ rd.live.ram=1");
        let fetch = p
            .steps
            .iter()
            .find(|s| s.name == "metalroot-fetch")
            .unwrap();
        assert!(fetch.argv.contains(&s("--dest-label")));
        let sys = p
            .steps
            .iter()
            .find(|s| s.name == "metalroot-sysroot")
            .unwrap();
        assert!(sys.argv.contains(&s("--copy-to-ram")));
    }

    #[test]
    fn overlays_that_cannot_be_honoured_are_errors() {
        for line in [
            "root=live:LABEL=x rd.live.overlay=none metal.overlay=zram",
            "metal.server=http://x/ metal.ram=copy metal.overlay=zram",
        ] {
            let c = Config::parse(&[], &split(line)).unwrap();
            assert_eq!(build(c).unwrap_err().param, "metal.overlay", "{line}");
        }
    }
}
