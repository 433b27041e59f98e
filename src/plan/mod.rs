//! Config → Plan: which steps run, with which typed arguments, in which
//! order. Pure: no I/O. The generator writes what `units` renders from this.
//!
//! One module per capability, each returning its steps and the units the
//! later ones order themselves after: `disks` (seed 000's wipe and layout),
//! `blockstack` (iSCSI, multipath, LUKS, LVM), `image` (the fetch), `root`
//! (/sysroot) and `handover` (hand-over and trap). `build` only chains them.

mod blockstack;
mod disks;
mod handover;
mod image;
mod root;

use crate::cli::Cmd;
use crate::error::ParamError;
use crate::params::{Config, OverlayDev, RamMode, Root, Upper};
use crate::values::DevSpec;
use serde::Serialize;

pub use crate::args::BIN;
pub use crate::kinds::{LIVE_MNT, RAM_IMAGE, SECRETS_DIR};

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
    /// What `argv` says, typed: the step's parsed arguments.
    #[serde(skip)]
    pub cmd: Cmd,
    /// Wipes, partitions or creates filesystems.
    pub destructive: bool,
    /// Units this one must follow and needs (Requires= + After=).
    pub requires: Vec<String>,
    /// Units this one follows and pulls in, but survives failing (Wants= + After=).
    pub wants: Vec<String>,
    /// Units this one pulls in without waiting for them (Wants= only): iSCSI
    /// logins, whose devices the step waits for itself, so a dead target
    /// does not hold up the boot.
    pub pulls: Vec<String>,
    /// Needs the network up first (network-online.target).
    pub net: Net,
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
    pub fn new(name: &str, description: String, cmd: Cmd) -> Step {
        Step {
            name: name.to_string(),
            description,
            argv: cmd.to_argv(),
            cmd,
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
    /// Values taken otherwise than written, unknown names, a refused wipe:
    /// logged at warning priority and shown first by `metalroot plan`.
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn destructive(&self) -> bool {
        self.steps.iter().any(|s| s.destructive)
    }
}

pub(crate) fn s(v: &str) -> String {
    v.to_string()
}

/// Builds the plan; cross-parameter conflicts are reported as `ParamError`
/// here, before any unit exists.
pub fn build(mut c: Config) -> Result<Plan, ParamError> {
    validate(&mut c)?;
    let mut notes = c.ignored.clone();
    let debug = c.debug;
    let paves = disks::paves(&c);
    if paves {
        notes.push(disks::pave_note(&c));
    }
    let image = image::Image::of(&c);
    // Without a /sysroot step systemd mounts root= itself, and the block
    // steps only have to run before initrd-root-device.target.
    let sysroot = root::needed(&c, &image);

    // Network LUNs first: the disk steps wait for them, so the wipe sees
    // (and refuses) them rather than racing their login.
    let block = blockstack::plan(&c, !sysroot);
    let mut secrets = Vec::new();
    let src = image::sources(&c, &image, &mut secrets);
    let mut steps: Vec<Step> = Vec::new();
    if paves {
        // A dry run ends before any login is planned: nothing to wait for.
        let logins: &[String] = if c.dry_run { &[] } else { &block.logins };
        steps.extend(disks::plan(&c, logins, &src));
        if c.dry_run {
            steps.push(disks::dry_run_end());
            return Ok(finish(c, steps, secrets, notes, debug));
        }
    }
    secrets.extend(block.secrets);
    steps.extend(block.steps);
    let fetch = image::plan(&c, &image, src, paves);
    let fetch_unit = fetch.as_ref().map(Step::unit);
    steps.extend(fetch);
    steps.extend(image::measure(&c, fetch_unit.as_deref(), sysroot));
    if fetch_unit.is_some() {
        notes.extend(image::notes(&c, &image));
    }
    if sysroot {
        steps.push(root::plan(
            &c,
            &image,
            fetch_unit,
            &block.last_block,
            &block.logins,
        ));
    }
    steps.extend(handover::plan(&c, paves, block.any_iscsi, sysroot));
    if debug {
        notes.push(s("metal.debug=1: metalroot's own steps log at debug level"));
    }
    Ok(finish(c, steps, secrets, notes, debug))
}

/// seed 000's lines carry no `ip=`: a step that needs the network gets
/// DHCP on every Ethernet link, set up before systemd-networkd starts.
fn dhcp_fallback() -> Step {
    let mut st = Step::new(
        "metalroot-dhcp",
        s("metalroot: DHCP on every Ethernet link (no ip= on the command line)"),
        Cmd::Dhcp,
    );
    st.before.push(s("systemd-networkd.service"));
    st.before.push(s("network-pre.target"));
    st.pulls.push(s("systemd-networkd.service"));
    st.wanted_by.push(s("initrd.target"));
    st.timeout_sec = Some(30);
    st
}

fn finish(
    c: Config,
    mut steps: Vec<Step>,
    secrets: Vec<Secret>,
    mut notes: Vec<String>,
    debug: bool,
) -> Plan {
    if !c.ip_given && steps.iter().any(|st| st.net == Net::Online) {
        steps.push(dhcp_fallback());
        notes.push(s("network: no ip= on the command line: metalroot-dhcp.service configures DHCP on every Ethernet link, as dracut-metal-mdsquash fleets boot without ip="));
    }
    if debug {
        // `--debug` is global: clap reads it after the step's name too.
        for st in &mut steps {
            st.argv.insert(2, s("--debug"));
        }
    }
    let mut warnings = c.warnings.clone();
    warnings.extend(
        c.wipe_refused
            .iter()
            .map(|w| format!("the wipe is refused: {w}")),
    );
    Plan {
        config: c,
        steps,
        secrets,
        notes,
        warnings,
    }
}

/// Checks that need more than one parameter, and fills the seed's defaults.
fn validate(c: &mut Config) -> Result<(), ParamError> {
    if c.disks < c.layout.md_level.min_disks() {
        return Err(ParamError::new(
            "metal.disks",
            &c.disks.to_string(),
            format!(
                "metal.md-level={} needs at least {} disks",
                c.layout.md_level.as_mdadm(),
                c.layout.md_level.min_disks()
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

    fn step<'a>(p: &'a Plan, name: &str) -> &'a Step {
        p.steps.iter().find(|s| s.name == name).unwrap()
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
                "metalroot-measure",
                "metalroot-sysroot",
                "metalroot-handover",
                // seed 000's line has no ip=: metalroot brings DHCP up.
                "metalroot-dhcp"
            ]
        );
        let sys = &p.steps[4].argv;
        assert!(sys.contains(&s("LABEL=ROOTRAID")), "{sys:?}");
        assert!(p.destructive());
    }

    #[test]
    fn the_wipe_checks_the_luks_key_the_boot_needs() {
        assert!(blockstack::LUKS_KEY_URL_FILE.starts_with(SECRETS_DIR));
        let base = "metal.server=http://pit/ netroot=iscsi:10.0.0.1::::iqn.a:b metal.luks=UUID=1";
        let p = plan(&format!("{base} metal.luks.key=cred:luksKey"));
        let w = step(&p, "metalroot-wipe");
        assert_eq!(w.credentials, ["luksKey"]);
        assert!(w
            .argv
            .windows(2)
            .any(|a| a == ["--luks-key-credential", "luksKey"]));
        let p = plan(&format!("{base} metal.luks.key=https://k/x?sig=1"));
        let w = step(&p, "metalroot-wipe");
        assert!(
            w.argv.contains(&s(blockstack::LUKS_KEY_URL_FILE)),
            "{:?}",
            w.argv
        );
        assert!(!w.argv.iter().any(|a| a.contains("sig=1")));
    }

    #[test]
    fn a_refused_wipe_leaves_nothing_destructive() {
        // Found by the fuzzer (tests/fuzz, 2026-12-03): the layout stayed
        // destructive behind a refused wipe.
        for line in [
            "metal.server=http://pit/ metal.disks=two",
            "metal.server=http://pit/ metal.no_wipe=1",
            "metal.server=http://pit/ metal.no-wipe=1 metal.min-disk-size=x",
        ] {
            let p = plan(line);
            assert!(!p.destructive(), "{line}");
            assert!(
                matches!(step(&p, "metalroot-layout").cmd, Cmd::Fail { .. }),
                "{line}"
            );
            assert!(
                matches!(step(&p, "metalroot-wipe").cmd, Cmd::Fail { .. }),
                "{line}"
            );
        }
    }

    #[test]
    fn the_manual_iscsi_form_reaches_the_login() {
        let p = plan(
            "root=/dev/sda rd.iscsi.initiator=iqn.2026-12.node:n1 rd.iscsi.target.name=iqn.a:b \
             rd.iscsi.target.ip=10.0.0.5 rd.iscsi.target.port=3261 rd.iscsi.target.group=2",
        );
        let login = p
            .steps
            .iter()
            .find(|s| s.name == "metalroot-iscsi-1")
            .expect("a login step");
        let argv = login.argv.join(" ");
        for want in [
            "--portal 10.0.0.5:3261",
            "--group 2",
            "--target iqn.a:b",
            "--initiator iqn.2026-12.node:n1",
        ] {
            assert!(argv.contains(want), "{want} in {argv}");
        }
    }

    /// A wait may end early only on the units that make its device: a guard
    /// LUN's login must never end the wait for the local root.
    #[test]
    fn waits_name_only_the_units_that_make_their_device() {
        let from = |line: &str, step: &str| {
            let p = plan(line);
            let st = p.steps.iter().find(|s| s.name == step).expect(step);
            let a = st.argv.join(" ");
            a.split("--device-from ")
                .skip(1)
                .map(|s| s.split(' ').next().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            from(
                "root=iscsi:10.0.0.1::::iqn.a:b netroot=iscsi:10.0.0.2::::iqn.a:b",
                "metalroot-sysroot"
            ),
            ["metalroot-iscsi-1.service", "metalroot-iscsi-2.service"]
        );
        let guard = "metal.server=http://pit/ root=live:LABEL=SQFSRAID \
                     netroot=iscsi:10.0.0.1::::iqn.a:guard ip=dhcp";
        assert!(from(guard, "metalroot-sysroot").is_empty());
        let stack = "netroot=iscsi:10.0.0.1::::iqn.a:b rd.multipath=default \
                     metal.luks=/dev/mapper/mpatha metal.luks.key=cred:k metal.lvm=1 \
                     metal.lower=/dev/mapper/system-root ip=dhcp";
        assert_eq!(
            from(stack, "metalroot-luks"),
            ["metalroot-multipath.service"]
        );
        assert_eq!(from(stack, "metalroot-lvm"), ["metalroot-luks.service"]);
        assert_eq!(from(stack, "metalroot-sysroot"), ["metalroot-lvm.service"]);
        // LUKS straight on a LUN (no multipath): a local device may come
        // later than a refused login fails, so the logins do not end it.
        let direct =
            "netroot=iscsi:10.0.0.1::::iqn.a:b metal.luks=UUID=1234 metal.luks.key=cred:k \
                      metal.lower=/dev/mapper/luks_root ip=dhcp";
        assert!(from(direct, "metalroot-luks").is_empty());
    }

    #[test]
    fn dhcp_only_without_ip_and_only_for_the_network() {
        let has = |line: &str| names(&plan(line)).contains(&"metalroot-dhcp");
        assert!(has("metal.server=http://pit/"));
        assert!(has("metal.server=http://pit/ metal.dry-run=1"));
        assert!(has("netroot=iscsi:10.0.0.1::::iqn.a:b root=/dev/sda"));
        assert!(!has("metal.server=http://pit/ ip=dhcp"));
        assert!(!has("metal.server=http://pit/ ip=eth0:dhcp rd.neednet=1"));
        assert!(!has("metal.server=file://?LABEL=PIT"));
        assert!(!has("root=live:LABEL=SQFSRAID"));
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
            let sys = step(&p, "metalroot-sysroot");
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
        let mp = step(&p, "metalroot-multipath");
        // Wants= + After=: the maps are built from the paths the logins gave.
        assert_eq!(
            mp.wants,
            ["metalroot-iscsi-1.service", "metalroot-iscsi-2.service"]
        );
    }

    #[test]
    fn rd_live_ram_with_server_caches_on_disk_then_copies() {
        let p = plan("metal.server=http://pit/ rd.live.ram=1");
        let fetch = step(&p, "metalroot-fetch");
        assert!(fetch.argv.contains(&s("--dest-label")));
        let sys = step(&p, "metalroot-sysroot");
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
