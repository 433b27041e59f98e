//! Network block devices (seeds 001, 004): iSCSI logins, pulled in but not
//! waited for, then multipath, LUKS and LVM, each waited for in order.

use super::{s, Net, Secret, Step, SECRETS_DIR};
use crate::cli::Cmd;
use crate::cli::{IscsiArgs, LuksArgs, LvmArgs, MultipathArgs};
use crate::iscsi_spec::{Chap, IscsiTarget, DEFAULT_PORT};
use crate::params::{Config, LuksKey, Root};
use crate::sys::systemd::WaitOpts;
use std::path::PathBuf;

/// Where the generator puts `metal.luks.key=<URL>` for the LUKS step (and
/// the wipe's preflight).
pub const LUKS_KEY_URL_FILE: &str = "/run/metalroot/secrets/luks-key.url";

/// What the later steps order themselves after.
#[derive(Default)]
pub struct Block {
    pub steps: Vec<Step>,
    pub secrets: Vec<Secret>,
    /// The iSCSI login units.
    pub logins: Vec<String>,
    /// The last of multipath, LUKS and LVM (the device the root is on).
    pub last_block: Vec<String>,
    pub any_iscsi: bool,
}

/// The block stack; with `root_device` (systemd mounts root= itself) the
/// logins and the last block step run before initrd-root-device.target.
pub fn plan(c: &Config, root_device: bool) -> Block {
    let mut b = Block::default();
    logins(c, &mut b);
    if c.multipath {
        let mut st = Step::new(
            "metalroot-multipath",
            s("metalroot: multipath over the iSCSI paths"),
            Cmd::Multipath(MultipathArgs {}),
        );
        // Builds the maps from the paths the logins gave: it must follow
        // them (Wants= + After=), or it runs before any path exists. A dead
        // path is not fatal: its login fails (after its retries) and the
        // map is built from the others.
        st.wants = b.logins.clone();
        b.last_block = vec![st.unit()];
        b.steps.push(st);
    }
    if let Some(dev) = &c.luks {
        let mut args = LuksArgs::new(dev.clone(), c.luks_name.clone());
        match &c.luks_key {
            Some(LuksKey::Credential(name)) => args.key_credential = Some(name.clone()),
            Some(LuksKey::Url(url)) => {
                let path = LUKS_KEY_URL_FILE.to_string();
                b.secrets.push(Secret {
                    path: path.clone(),
                    contents: url.clone(),
                });
                args.key_url_file = Some(PathBuf::from(path));
                args.http = c.fetch.http.clone();
                args.timeout = c.fetch.timeout;
            }
            None => {}
        }
        // A local LUKS device may be slower to appear than a refused login
        // is to fail: only a multipath map counts as its maker.
        args.wait.device_from = b.last_block.clone();
        let mut st = Step::new(
            "metalroot-luks",
            format!("metalroot: unlock LUKS device {dev} as {}", c.luks_name),
            Cmd::LuksOpen(args),
        );
        st.wants = b.last_block.clone();
        st.pulls = b.logins.clone();
        match &c.luks_key {
            Some(LuksKey::Url(_)) => st.net = Net::Online,
            Some(LuksKey::Credential(name)) => st.credentials.push(name.clone()),
            None => {}
        }
        b.last_block = vec![st.unit()];
        b.steps.push(st);
    }
    if c.lvm {
        let args = LvmArgs {
            readonly: true,
            device: c
                .luks
                .as_ref()
                .map(|_| format!("/dev/mapper/{}", c.luks_name)),
            wait: WaitOpts {
                device_from: b.last_block.clone(),
            },
        };
        let mut st = Step::new(
            "metalroot-lvm",
            s("metalroot: probe partitions and activate LVM read-only"),
            Cmd::LvmActivate(args),
        );
        st.wants = b.last_block.clone();
        st.pulls = b.logins.clone();
        b.last_block = vec![st.unit()];
        b.steps.push(st);
    }
    if root_device {
        for st in b.steps.iter_mut() {
            if b.last_block.contains(&st.unit()) || b.logins.contains(&st.unit()) {
                st.before.push(s("initrd-root-device.target"));
                st.wanted_by.push(s("initrd-root-device.target"));
            }
        }
    }
    b
}

/// One login step per target, and one for the firmware's table.
fn logins(c: &Config, b: &mut Block) {
    let targets = iscsi_targets(c);
    b.any_iscsi = !targets.is_empty() || c.iscsi_firmware || c.iscsi_ibft;
    if !b.any_iscsi {
        return;
    }
    let common = IscsiArgs {
        opts: c.iscsi.clone(),
        ..IscsiArgs::default()
    };
    let mut discovery_auth: Option<PathBuf> = None;
    if let Some(chap) = &c.discovery_chap {
        let path = format!("{SECRETS_DIR}/iscsi-discovery.auth");
        b.secrets.push(Secret {
            path: path.clone(),
            contents: chap_file(chap),
        });
        discovery_auth = Some(PathBuf::from(path));
    }
    if c.iscsi_firmware || c.iscsi_ibft {
        let mut st = Step::new(
            "metalroot-iscsi-firmware",
            s("metalroot: iSCSI login from the firmware table (iBFT)"),
            Cmd::IscsiLogin(IscsiArgs {
                firmware: true,
                ..common.clone()
            }),
        );
        st.net = Net::Online;
        st.fatal = false;
        b.logins.push(st.unit());
        b.steps.push(st);
    }
    for (i, t) in targets.iter().enumerate() {
        let n = i + 1;
        let mut args = IscsiArgs {
            group: t.group,
            iface: t.target.iface.clone(),
            target: Some(t.target.target.clone()),
            lun: t.target.lun,
            ..common.clone()
        };
        match &t.target.server {
            Some(srv) => args.portal = Some(portal_arg(srv, t.target.port)),
            None => {
                args.discover = c
                    .iscsi_discovery
                    .iter()
                    .map(|(h, p)| portal_arg(h, *p))
                    .collect();
                args.discovery_auth_file = discovery_auth.clone();
            }
        }
        if let Some(chap) = &t.target.chap {
            let path = format!("{SECRETS_DIR}/iscsi-{n}.auth");
            b.secrets.push(Secret {
                path: path.clone(),
                contents: chap_file(chap),
            });
            args.auth_file = Some(PathBuf::from(path));
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
            Cmd::IscsiLogin(args),
        );
        st.net = Net::Online;
        st.fatal = false;
        b.logins.push(st.unit());
        b.steps.push(st);
    }
}

struct TargetPlan {
    target: IscsiTarget,
    group: Option<u32>,
}

fn iscsi_targets(c: &Config) -> Vec<TargetPlan> {
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
                port: m
                    .target_port
                    .and_then(|p| u16::try_from(p).ok())
                    .unwrap_or(DEFAULT_PORT),
                iface: None,
                netdev: None,
                lun: 0,
                target: name.clone(),
                chap: c.iscsi_chap.clone(),
            },
            group: m.target_group.and_then(|g| u32::try_from(g).ok()),
        });
    }
    out
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
