//! The typed command line: every parameter metalroot reads, with its default.
//!
//! Names and defaults come from seed 000 (`metal.*` of dracut-metal-mdsquash),
//! dracut.cmdline(7) (`root=live:`, `rd.live.*`, `rd.overlay*`, `netroot=iscsi:`,
//! `rd.iscsi.*`, `rd.multipath`) and metalroot's own `metal.*` additions. See
//! docs/cmdline.md for the table.

use crate::cmdline::Arg;
use crate::error::ParamError;
use crate::iscsi_spec::{self, Chap, IscsiTarget};
pub use crate::kinds::{DiskId, MdLevel, RamMode, Upper};
use crate::kinds::{
    Size, DEFAULT_FETCH_TIMEOUT, DEFAULT_LIVE_DIR, DEFAULT_OVERLAY_SIZE_MIB, DEFAULT_SQUASHIMG,
    DEFAULT_ZRAM_COMP, DEFAULT_ZRAM_FS, DEFAULT_ZRAM_SIZE,
};
use crate::values::{boolean, number, required, DevSpec, Source};
use clap::ValueEnum;
use serde::Serialize;

fn md_level(param: &str, v: Option<&str>) -> Result<MdLevel, ParamError> {
    let v = required(param, v)?;
    MdLevel::from_cmdline(v).ok_or_else(|| {
        ParamError::new(
            param,
            v,
            "unknown md level; use mirror, stripe, linear, raid0, raid1, raid4, raid5, raid6 or raid10",
        )
    })
}

/// `root=`: a live image (ours) or anything else (systemd's own handling).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Root {
    /// `root=live:<devspec>`: the live medium holding `<dir>/<squashimg>`.
    LiveDevice { device: DevSpec },
    /// `root=live:http(s)://…`: the image itself, fetched to RAM (livenet).
    LiveUrl { source: Source },
    /// `root=iscsi:…`: the whole LUN of this target holds the root filesystem.
    IscsiLun { target: IscsiTarget },
    /// Any other `root=` value: systemd-fstab-generator mounts it.
    Other { value: String },
}

/// `rd.live.overlay=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OverlayDev {
    None,
    /// `<devspec>[:<path>|auto]`; no path means the dmsquash-live default.
    Device {
        device: DevSpec,
        path: Option<String>,
    },
}

/// `metal.luks.key=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", content = "value", rename_all = "lowercase")]
pub enum LuksKey {
    /// A systemd credential of this name.
    Credential(String),
    /// Fetched over https into memory; the URL may hold a token.
    #[serde(serialize_with = "ser_redacted")]
    Url(String),
}

fn ser_redacted<S: serde::Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("<redacted>")
}

/// `rd.iscsi.*` in the manual form (without `netroot=iscsi:<spec>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IscsiManual {
    pub target_name: Option<String>,
    pub target_ip: Option<String>,
    pub target_port: Option<u16>,
    pub target_group: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    // seed 000
    pub servers: Vec<Source>,
    pub debug: bool,
    pub disks: u64,
    pub md_level: MdLevel,
    pub no_wipe: bool,
    pub wipe_delay: u64,
    pub min_disk_size_gib: u64,
    pub ipv4: bool,
    pub sqfs_md_size_gb: u64,
    pub oval_md_size_gb: u64,
    pub aux_md_size_gb: u64,
    // dracut live
    pub root: Option<Root>,
    pub live_image: bool,
    pub live_dir: String,
    pub squashimg: String,
    pub overlay: Option<OverlayDev>,
    pub overlayfs: bool,
    pub overlay_reset: bool,
    pub overlay_readonly: bool,
    pub overlay_size_mib: u64,
    pub live_ram: bool,
    // dracut iSCSI and multipath
    pub netroots: Vec<IscsiTarget>,
    pub netroot_iscsi: bool,
    pub iscsi_initiator: Option<String>,
    pub iscsi_manual: IscsiManual,
    pub iscsi_chap: Option<Chap>,
    pub iscsi_firmware: bool,
    pub iscsi_login_retry_max: Option<u64>,
    pub iscsi_params: Vec<String>,
    pub iscsi_ibft: bool,
    pub iscsi_waitnet: bool,
    pub multipath: bool,
    // metalroot's own
    pub sha256: Option<String>,
    pub ca_file: Option<String>,
    pub ram: Option<RamMode>,
    pub upper: Option<Upper>,
    pub zram_size: Size,
    pub zram_comp: String,
    pub zram_fs: String,
    pub trap: bool,
    pub disk_allow: Vec<DiskId>,
    pub dry_run: bool,
    pub iscsi_discovery: Vec<(String, u16)>,
    pub discovery_chap: Option<Chap>,
    pub luks: Option<DevSpec>,
    pub luks_name: String,
    pub luks_key: Option<LuksKey>,
    pub lvm: bool,
    pub lower: Option<DevSpec>,
    pub lower_var: Option<DevSpec>,
    pub fetch_timeout: u64,
    /// Parameters we accept but do not act on, with why.
    pub ignored: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            servers: Vec::new(),
            debug: false,
            disks: 2,
            md_level: MdLevel::Raid1,
            no_wipe: false,
            wipe_delay: 5,
            min_disk_size_gib: 16,
            ipv4: true,
            sqfs_md_size_gb: 25,
            oval_md_size_gb: 150,
            aux_md_size_gb: 150,
            root: None,
            live_image: false,
            live_dir: DEFAULT_LIVE_DIR.into(),
            squashimg: DEFAULT_SQUASHIMG.into(),
            overlay: None,
            overlayfs: false,
            overlay_reset: false,
            overlay_readonly: false,
            overlay_size_mib: DEFAULT_OVERLAY_SIZE_MIB,
            live_ram: false,
            netroots: Vec::new(),
            netroot_iscsi: false,
            iscsi_initiator: None,
            iscsi_manual: IscsiManual::default(),
            iscsi_chap: None,
            iscsi_firmware: false,
            iscsi_login_retry_max: None,
            iscsi_params: Vec::new(),
            iscsi_ibft: false,
            iscsi_waitnet: true,
            multipath: false,
            sha256: None,
            ca_file: None,
            ram: None,
            upper: None,
            zram_size: DEFAULT_ZRAM_SIZE,
            zram_comp: DEFAULT_ZRAM_COMP.into(),
            zram_fs: DEFAULT_ZRAM_FS.into(),
            trap: false,
            disk_allow: Vec::new(),
            dry_run: false,
            iscsi_discovery: Vec::new(),
            discovery_chap: None,
            luks: None,
            luks_name: "luks_root".into(),
            luks_key: None,
            lvm: false,
            lower: None,
            lower_var: None,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            ignored: Vec::new(),
        }
    }
}

/// True when the command line asks for metalroot at all. Without this the
/// generator writes nothing, so metalroot can sit in any initrd harmlessly.
pub fn requested(args: &[Arg]) -> bool {
    args.iter().any(|a| {
        let v = a.value.as_deref().unwrap_or("");
        a.key.starts_with("metal.")
            || (a.key == "root" && (v.starts_with("live:") || v.starts_with("iscsi:")))
            || (a.key == "netroot" && v.starts_with("iscsi"))
            || (matches!(
                a.key.as_str(),
                "rd.iscsi.firmware" | "iscsi_firmware" | "rd.iscsi.ibft"
            ) && boolean(&a.key, a.value.as_deref()).unwrap_or(true))
            || a.key == "rd.iscsi.target.name"
            || a.key == "iscsi_target_name"
            || (a.key == "ip" && v == "ibft")
    })
}

/// Parameters whose values are secrets: never shown in errors or plans.
const SECRET_KEYS: &[&str] = &[
    "rd.iscsi.password",
    "rd.iscsi.in.password",
    "iscsi_password",
    "iscsi_in_password",
    "metal.iscsi.discovery.password",
    "metal.iscsi.discovery.in.password",
];

pub fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.contains(&key)
}

/// Parameters that may be given several times; the command line replaces
/// (not extends) the site config's list.
const LIST_KEYS: &[&str] = &[
    "metal.server",
    "netroot",
    "rd.iscsi.param",
    "metal.disk-allow",
    "metal.iscsi.discovery",
];

pub fn is_list_key(key: &str) -> bool {
    LIST_KEYS.contains(&key)
}

/// Which layer a word came from: the site config file or the command line.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Site,
    Cmdline,
}

#[derive(Default)]
struct ChapParts {
    user: Option<String>,
    pass: Option<String>,
    user_in: Option<String>,
    pass_in: Option<String>,
}

impl ChapParts {
    fn build(self, prefix: &str) -> Result<Option<Chap>, ParamError> {
        match (self.user, self.pass) {
            (None, None) if self.user_in.is_none() && self.pass_in.is_none() => Ok(None),
            (Some(u), Some(p)) => {
                if self.user_in.is_some() != self.pass_in.is_some() {
                    return Err(ParamError::new(
                        &format!("{prefix}.in.username"),
                        self.user_in.as_deref().unwrap_or(""),
                        format!(
                            "mutual CHAP needs both {prefix}.in.username and {prefix}.in.password"
                        ),
                    ));
                }
                Ok(Some(Chap {
                    username: u,
                    password: p,
                    username_in: self.user_in,
                    password_in: self.pass_in,
                }))
            }
            (u, _) => Err(ParamError::new(
                &format!("{prefix}.username"),
                u.as_deref().unwrap_or(""),
                format!("CHAP needs both {prefix}.username and {prefix}.password"),
            )),
        }
    }
}

impl Config {
    /// Parses site defaults, then the command line on top of them.
    pub fn parse(site: &[Arg], cmdline: &[Arg]) -> Result<Config, ParamError> {
        let mut c = Config::default();
        let mut chap = ChapParts::default();
        let mut disco = ChapParts::default();
        let mut cleared: Vec<&str> = Vec::new();
        for (layer, args) in [(Layer::Site, site), (Layer::Cmdline, cmdline)] {
            for a in args {
                if layer == Layer::Cmdline {
                    if let Some(k) = LIST_KEYS.iter().find(|k| **k == a.key) {
                        if !cleared.contains(k) {
                            cleared.push(k);
                            c.clear_list(k);
                        }
                    }
                }
                c.apply(a, &mut chap, &mut disco)?;
            }
        }
        c.iscsi_chap = chap.build("rd.iscsi")?;
        c.discovery_chap = disco.build("metal.iscsi.discovery")?;
        Ok(c)
    }

    fn clear_list(&mut self, key: &str) {
        match key {
            "metal.server" => self.servers.clear(),
            "netroot" => self.netroots.clear(),
            "rd.iscsi.param" => self.iscsi_params.clear(),
            "metal.disk-allow" => self.disk_allow.clear(),
            "metal.iscsi.discovery" => self.iscsi_discovery.clear(),
            _ => {}
        }
    }

    fn apply(
        &mut self,
        a: &Arg,
        chap: &mut ChapParts,
        disco: &mut ChapParts,
    ) -> Result<(), ParamError> {
        let k = a.key.as_str();
        let v = a.value.as_deref();
        let secret = |v: Option<&str>| -> Result<String, ParamError> {
            match v {
                Some(s) if !s.is_empty() => Ok(s.to_string()),
                _ => Err(ParamError::secret(k, "a value is required")),
            }
        };
        let text = |v: Option<&str>| -> Result<String, ParamError> {
            let s = required(k, v)?;
            if s.chars().any(|c| c.is_control()) {
                return Err(ParamError::new(k, s, "holds a control character"));
            }
            Ok(s.to_string())
        };
        match k {
            // seed 000
            "metal.server" => self.servers.push(Source::parse(k, v)?),
            "metal.debug" => self.debug = boolean(k, v)?,
            "metal.disks" => self.disks = number(k, v, 1, 64)?,
            "metal.md-level" => self.md_level = md_level(k, v)?,
            "metal.no-wipe" => self.no_wipe = boolean(k, v)?,
            "metal.wipe-delay" => self.wipe_delay = number(k, v, 2, 60)?,
            "metal.min-disk-size" => self.min_disk_size_gib = number(k, v, 1, 1 << 20)?,
            "metal.ipv4" => self.ipv4 = boolean(k, v)?,
            "metal.sqfs-md-size" => self.sqfs_md_size_gb = number(k, v, 25, 100)?,
            "metal.oval-md-size" => self.oval_md_size_gb = number(k, v, 25, 200)?,
            "metal.aux-md-size" => self.aux_md_size_gb = number(k, v, 0, 200)?,
            // dracut live
            "root" => self.root = Some(parse_root(k, v)?),
            "rd.live.image" | "liveimg" => self.live_image = boolean(k, v)?,
            "rd.live.dir" | "live_dir" => self.live_dir = path_component(k, v)?,
            "rd.live.squashimg" => self.squashimg = path_component(k, v)?,
            // dracut-ng's rd.overlay is also the boolean that replaced
            // rd.live.overlay.overlayfs.
            "rd.overlay" if v.is_none() || boolean(k, v).is_ok() => self.overlayfs = boolean(k, v)?,
            "rd.live.overlay" | "rd.overlay" | "overlay" => {
                self.overlay = Some(parse_overlay(k, v)?)
            }
            "rd.live.overlay.overlayfs" | "rd.overlayfs" => self.overlayfs = boolean(k, v)?,
            "rd.live.overlay.reset" | "rd.overlay.reset" | "reset_overlay" => {
                self.overlay_reset = boolean(k, v)?
            }
            "rd.live.overlay.readonly" | "rd.overlay.readonly" | "readonly_overlay" => {
                self.overlay_readonly = boolean(k, v)?
            }
            "rd.live.overlay.size" | "rd.overlay.size" => {
                self.overlay_size_mib = number(k, v, 1, 1 << 30)?
            }
            "rd.live.ram" | "live_ram" => self.live_ram = boolean(k, v)?,
            "rd.live.overlay.thin" | "rd.writable.fsimg" if boolean(k, v)? => {
                self.ignored.push(format!(
                    "{k}: ignored, metalroot always uses an OverlayFS overlay"
                ));
            }
            "rd.live.check" if boolean(k, v)? => {
                self.ignored.push(format!(
                    "{k}: ignored, the image is verified by SHA-256 instead"
                ));
            }
            "rd.live.overlay.thin" | "rd.live.check" | "rd.writable.fsimg" => {}
            // dracut iSCSI
            "netroot" => match v {
                Some("iscsi") => self.netroot_iscsi = true,
                Some(s) if s.starts_with("iscsi:") => {
                    self.netroot_iscsi = true;
                    self.netroots
                        .push(iscsi_spec::parse(k, &s["iscsi:".len()..])?);
                }
                // netroot=nfs:… and friends belong to other modules.
                _ => {}
            },
            "rd.iscsi.initiator" | "iscsi_initiator" => {
                self.iscsi_initiator = Some(iscsi_name(k, v)?)
            }
            "rd.iscsi.target.name" | "iscsi_target_name" => {
                self.iscsi_manual.target_name = Some(iscsi_name(k, v)?)
            }
            "rd.iscsi.target.ip" | "iscsi_target_ip" => {
                self.iscsi_manual.target_ip = Some(host(k, v)?)
            }
            "rd.iscsi.target.port" | "iscsi_target_port" => {
                self.iscsi_manual.target_port = Some(number(k, v, 1, 65535)? as u16)
            }
            "rd.iscsi.target.group" | "iscsi_target_group" => {
                self.iscsi_manual.target_group = Some(number(k, v, 0, u32::MAX as u64)? as u32)
            }
            "rd.iscsi.username" | "iscsi_username" => chap.user = Some(text(v)?),
            "rd.iscsi.password" | "iscsi_password" => chap.pass = Some(secret(v)?),
            "rd.iscsi.in.username" | "iscsi_in_username" => chap.user_in = Some(text(v)?),
            "rd.iscsi.in.password" | "iscsi_in_password" => chap.pass_in = Some(secret(v)?),
            "rd.iscsi.firmware" | "iscsi_firmware" => self.iscsi_firmware = boolean(k, v)?,
            "rd.iscsi.login_retry_max" => {
                self.iscsi_login_retry_max = Some(number(k, v, 0, 10000)?)
            }
            "rd.iscsi.param" => {
                let p = text(v)?;
                if !p.contains('=') || p.contains(' ') {
                    return Err(ParamError::new(k, &p, "expected NAME=VALUE"));
                }
                if p.to_ascii_lowercase().contains("password") {
                    return Err(ParamError::secret(
                        k,
                        "passwords may not be passed as rd.iscsi.param; use rd.iscsi.password",
                    ));
                }
                self.iscsi_params.push(p)
            }
            "rd.iscsi.ibft" => self.iscsi_ibft = boolean(k, v)?,
            "rd.iscsi.mp" | "rd.iscsi.testroute" => {
                boolean(k, v)?;
                self.ignored
                    .push(format!("{k}: ignored, not needed by metalroot"));
            }
            "rd.iscsi.waitnet" => self.iscsi_waitnet = boolean(k, v)?,
            "ip" if v == Some("ibft") => self.iscsi_ibft = true,
            // rd.multipath=default turns it on, a false boolean off.
            "rd.multipath" => {
                self.multipath = !matches!(
                    v.map(str::to_ascii_lowercase).as_deref(),
                    Some("0" | "no" | "n" | "off" | "false")
                )
            }
            // metalroot's own
            "metal.sha256" => {
                let s = required(k, v)?.to_ascii_lowercase();
                if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ParamError::new(k, &s, "expected 64 hexadecimal digits"));
                }
                self.sha256 = Some(s)
            }
            "metal.ca" => {
                let p = text(v)?;
                if !p.starts_with('/') {
                    return Err(ParamError::new(k, &p, "expected an absolute path"));
                }
                self.ca_file = Some(p)
            }
            "metal.ram" => {
                let m = required(k, v)?;
                self.ram = Some(
                    RamMode::from_str(m, false)
                        .map_err(|_| ParamError::new(k, m, "expected copy, squashfs or overlay"))?,
                )
            }
            "metal.overlay" => {
                let u = required(k, v)?;
                self.upper = Some(
                    Upper::from_str(u, false)
                        .map_err(|_| ParamError::new(k, u, "expected tmpfs or zram"))?,
                )
            }
            "metal.zram-size" => self.zram_size = Size::parse(k, v)?,
            "metal.zram-comp" => self.zram_comp = word(k, v)?,
            "metal.zram-fs" => {
                self.zram_fs = match required(k, v)? {
                    f @ ("xfs" | "ext4") => f.to_string(),
                    other => return Err(ParamError::new(k, other, "expected xfs or ext4")),
                }
            }
            "metal.trap" => self.trap = boolean(k, v)?,
            "metal.disk-allow" => {
                for item in required(k, v)?.split(',').filter(|s| !s.is_empty()) {
                    let id = item
                        .parse::<DiskId>()
                        .map_err(|why| ParamError::new(k, item, why))?;
                    self.disk_allow.push(id);
                }
            }
            "metal.dry-run" => self.dry_run = boolean(k, v)?,
            "metal.iscsi.discovery" => {
                let p = required(k, v)?;
                self.iscsi_discovery.push(portal(k, p)?)
            }
            "metal.iscsi.discovery.username" => disco.user = Some(text(v)?),
            "metal.iscsi.discovery.password" => disco.pass = Some(secret(v)?),
            "metal.iscsi.discovery.in.username" => disco.user_in = Some(text(v)?),
            "metal.iscsi.discovery.in.password" => disco.pass_in = Some(secret(v)?),
            "metal.luks" => self.luks = Some(DevSpec::parse(k, required(k, v)?)?),
            "metal.luks.name" => self.luks_name = word(k, v)?,
            "metal.luks.key" => {
                let s = required(k, v)?;
                self.luks_key = Some(if let Some(name) = s.strip_prefix("cred:") {
                    if name.is_empty() || name.contains('/') {
                        return Err(ParamError::new(k, s, "expected cred:<credential name>"));
                    }
                    LuksKey::Credential(name.to_string())
                } else if s.starts_with("https://") {
                    LuksKey::Url(s.to_string())
                } else {
                    return Err(ParamError::new(
                        k,
                        &crate::values::redact_url(s),
                        "expected cred:<name> or an https:// URL (the key never goes on the command line)",
                    ));
                })
            }
            "metal.lvm" => self.lvm = boolean(k, v)?,
            "metal.lower" => self.lower = Some(DevSpec::parse(k, required(k, v)?)?),
            "metal.lower.var" => self.lower_var = Some(DevSpec::parse(k, required(k, v)?)?),
            "metal.fetch-timeout" => self.fetch_timeout = number(k, v, 10, 86400)?,
            _ if k.starts_with("metal.") => {
                // A typo such as metal.no_wipe must not silently mean "wipe".
                let shown = if k.contains("password") {
                    "<redacted>"
                } else {
                    v.unwrap_or("")
                };
                return Err(ParamError::new(
                    k,
                    shown,
                    "unknown metal.* parameter (see docs/cmdline.md)",
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

fn parse_root(k: &str, v: Option<&str>) -> Result<Root, ParamError> {
    let v = required(k, v)?;
    if let Some(live) = v.strip_prefix("live:") {
        if live.contains("://") {
            let source = Source::parse(k, Some(live))?;
            if !matches!(source, Source::Http { .. }) {
                return Err(ParamError::new(
                    k,
                    v,
                    "root=live: takes a device or an http(s) URL",
                ));
            }
            return Ok(Root::LiveUrl { source });
        }
        return Ok(Root::LiveDevice {
            device: DevSpec::parse(k, live)?,
        });
    }
    if let Some(spec) = v.strip_prefix("iscsi:") {
        return Ok(Root::IscsiLun {
            target: iscsi_spec::parse(k, spec)?,
        });
    }
    Ok(Root::Other {
        value: v.to_string(),
    })
}

fn parse_overlay(k: &str, v: Option<&str>) -> Result<OverlayDev, ParamError> {
    let v = required(k, v)?;
    if v == "none" {
        return Ok(OverlayDev::None);
    }
    // `<devspec>:<path>`. A /dev/disk/by-path name holds ':' itself, so
    // after one the path must be absolute (or `auto`) to be told apart.
    let by_path = v.starts_with("/dev/disk/by-path/");
    let (dev, path) = match v.rsplit_once(':') {
        Some((d, p))
            if !d.is_empty()
                && (p.starts_with('/') || p == "auto" || (!by_path && !p.contains('/'))) =>
        {
            (d, Some(p))
        }
        _ => (v, None),
    };
    let device = DevSpec::parse(k, dev)?;
    let path = match path {
        None | Some("auto") => None,
        Some(p) => {
            if p.is_empty() || p.split('/').any(|c| c == "..") {
                return Err(ParamError::new(
                    k,
                    v,
                    "the overlay path is empty or holds '..'",
                ));
            }
            Some(format!("/{}", p.trim_start_matches('/')))
        }
    };
    Ok(OverlayDev::Device { device, path })
}

/// One path component (no '/', no '..').
fn path_component(k: &str, v: Option<&str>) -> Result<String, ParamError> {
    let s = required(k, v)?.trim_matches('/');
    if s.is_empty() || s.split('/').any(|c| c == ".." || c == ".") || s.contains(char::is_control) {
        return Err(ParamError::new(
            k,
            s,
            "expected a relative path without '..'",
        ));
    }
    Ok(s.to_string())
}

/// A plain word: letters, digits and `-_.`.
fn word(k: &str, v: Option<&str>) -> Result<String, ParamError> {
    let s = required(k, v)?;
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ParamError::new(
            k,
            s,
            "expected letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(s.to_string())
}

fn iscsi_name(k: &str, v: Option<&str>) -> Result<String, ParamError> {
    let s = required(k, v)?;
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ParamError::new(k, s, "an iSCSI name holds no spaces"));
    }
    Ok(s.to_string())
}

fn host(k: &str, v: Option<&str>) -> Result<String, ParamError> {
    let s = required(k, v)?
        .trim_start_matches('[')
        .trim_end_matches(']');
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:_".contains(c))
    {
        return Err(ParamError::new(k, s, "expected a host name or IP address"));
    }
    Ok(s.to_string())
}

/// `host[:port]` or `[v6]:port`.
fn portal(k: &str, v: &str) -> Result<(String, u16), ParamError> {
    let (h, p) = if let Some(r) = v.strip_prefix('[') {
        match r.split_once(']') {
            Some((h, rest)) => (h, rest.strip_prefix(':')),
            None => return Err(ParamError::new(k, v, "IPv6 address has no closing ']'")),
        }
    } else if v.matches(':').count() == 1 {
        let (h, p) = v.split_once(':').unwrap_or((v, ""));
        (h, Some(p))
    } else {
        (v, None)
    };
    let port = match p {
        None => iscsi_spec::DEFAULT_PORT,
        Some(p) => number(k, Some(p), 1, 65535)? as u16,
    };
    Ok((host(k, Some(h))?, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::split;

    fn parse(s: &str) -> Result<Config, ParamError> {
        Config::parse(&[], &split(s))
    }

    #[test]
    fn seed_000_defaults() {
        let c = parse("metal.server=http://pit/ root=live:LABEL=SQFSRAID").unwrap();
        assert_eq!(c.disks, 2);
        assert_eq!(c.md_level, MdLevel::Raid1);
        assert!(!c.no_wipe);
        assert_eq!(c.wipe_delay, 5);
        assert_eq!(c.min_disk_size_gib, 16);
        assert!(c.ipv4);
        assert_eq!(
            (c.sqfs_md_size_gb, c.oval_md_size_gb, c.aux_md_size_gb),
            (25, 150, 150)
        );
        assert_eq!(c.live_dir, "LiveOS");
        assert_eq!(
            c.root,
            Some(Root::LiveDevice {
                device: DevSpec::Label("SQFSRAID".into())
            })
        );
    }

    #[test]
    fn site_defaults_are_overridden_by_cmdline() {
        let site = split("metal.disks=3 metal.server=http://a/ metal.server=http://b/");
        let c = Config::parse(&site, &split("metal.server=http://c/")).unwrap();
        assert_eq!(c.disks, 3);
        assert_eq!(c.servers.len(), 1);
        let c = Config::parse(&site, &split("metal.disks=1")).unwrap();
        assert_eq!((c.disks, c.servers.len()), (1, 2));
    }

    #[test]
    fn unknown_metal_parameter_is_an_error() {
        let e = parse("metal.no_wipe=1").unwrap_err();
        assert_eq!(e.param, "metal.no_wipe");
    }

    #[test]
    fn overlay_forms() {
        let c = parse("rd.live.overlay=/dev/sdb:/persist-hda.img").unwrap();
        assert_eq!(
            c.overlay,
            Some(OverlayDev::Device {
                device: DevSpec::Path("/dev/sdb".into()),
                path: Some("/persist-hda.img".into())
            })
        );
        let c = parse("rd.overlay=LABEL=ROOTRAID").unwrap();
        assert_eq!(
            c.overlay,
            Some(OverlayDev::Device {
                device: DevSpec::Label("ROOTRAID".into()),
                path: None
            })
        );
        let c = parse("rd.live.overlay=/dev/sdb1:persistent-overlay.img").unwrap();
        assert!(
            matches!(c.overlay, Some(OverlayDev::Device { path: Some(ref p), .. }) if p == "/persistent-overlay.img")
        );
        let c = parse("rd.live.overlay=UUID=99440c1f-8daa-41bf-b965-b7240a8996f4").unwrap();
        assert!(matches!(
            c.overlay,
            Some(OverlayDev::Device { path: None, .. })
        ));
        assert!(parse("rd.live.overlay=/dev/sdb:/../etc").is_err());
    }

    #[test]
    fn chap_needs_both_halves_and_hides_secrets() {
        assert!(parse("rd.iscsi.username=u netroot=iscsi").is_err());
        let e = parse("rd.iscsi.password=hunter2").unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        let c = parse("rd.iscsi.username=u rd.iscsi.password=p").unwrap();
        assert_eq!(c.iscsi_chap.unwrap().password, "p");
    }

    #[test]
    fn several_netroots() {
        let c = parse(
            "root=UUID=12424547 netroot=iscsi:192.168.50.1::::iqn.2009-06.dracut:target0 \
             netroot=iscsi:192.168.50.1::::iqn.2009-06.dracut:target1",
        )
        .unwrap();
        assert_eq!(c.netroots.len(), 2);
        assert!(matches!(c.root, Some(Root::Other { .. })));
    }

    #[test]
    fn requested_only_for_our_parameters() {
        assert!(!requested(&split("root=/dev/sda1 ro quiet")));
        assert!(requested(&split("root=live:LABEL=x")));
        assert!(requested(&split("metal.debug=1")));
        assert!(requested(&split("netroot=iscsi:1.2.3.4::::iqn.a:b")));
        assert!(requested(&split("ip=ibft")));
        assert!(!requested(&split("netroot=nfs:1.2.3.4:/x")));
    }

    #[test]
    fn bad_values_name_parameter_and_value() {
        for (line, param, value) in [
            ("metal.disks=two", "metal.disks", "two"),
            ("metal.md-level=raid7", "metal.md-level", "raid7"),
            ("metal.wipe-delay=1", "metal.wipe-delay", "1"),
            ("metal.sha256=abc", "metal.sha256", "abc"),
            ("root=live:ftp://x/y", "root", "ftp://x/y"),
            ("metal.ram=disk", "metal.ram", "disk"),
        ] {
            let e = parse(line).unwrap_err();
            assert_eq!(e.param, param, "{line}");
            assert_eq!(e.value, value, "{line}");
        }
    }

    #[test]
    fn dracut_ng_and_multipath_booleans() {
        let c = parse("root=live:LABEL=x rd.overlay rd.multipath=off").unwrap();
        assert!(c.overlayfs);
        assert!(c.overlay.is_none());
        assert!(!c.multipath);
        assert!(parse("rd.multipath=default").unwrap().multipath);
        let c = parse("rd.overlay=LABEL=P").unwrap();
        assert!(c.overlay.is_some());
    }

    #[test]
    fn by_path_overlay_needs_an_absolute_path() {
        let c = parse("rd.live.overlay=/dev/disk/by-path/pci-0000:00:1f.2-ata-1-part1").unwrap();
        assert_eq!(
            c.overlay,
            Some(OverlayDev::Device {
                device: DevSpec::Path("/dev/disk/by-path/pci-0000:00:1f.2-ata-1-part1".into()),
                path: None
            })
        );
    }

    #[test]
    fn manual_iscsi_and_firmware_aliases_ask_for_metalroot() {
        assert!(requested(&split(
            "rd.iscsi.target.name=iqn.a:b rd.iscsi.target.ip=1.2.3.4"
        )));
        assert!(requested(&split("iscsi_firmware")));
        assert!(!requested(&split("rd.iscsi.firmware=off")));
    }
}
