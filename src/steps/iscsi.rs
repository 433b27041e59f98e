//! `metalroot iscsi-login`: one target (or the firmware's iBFT table).
//!
//! Secrets never reach an argv: CHAP credentials go into the initrd's
//! /etc/iscsi/iscsid.conf (0600, in RAM) as seed 001 does, and iscsiadm's
//! discovery and node records pick them up from there. The secret files the
//! generator wrote are marked consumed after a successful login.

use crate::args::Argv;
use crate::sys::cmd::{run as sh, run_ok, run_s};
use crate::sys::notify;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tracing::{info, warn};

#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct IscsiArgs {
    /// Log in with the firmware's iBFT table.
    #[arg(long)]
    pub firmware: bool,
    #[command(flatten)]
    pub opts: IscsiOpts,
    /// The target portal, address:port (netroot=iscsi:).
    #[arg(long)]
    pub portal: Option<String>,
    /// Discover targets at this portal first (metal.iscsi.discovery).
    #[arg(long = "discover")]
    pub discover: Vec<String>,
    /// CHAP credentials for discovery (0600 file of key=value lines).
    #[arg(long)]
    pub discovery_auth_file: Option<PathBuf>,
    /// Target portal group tag (rd.iscsi.target.group).
    #[arg(long)]
    pub group: Option<u32>,
    /// Network interface to bind the session to (netroot=iscsi:…:<iface>).
    #[arg(long)]
    pub iface: Option<String>,
    /// The target IQN to log in to.
    #[arg(long)]
    pub target: Option<String>,
    /// The LUN whose device the login waits for.
    #[arg(long, default_value_t = 0)]
    pub lun: u32,
    /// CHAP credentials (0600 file of key=value lines).
    #[arg(long)]
    pub auth_file: Option<PathBuf>,
}

/// The login's options that come straight from the command line
/// (`Config::iscsi`), the same for every target: a new one is a field here
/// and a row in the parameter table.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IscsiOpts {
    /// The initiator name (rd.iscsi.initiator); else the iBFT's or a new one.
    #[arg(long)]
    pub initiator: Option<String>,
    /// Login attempts before giving up (rd.iscsi.login_retry_max).
    #[arg(long)]
    pub retries: Option<u64>,
    /// iscsid.conf settings, `key=value` (rd.iscsi.param).
    #[arg(long = "param")]
    pub params: Vec<String>,
}

impl IscsiOpts {
    fn push(&self, a: &mut Argv) {
        a.opt_if("initiator", self.initiator.as_ref());
        a.opt_if("retries", self.retries);
        a.each("param", &self.params);
    }
}

impl IscsiArgs {
    pub fn to_argv(&self) -> Vec<String> {
        let mut a = Argv::default();
        a.flag("firmware", self.firmware);
        self.opts.push(&mut a);
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

const CONF: &str = "/etc/iscsi/iscsid.conf";
const INAME: &str = "/etc/iscsi/initiatorname.iscsi";
/// How long a login keeps retrying while the target is down.
const LOGIN_WINDOW_SECS: u64 = 300;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Auth {
    pub username: String,
    pub password: String,
    pub username_in: Option<String>,
    pub password_in: Option<String>,
}

pub fn parse_auth(text: &str) -> Result<Auth> {
    let mut a = Auth::default();
    for (k, v) in crate::sys::cmd::key_values(text) {
        match k.as_str() {
            "username" => a.username = v,
            "password" => a.password = v,
            "username_in" => a.username_in = Some(v),
            "password_in" => a.password_in = Some(v),
            _ => {}
        }
    }
    if a.username.is_empty() || a.password.is_empty() {
        bail!("the credentials file lacks username= or password=");
    }
    Ok(a)
}

fn read_auth(p: &Path) -> Result<Auth> {
    let text = fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    parse_auth(&text).with_context(|| format!("in {}", p.display()))
}

/// The iscsid.conf lines for CHAP, seed 001's names. `prefix` is
/// `node.session.auth` or `discovery.sendtargets.auth`.
pub fn auth_lines(prefix: &str, a: &Auth) -> String {
    let mut s = format!(
        "{prefix}.authmethod = CHAP\n{prefix}.username = {}\n{prefix}.password = {}\n",
        a.username, a.password
    );
    if let (Some(u), Some(p)) = (&a.username_in, &a.password_in) {
        s.push_str(&format!(
            "{prefix}.username_in = {u}\n{prefix}.password_in = {p}\n"
        ));
    }
    s
}

/// Keeps the packaged settings, replaces the auth ones with ours.
pub fn merge_conf(existing: &str, ours: &str) -> String {
    let ours_keys: Vec<&str> = ours
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
        .collect();
    let mut out: String = existing
        .lines()
        .filter(|l| {
            let k = l.split_once('=').map(|(k, _)| k.trim()).unwrap_or("");
            !ours_keys.contains(&k)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str("# metalroot\n");
    out.push_str(ours);
    out
}

/// The initiator name: given, already configured, or generated (and kept in
/// /etc/iscsi/initiatorname.iscsi, which the hand-over copies to the root).
fn initiator(given: Option<&str>) -> Result<String> {
    if let Some(n) = given {
        fs::create_dir_all("/etc/iscsi").context("creating /etc/iscsi")?;
        fs::write(INAME, format!("InitiatorName={n}\n"))
            .with_context(|| format!("writing {INAME}"))?;
        return Ok(n.to_string());
    }
    if let Ok(t) = fs::read_to_string(INAME) {
        if let Some(n) = t.lines().find_map(|l| l.strip_prefix("InitiatorName=")) {
            if !n.trim().is_empty() {
                return Ok(n.trim().to_string());
            }
        }
    }
    let n = sh(&["iscsi-iname"])?.trim().to_string();
    fs::create_dir_all("/etc/iscsi").context("creating /etc/iscsi")?;
    fs::write(INAME, format!("InitiatorName={n}\n")).with_context(|| format!("writing {INAME}"))?;
    info!("generated initiator name {n}");
    Ok(n)
}

/// iscsiadm's own retries of a first login (iscsid.conf's default is 8,
/// each up to the 15 s login timeout: two minutes on a dead portal before
/// metalroot's loop, with its backoff and its `--retries`, even sees the
/// failure). One try per attempt, unless `--param` sets it.
const LOGIN_RETRY_KEY: &str = "node.session.initial_login_retry_max";

/// iscsid.conf lines for the `--param NAME=VALUE`s, after metalroot's
/// default for iscsiadm's own login retries.
fn param_lines(params: &[String]) -> Result<String> {
    let mut s = String::new();
    let mut retry_given = false;
    for p in params {
        let (k, v) = p.split_once('=').context("--param needs NAME=VALUE")?;
        retry_given |= k.trim() == LOGIN_RETRY_KEY;
        s.push_str(&format!("{} = {}\n", k.trim(), v.trim()));
    }
    if !retry_given {
        s.insert_str(0, &format!("{LOGIN_RETRY_KEY} = 1\n"));
    }
    Ok(s)
}

const IBFT: &str = "/sys/firmware/ibft";

/// The initiator name the firmware used (iscsi_ibft's sysfs).
fn ibft_initiator(ibft: &Path) -> Option<String> {
    let n = fs::read_to_string(ibft.join("initiator/initiator-name")).ok()?;
    let n = n.trim();
    (!n.is_empty()).then(|| n.to_string())
}

/// Kernel modules a login needs. The iBFT is an ACPI table, not a device:
/// no udev event loads iscsi_ibft, and without it /sys/firmware/ibft is
/// missing and `iscsiadm -m fw` finds no target.
fn modules(firmware: bool) -> Vec<&'static str> {
    let mut m = vec!["iscsi_tcp", "crc32c"];
    if firmware {
        m.push("iscsi_ibft");
    }
    m
}

pub fn run(a: IscsiArgs) -> Result<()> {
    let mut modprobe = vec!["modprobe", "-a"];
    modprobe.extend(modules(a.firmware));
    let _ = sh(&modprobe);
    // A firmware login uses the iBFT's initiator name; the real root must
    // get that one, not whatever the initrd was built with.
    let from_ibft = if a.firmware {
        ibft_initiator(Path::new(IBFT))
    } else {
        None
    };
    let name = initiator(a.opts.initiator.as_deref().or(from_ibft.as_deref()))?;
    info!("initiator {name}");
    let mut ours = String::from("iscsid.startup = /usr/sbin/iscsid\nnode.startup = manual\n");
    if let Some(p) = &a.auth_file {
        ours.push_str(&auth_lines("node.session.auth", &read_auth(p)?));
    }
    if let Some(p) = &a.discovery_auth_file {
        ours.push_str(&auth_lines("discovery.sendtargets.auth", &read_auth(p)?));
    }
    ours.push_str(&param_lines(&a.opts.params)?);
    {
        let _one_at_a_time = lock()?;
        let existing = fs::read_to_string(CONF).unwrap_or_default();
        crate::sys::private::write(Path::new(CONF), merge_conf(&existing, &ours).as_bytes())?;
        start_iscsid();
    }

    if a.firmware {
        notify::status("logging in from the iBFT table");
        sh(&["iscsiadm", "-m", "fw", "-l"]).context("iSCSI login from firmware (iBFT)")?;
        info!("logged in to the firmware's targets");
        return Ok(());
    }
    let target = a.target.clone().context("--target is required")?;
    let portals: Vec<String> = a
        .portal
        .iter()
        .cloned()
        .chain(a.discover.iter().cloned())
        .collect();
    if portals.is_empty() {
        bail!("no portal: give --portal or --discover");
    }
    let max_tries = a.opts.retries.unwrap_or(u64::MAX);
    let start = Instant::now();
    let mut tries = 0u64;
    loop {
        tries += 1;
        let mut logged = 0;
        let mut last = String::new();
        for portal in &portals {
            notify::status(&format!(
                "iSCSI login to {target} at {portal} (attempt {tries})"
            ));
            let node = Node {
                target: &target,
                portal,
                group: a.group,
                iface: a.iface.as_deref(),
            };
            match login(&node, a.portal.is_none()) {
                Ok(()) => {
                    info!("logged in to {target} at {portal}");
                    logged += 1;
                }
                Err(e) => {
                    warn!("login to {target} at {portal} failed: {e:#}");
                    last = format!("{e:#}");
                }
            }
        }
        if logged > 0 {
            for p in a.auth_file.iter().chain(a.discovery_auth_file.iter()) {
                crate::sys::secrets::consume(p);
            }
            notify::status(&format!(
                "logged in to {target} ({logged} of {} portals)",
                portals.len()
            ));
            return Ok(());
        }
        if tries >= max_tries || start.elapsed() > Duration::from_secs(LOGIN_WINDOW_SECS) {
            bail!("could not log in to {target} after {tries} attempts: {last}");
        }
        let window = Duration::from_secs(LOGIN_WINDOW_SECS);
        let attempt = u32::try_from(tries).unwrap_or(u32::MAX);
        std::thread::sleep(crate::sys::retry::backoff(
            attempt,
            window.saturating_sub(start.elapsed()),
        ));
    }
}

/// The login units run side by side. Each writes iscsid.conf, starts
/// iscsid and makes its node record under this lock: unserialized, two
/// units once started two iscsid at once and lost both logins ("daemon
/// died?", "No records found"). The logins themselves run in parallel, so
/// a dead portal holds up no other.
const LOCK: &str = "/run/metalroot/iscsi.lock";
const ISCSID_PID: &str = "/run/iscsid.pid";

fn lock() -> Result<nix::fcntl::Flock<fs::File>> {
    crate::sys::lock::exclusive(Path::new(LOCK))
}

fn iscsid_running() -> bool {
    fs::read_to_string(ISCSID_PID)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// Starts iscsid unless it runs, and waits until it has written its pid
/// file. iscsiadm would start it itself (iscsid.startup), but not under the
/// lock.
fn start_iscsid() {
    if iscsid_running() {
        return;
    }
    run_ok(&["iscsid"]);
    let up = crate::sys::retry::poll("iscsid", Duration::from_secs(10), || {
        iscsid_running().then_some(())
    });
    if let Err(e) = up {
        warn!("{e:#}; iscsiadm will start it");
    }
}

/// One node record: the target at a portal, with the portal group and the
/// open-iscsi interface when the command line gave them.
struct Node<'a> {
    target: &'a str,
    portal: &'a str,
    group: Option<u32>,
    iface: Option<&'a str>,
}

impl Node<'_> {
    /// `iscsiadm -m node -T <target> -p <portal>[,<group>] [-I <iface>] <tail>`
    fn argv(&self, tail: &[&str]) -> Vec<String> {
        let portal = match self.group {
            Some(g) => format!("{},{g}", self.portal),
            None => self.portal.to_string(),
        };
        let mut v: Vec<String> = ["iscsiadm", "-m", "node", "-T", self.target, "-p"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.push(portal);
        if let Some(i) = self.iface {
            v.extend(["-I".to_string(), i.to_string()]);
        }
        v.extend(tail.iter().map(|s| s.to_string()));
        v
    }
}

/// Login to the target at the portal. With `discover`, a sendtargets
/// discovery (with its own CHAP) first checks that the portal offers the
/// target. The node record is then made for the portal we were given, not
/// the address the target advertises: behind NAT, or from a target bound to
/// another address, the advertised one is often unreachable.
fn login(node: &Node, discover: bool) -> Result<()> {
    let (portal, target) = (node.portal, node.target);
    if discover {
        let mut argv = vec![
            "iscsiadm",
            "-m",
            "discovery",
            "-t",
            "sendtargets",
            "-p",
            portal,
        ];
        if let Some(i) = node.iface {
            argv.extend(["-I", i]);
        }
        let found = sh(&argv)?;
        if !found
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(target))
        {
            bail!(
                "{portal} does not offer {target} (it offers: {})",
                found.trim().replace('\n', "; ")
            );
        }
    }
    // A new record takes its settings (CHAP included) from iscsid.conf.
    {
        let _one_at_a_time = lock()?;
        let _ = run_s(&node.argv(&["-o", "new"]));
    }
    let out = run_s(&node.argv(&["--login"]));
    match out {
        Ok(_) => Ok(()),
        // Already logged in (a re-run by hand): fine.
        Err(e) if format!("{e:#}").contains("already present") => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_file_and_conf_lines() {
        let a = parse_auth("username=u\npassword=p\nusername_in=ui\npassword_in=pi\n").unwrap();
        let l = auth_lines("node.session.auth", &a);
        assert!(l.contains("node.session.auth.password_in = pi"));
        assert!(parse_auth("username=u\n").is_err());
    }

    #[test]
    fn node_records_carry_group_and_iface() {
        let mut n = Node {
            target: "iqn.a:t",
            portal: "10.0.2.2:3260",
            group: None,
            iface: None,
        };
        assert_eq!(
            n.argv(&["--login"]).join(" "),
            "iscsiadm -m node -T iqn.a:t -p 10.0.2.2:3260 --login"
        );
        n.group = Some(2);
        n.iface = Some("eth1-iface");
        assert_eq!(
            n.argv(&["-o", "new"]).join(" "),
            "iscsiadm -m node -T iqn.a:t -p 10.0.2.2:3260,2 -I eth1-iface -o new"
        );
    }

    #[test]
    fn one_iscsiadm_login_try_per_attempt_unless_given() {
        let l = param_lines(&[s("node.session.timeo.replacement_timeout=15")]).unwrap();
        assert_eq!(
            l,
            "node.session.initial_login_retry_max = 1\n\
             node.session.timeo.replacement_timeout = 15\n"
        );
        let l = param_lines(&[s("node.session.initial_login_retry_max=8")]).unwrap();
        assert_eq!(l, "node.session.initial_login_retry_max = 8\n");
        assert!(param_lines(&[s("novalue")]).is_err());
    }

    fn s(x: &str) -> String {
        x.to_string()
    }

    #[test]
    fn initiator_name_from_the_ibft() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(ibft_initiator(d.path()), None);
        fs::create_dir_all(d.path().join("initiator")).unwrap();
        fs::write(
            d.path().join("initiator/initiator-name"),
            "iqn.2026-11.metaltest:ipxe-node\n",
        )
        .unwrap();
        assert_eq!(
            ibft_initiator(d.path()).as_deref(),
            Some("iqn.2026-11.metaltest:ipxe-node")
        );
    }

    #[test]
    fn firmware_login_loads_the_ibft_driver() {
        assert!(modules(true).contains(&"iscsi_ibft"));
        assert!(!modules(false).contains(&"iscsi_ibft"));
    }

    #[test]
    fn merge_replaces_auth_keys() {
        let m = merge_conf(
            "node.startup = automatic\nnode.session.auth.username = old\n",
            "node.session.auth.username = new\n",
        );
        assert!(m.contains("node.startup = automatic"));
        assert!(!m.contains("old"));
        assert!(m.contains("new"));
    }
}
