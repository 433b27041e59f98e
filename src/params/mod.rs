//! The typed command line: every parameter metalroot reads, with its default.
//!
//! Names and defaults come from seed 000 (`metal.*` of dracut-metal-mdsquash),
//! dracut.cmdline(7) (`root=live:`, `rd.live.*`, `rd.overlay*`, `netroot=iscsi:`,
//! `rd.iscsi.*`, `rd.multipath`) and metalroot's own `metal.*` additions. See
//! docs/cmdline.md for the table.

use crate::cmdline::Arg;
use crate::error::ParamError;
use crate::iscsi_spec::{self, Chap, IscsiTarget};
mod table;

pub use crate::kinds::{DiskId, MdLevel, RamMode, Upper};
use crate::kinds::{
    Size, ZramComp, ZramFs, DEFAULT_LIVE_DIR, DEFAULT_OVERLAY_SIZE_MIB, DEFAULT_SQUASHIMG,
    DEFAULT_ZRAM_FS, DEFAULT_ZRAM_SIZE,
};
use crate::steps::{fetch::FetchOpts, iscsi::IscsiOpts, layout::LayoutOpts, wipe::WipeOpts};
use crate::sys::http::HttpOpts;
use crate::values::{number, required, DevSpec, Source};
use serde::Serialize;
use table::Parsing;
pub use table::{names, Asks, Param, PARAMS};

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
    /// Within 1..=65535 (the table's bounds).
    pub target_port: Option<u64>,
    /// Within u32 (the table's bounds).
    pub target_group: Option<u64>,
}

/// The zram device of `metal.overlay=zram` (metal.zram-*).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Zram {
    pub size: Size,
    pub comp: ZramComp,
    pub fs: ZramFs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    // Options that pass straight to a step: each is its step's own struct.
    pub wipe: WipeOpts,
    pub layout: LayoutOpts,
    pub fetch: FetchOpts,
    pub iscsi: IscsiOpts,
    // seed 000
    pub servers: Vec<Source>,
    pub debug: bool,
    pub disks: u64,
    pub no_wipe: bool,
    pub min_disk_size_gib: u64,
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
    pub iscsi_manual: IscsiManual,
    pub iscsi_chap: Option<Chap>,
    // metal.iscsi.discovery: metalroot's own
    pub iscsi_discovery: Vec<(String, u16)>,
    pub discovery_chap: Option<Chap>,
    pub iscsi_firmware: bool,
    pub iscsi_ibft: bool,
    pub iscsi_waitnet: bool,
    pub multipath: bool,
    /// An `ip=` is on the command line: the network is configured by the
    /// initrd's own network setup, not by metalroot's DHCP fallback.
    pub ip_given: bool,
    // metalroot's own: the root's layers
    pub ram: Option<RamMode>,
    pub upper: Option<Upper>,
    pub zram: Zram,
    // the wipe's guards
    pub disk_allow: Vec<DiskId>,
    pub dry_run: bool,
    // the block stack
    pub luks: Option<DevSpec>,
    pub luks_name: String,
    pub luks_key: Option<LuksKey>,
    pub lvm: bool,
    pub lower: Option<DevSpec>,
    pub lower_var: Option<DevSpec>,
    /// metal.trap: a shell on the console once the root is assembled,
    /// before switch-root (seed 001's DisklessTrap).
    pub trap: bool,
    /// Measured boot (metal.tpm-pcr): by default only a signature-checked
    /// image is measured (a site that installed a key opted in).
    pub measure: Measure,
    /// Parameters we accept but do not act on, with why.
    pub ignored: Vec<String>,
    /// Values taken as dracut-metal-mdsquash takes them (a default for an
    /// out-of-range number, an odd boolean), and unknown `metal.*` names:
    /// the boot goes on, and the generator logs each at warning priority.
    pub warnings: Vec<String>,
    /// Bad values of parameters that choose what is wiped
    /// (`Param::guards_wipe`): the wipe is refused, naming each of them.
    pub wipe_refused: Vec<String>,
}

/// metal.tpm-pcr: which images are measured, and into which PCR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Measure {
    /// A signature-checked image, into the default PCR.
    WhenSigned,
    /// Every image, into this PCR (metal.tpm-pcr=N).
    Always(u64),
    /// None (metal.tpm-pcr=off).
    Off,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            wipe: WipeOpts::default(),
            layout: LayoutOpts::default(),
            fetch: FetchOpts {
                // seed 000: metal.ipv4 defaults to 1.
                http: HttpOpts {
                    ipv4: true,
                    ..HttpOpts::default()
                },
                ..FetchOpts::default()
            },
            iscsi: IscsiOpts::default(),
            servers: Vec::new(),
            debug: false,
            disks: 2,
            no_wipe: false,
            min_disk_size_gib: 16,
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
            iscsi_manual: IscsiManual::default(),
            iscsi_chap: None,
            iscsi_firmware: false,
            iscsi_ibft: false,
            iscsi_waitnet: true,
            multipath: false,
            ip_given: false,
            ram: None,
            upper: None,
            zram: Zram {
                size: DEFAULT_ZRAM_SIZE,
                comp: ZramComp::default(),
                fs: DEFAULT_ZRAM_FS,
            },
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
            measure: Measure::WhenSigned,
            ignored: Vec::new(),
            warnings: Vec::new(),
            wipe_refused: Vec::new(),
        }
    }
}

/// True when the command line asks for metalroot at all. Without this the
/// generator writes nothing, so metalroot can sit in any initrd harmlessly.
pub fn requested(args: &[Arg]) -> bool {
    args.iter().any(|a| {
        // Any metal.* word, unknown ones too: they are refused, not ignored.
        a.key.starts_with("metal.")
            || match table::find(&a.key).map(|p| p.asks) {
                Some(Asks::Always) => true,
                Some(Asks::When(f)) => f(a.value.as_deref()),
                Some(Asks::No) | None => false,
            }
    })
}

/// Parameters whose values are secrets: never shown in errors or plans.
pub fn is_secret_key(key: &str) -> bool {
    table::find(key).is_some_and(|p| p.secret)
}

/// Parameters that may be given several times; the command line replaces
/// (not extends) the site config's list.
pub fn is_list_key(key: &str) -> bool {
    table::find(key).is_some_and(|p| p.is_list())
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
        let mut p = Parsing {
            c: Config::default(),
            chap: ChapParts::default(),
            disco: ChapParts::default(),
        };
        let mut cleared: Vec<&str> = Vec::new();
        // Every bad value is collected, so one refusal names them all, in
        // command-line order (those that would only refuse the wipe too).
        let mut errors = Vec::new();
        for (layer, args) in [(Layer::Site, site), (Layer::Cmdline, cmdline)] {
            for a in args {
                let k = a.key.as_str();
                let v = a.value.as_deref();
                let Some(param) = table::find(k) else {
                    if k.starts_with("metal.") {
                        unknown_metal(&mut p.c, k, v);
                    }
                    continue;
                };
                if layer == Layer::Cmdline && param.is_list() && !cleared.contains(&param.names[0])
                {
                    cleared.push(param.names[0]);
                    param.clear(&mut p.c);
                }
                if let Err(e) = param.apply.run(&mut p, k, v) {
                    if param.guards_wipe {
                        p.c.wipe_refused.push(e.detail());
                    }
                    errors.push((param.guards_wipe, e));
                }
            }
        }
        match p.chap.build("rd.iscsi") {
            Ok(chap) => p.c.iscsi_chap = chap,
            Err(e) => errors.push((false, e)),
        }
        match p.disco.build("metal.iscsi.discovery") {
            Ok(chap) => p.c.discovery_chap = chap,
            Err(e) => errors.push((false, e)),
        }
        // Only wipe refusals: the boot goes on without the wipe.
        if errors.iter().all(|(wipe_only, _)| *wipe_only) {
            return Ok(p.c);
        }
        match ParamError::all(errors.into_iter().map(|(_, e)| e).collect()) {
            Some(e) => Err(e),
            None => Ok(p.c),
        }
    }
}

/// An unknown `metal.*` name: dracut-metal-mdsquash ignores it, so metalroot
/// warns and goes on, unless it is a misspelling (`_` for `-`, case) of a
/// parameter that chooses what is wiped: `metal.no_wipe=1` must not mean
/// "wipe", so the wipe is refused instead.
fn unknown_metal(c: &mut Config, k: &str, v: Option<&str>) {
    let shown = if k.contains("password") {
        "<redacted>".to_string()
    } else {
        crate::error::scrub(v.unwrap_or(""))
    };
    let near = k.to_ascii_lowercase().replace('_', "-");
    match table::find(&near) {
        Some(param) if param.guards_wipe => c.wipe_refused.push(format!(
            "{k}={shown:?}: unknown parameter; did you mean {}? The wipe is refused rather than guessed",
            param.names[0]
        )),
        Some(param) => c.warnings.push(format!(
            "{k}={shown:?}: unknown metal.* parameter, ignored (did you mean {}?)",
            param.names[0]
        )),
        None => c.warnings.push(format!(
            "{k}={shown:?}: unknown metal.* parameter, ignored (see docs/cmdline.md)"
        )),
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
    spelt(
        k,
        v,
        "-_.",
        "expected letters, digits, '-', '_' or '.'",
        str::to_string,
    )
}

fn iscsi_name(k: &str, v: Option<&str>) -> Result<String, ParamError> {
    // RFC 3720 §3.2.6.2: iqn./eui./naa. names are letters, digits, '.',
    // '-' and ':'. Anything else (a URL with a password pasted in the wrong
    // parameter) is refused, never written into a unit.
    spelt(
        k,
        v,
        ".-:",
        "an iSCSI name holds only letters, digits, '.', '-' and ':' (RFC 3720)",
        crate::redact::redact_url,
    )
}

/// The value when it holds only letters, digits and the `extra` characters;
/// otherwise the error `why`, showing the value as `shown` makes it.
fn spelt(
    k: &str,
    v: Option<&str>,
    extra: &str,
    why: &str,
    shown: fn(&str) -> String,
) -> Result<String, ParamError> {
    let s = required(k, v)?;
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    {
        Ok(s.to_string())
    } else {
        Err(ParamError::new(k, &shown(s), why))
    }
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
        assert_eq!(c.layout.md_level, MdLevel::Raid1);
        assert!(!c.no_wipe);
        assert_eq!(c.wipe.wipe_delay, 5);
        assert_eq!(c.min_disk_size_gib, 16);
        assert!(c.fetch.http.ipv4);
        assert_eq!(
            (
                c.layout.sqfs_size_gb,
                c.layout.oval_size_gb,
                c.layout.aux_size_gb
            ),
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
    fn item_lists_extend_and_the_cmdline_replaces_the_site_list() {
        let site = split("metal.disk-allow=serial:S1 metal.torrent-allow=10.9.0.0/16");
        let cmdline = split("metal.disk-allow=serial:A,wwn:0x5000ABC metal.disk-allow=serial:B");
        let c = Config::parse(&site, &cmdline).unwrap();
        let ids: Vec<String> = c.disk_allow.iter().map(|d| d.to_string()).collect();
        assert_eq!(ids, ["serial:A", "wwn:0x5000abc", "serial:B"]);
        assert_eq!(c.fetch.torrent.torrent_allow, ["10.9.0.0/16"]);
        let c = Config::parse(
            &[],
            &split("metal.torrent-peers=10.1.0.1:6881,[fd00::1]:7000"),
        )
        .unwrap();
        assert_eq!(c.fetch.torrent.torrent_peers.len(), 2);
        let e = parse("metal.torrent-allow=10.0.0.0/8,10.1.0.0/33").unwrap_err();
        assert_eq!(
            (e.param.as_str(), e.value.as_str()),
            ("metal.torrent-allow", "10.1.0.0/33")
        );
    }

    #[test]
    fn keep_layout_is_a_site_key_too() {
        let site = split("metal.keep-layout=1");
        let c = Config::parse(&site, &split("metal.server=http://a/")).unwrap();
        assert!(c.wipe.keep_layout);
        let c = Config::parse(&site, &split("metal.server=http://a/ metal.keep-layout=0")).unwrap();
        assert!(!c.wipe.keep_layout);
        let text = crate::site::parse("[cmdline]\nmetal.keep-layout = 1\n").unwrap();
        assert!(Config::parse(&text, &[]).unwrap().wipe.keep_layout);
    }

    #[test]
    fn a_misspelt_wipe_parameter_refuses_the_wipe() {
        // metal.no_wipe=1 must not silently mean "wipe".
        let c = parse("metal.server=http://a/ metal.no_wipe=1").unwrap();
        assert_eq!(c.wipe_refused.len(), 1);
        assert!(c.wipe_refused[0].contains("metal.no_wipe=\"1\""), "{c:?}");
        assert!(c.wipe_refused[0].contains("did you mean metal.no-wipe?"));
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn unknown_metal_parameters_are_warnings() {
        let c = parse("metal.server=http://a/ metal.fancy=1 metal.Wipe_Delay=9").unwrap();
        assert!(c.wipe_refused.is_empty());
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("metal.fancy=\"1\": unknown metal.* parameter"));
        assert!(c.warnings[1].contains("did you mean metal.wipe-delay?"));
        assert_eq!(c.wipe.wipe_delay, 5);
    }

    #[test]
    fn mdsquash_numbers_take_its_default_with_a_warning() {
        // dracut's getargnum: out of range or unparsable gives the default.
        let c = parse(
            "metal.server=http://a/ metal.wipe-delay=1 metal.sqfs-md-size=big metal.oval-md-size=500 metal.aux-md-size=0 metal.min-disk-size=0",
        )
        .unwrap();
        assert_eq!(c.wipe.wipe_delay, 5);
        assert_eq!(c.layout.sqfs_size_gb, 25);
        assert_eq!(c.layout.oval_size_gb, 150);
        assert_eq!(c.layout.aux_size_gb, 0);
        assert_eq!(c.min_disk_size_gib, 0);
        assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
        assert!(
            c.warnings[0].starts_with("metal.wipe-delay=\"1\": must be between 2 and 60; using 5")
        );
        assert!(c.wipe_refused.is_empty());
    }

    #[test]
    fn mdsquash_booleans_read_as_dracut_reads_them() {
        for (v, want, warned) in [
            ("0", false, false),
            ("no", false, false),
            ("off", false, false),
            ("1", true, false),
            ("yes", true, false),
            // getargbool: anything but 0, no and off is true.
            ("false", true, true),
            ("n", true, true),
            ("enabled", true, true),
        ] {
            let c = parse(&format!(
                "metal.server=http://a/ metal.no-wipe={v} metal.debug={v}"
            ))
            .unwrap();
            assert_eq!((c.no_wipe, c.debug), (want, want), "{v}");
            assert_eq!(c.warnings.len(), if warned { 2 } else { 0 }, "{v}");
            assert!(c.wipe_refused.is_empty());
        }
    }

    #[test]
    fn a_bad_value_that_chooses_disks_refuses_the_wipe() {
        for (line, param) in [
            ("metal.disks=two", "metal.disks=\"two\""),
            ("metal.disks=0", "metal.disks=\"0\""),
            ("metal.min-disk-size=-1", "metal.min-disk-size=\"-1\""),
            ("metal.disk-allow=bogus:1", "metal.disk-allow=\"bogus:1\""),
            ("metal.dry-run=maybe", "metal.dry-run=\"maybe\""),
            ("metal.keep-layout=perhaps", "metal.keep-layout=\"perhaps\""),
        ] {
            let c = parse(&format!("metal.server=http://a/ {line}")).unwrap();
            assert_eq!(c.wipe_refused.len(), 1, "{line}");
            assert!(
                c.wipe_refused[0].starts_with(param),
                "{line}: {:?}",
                c.wipe_refused
            );
            // Never guessed: the default stays, and nothing else is refused.
            assert_eq!(c.disks, 2, "{line}");
        }
    }

    #[test]
    fn a_refusal_names_every_bad_value() {
        let e = parse("metal.md-level=raid7 metal.ram=disk metal.sha256=abc rd.iscsi.username=u")
            .unwrap_err();
        let all: Vec<&str> = e.each().map(|e| e.param.as_str()).collect();
        assert_eq!(
            all,
            [
                "metal.md-level",
                "metal.ram",
                "metal.sha256",
                "rd.iscsi.username"
            ]
        );
        let text = e.to_string();
        assert!(text.contains("metal.md-level=\"raid7\""), "{text}");
        assert!(text.contains("; metal.ram=\"disk\""), "{text}");
        assert!(!text.contains('\n'));
    }

    /// The overlay a command line asks for.
    fn overlay_of(line: &str) -> Option<OverlayDev> {
        parse(line).unwrap().overlay
    }

    /// A persistent overlay on a device.
    fn on(device: DevSpec, path: Option<&str>) -> Option<OverlayDev> {
        let path = path.map(str::to_string);
        Some(OverlayDev::Device { device, path })
    }

    #[test]
    fn overlay_forms() {
        assert_eq!(
            overlay_of("rd.live.overlay=/dev/sdb:/persist-hda.img"),
            on(DevSpec::Path("/dev/sdb".into()), Some("/persist-hda.img"))
        );
        assert_eq!(
            overlay_of("rd.overlay=LABEL=ROOTRAID"),
            on(DevSpec::Label("ROOTRAID".into()), None)
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
            ("metal.md-level=raid7", "metal.md-level", "raid7"),
            ("metal.fetch-timeout=1", "metal.fetch-timeout", "1"),
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
        let dev = "/dev/disk/by-path/pci-0000:00:1f.2-ata-1-part1";
        assert_eq!(
            overlay_of(&format!("rd.live.overlay={dev}")),
            on(DevSpec::Path(dev.into()), None)
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
