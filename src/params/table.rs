//! The one table of kernel command line parameters: each row names a
//! parameter (with its aliases), whether it is a list or a secret, whether
//! it alone asks for metalroot, and how its value lands in `Config`.
//! `Config::parse`, `requested()`, the list and secret keys, the property
//! test and the docs check all read this table.

use super::{
    host, iscsi_name, md_level, parse_overlay, parse_root, path_component, portal, word, ChapParts,
    Config, LuksKey, Measure,
};
use crate::error::ParamError;
use crate::iscsi_spec;
use crate::kinds::{DiskId, Verify, ZramFs};
use crate::redact::redact_url;
use crate::values::{boolean, number, required, DevSpec, Size, Source};
use clap::ValueEnum;
use std::str::FromStr;

/// What a parameter is being parsed into.
pub(super) struct Parsing {
    pub c: Config,
    pub chap: ChapParts,
    pub disco: ChapParts,
}

/// A parameter's value lands in `Parsing`; `k` is the spelling used.
type Custom = fn(&mut Parsing, k: &str, v: Option<&str>) -> Result<(), ParamError>;

/// How a value lands in `Config`: the common kinds by field, others by code.
pub(super) enum Apply {
    Bool(fn(&mut Config) -> &mut bool),
    /// A whole number within the bounds.
    Number((u64, u64), fn(&mut Config) -> &mut u64),
    /// dracut's `getargnum <default> <min> <max>`, as dracut-metal-mdsquash
    /// reads its numbers: an unparsable or out-of-range value takes the
    /// default (`Config::default()`'s, seed 000's), with a warning, instead
    /// of stopping the boot.
    Legacy((u64, u64), fn(&mut Config) -> &mut u64),
    /// dracut's `getargbool`: `0`, `no` and `off` are false, any other
    /// value is true (odd spellings get a warning).
    DracutBool(fn(&mut Config) -> &mut bool),
    /// A whole number within the bounds, None until given.
    MaybeNumber((u64, u64), fn(&mut Config) -> &mut Option<u64>),
    /// Text checked by the parser.
    Text(
        fn(&str, Option<&str>) -> Result<String, ParamError>,
        fn(&mut Config) -> &mut String,
    ),
    /// Text checked by the parser, None until given.
    MaybeText(
        fn(&str, Option<&str>) -> Result<String, ParamError>,
        fn(&mut Config) -> &mut Option<String>,
    ),
    /// A device: `/dev/…`, `LABEL=`, `UUID=`, … (DevSpec), None until given.
    Device(fn(&mut Config) -> &mut Option<DevSpec>),
    /// A part of the target's CHAP credentials (rd.iscsi.*), or of the
    /// discovery's (metal.iscsi.discovery.*).
    Chap(Side, Part),
    Custom(Custom),
    /// Given several times it repeats; on the command line it replaces (not
    /// extends) the site file's list, which the first function clears.
    List(fn(&mut Config), Custom),
    /// A comma-separated list whose items each parse alone; a list too.
    Items(&'static dyn ItemList),
}

/// A list of `Items`, as the table holds it (without its item type).
pub(super) trait ItemList: Sync {
    fn clear(&self, c: &mut Config);
    fn extend(&self, c: &mut Config, k: &str, v: Option<&str>) -> Result<(), ParamError>;
}

/// Where a list's items go, and how one item parses.
pub(super) struct Items<T: 'static> {
    field: fn(&mut Config) -> &mut Vec<T>,
    parse: fn(&str) -> Result<T, String>,
}

impl<T: 'static> ItemList for Items<T> {
    fn clear(&self, c: &mut Config) {
        (self.field)(c).clear()
    }

    fn extend(&self, c: &mut Config, k: &str, v: Option<&str>) -> Result<(), ParamError> {
        let new = items(k, v, self.parse)?;
        (self.field)(c).extend(new);
        Ok(())
    }
}

impl Apply {
    pub(super) fn run(&self, p: &mut Parsing, k: &str, v: Option<&str>) -> Result<(), ParamError> {
        match self {
            Apply::Bool(field) => *field(&mut p.c) = boolean(k, v)?,
            Apply::Number((min, max), field) => *field(&mut p.c) = number(k, v, *min, *max)?,
            Apply::Legacy((min, max), field) => match number(k, v, *min, *max) {
                Ok(n) => *field(&mut p.c) = n,
                Err(e) => {
                    let default = *field(&mut Config::default());
                    *field(&mut p.c) = default;
                    p.c.warnings.push(format!(
                        "{}; using {default}, as dracut-metal-mdsquash does",
                        e.detail()
                    ));
                }
            },
            Apply::DracutBool(field) => *field(&mut p.c) = dracut_bool(p, k, v),
            Apply::MaybeNumber((min, max), field) => {
                *field(&mut p.c) = Some(number(k, v, *min, *max)?)
            }
            Apply::Text(parse, field) => *field(&mut p.c) = parse(k, v)?,
            Apply::MaybeText(parse, field) => *field(&mut p.c) = Some(parse(k, v)?),
            Apply::Device(field) => *field(&mut p.c) = Some(DevSpec::parse(k, required(k, v)?)?),
            Apply::Chap(side, part) => {
                let parts = match side {
                    Side::Target => &mut p.chap,
                    Side::Discovery => &mut p.disco,
                };
                *part.of(parts) = Some(if part.secret() {
                    secret_value(k, v)?
                } else {
                    text(k, v)?
                })
            }
            Apply::Custom(f) | Apply::List(_, f) => f(p, k, v)?,
            Apply::Items(list) => list.extend(&mut p.c, k, v)?,
        }
        Ok(())
    }
}

/// Whether the word alone asks for metalroot.
#[derive(Clone, Copy)]
pub enum Asks {
    No,
    Always,
    When(fn(Option<&str>) -> bool),
}

pub struct Param {
    /// The name first, then its aliases.
    pub names: &'static [&'static str],
    /// It chooses which disks are wiped, or how many, or whether: a bad
    /// value (or a misspelt name) refuses the wipe instead of being
    /// guessed, and everything else still runs.
    pub guards_wipe: bool,
    /// Its value is never shown in errors or plans.
    pub secret: bool,
    pub asks: Asks,
    pub(super) apply: Apply,
}

impl Param {
    /// Given several times it repeats; on the command line it replaces (not
    /// extends) the site file's list.
    pub fn is_list(&self) -> bool {
        matches!(self.apply, Apply::List(..) | Apply::Items(_))
    }

    /// Empties the list before the command line's first value of it.
    pub(super) fn clear(&self, c: &mut Config) {
        match &self.apply {
            Apply::List(clear, _) => clear(c),
            Apply::Items(list) => list.clear(c),
            _ => {}
        }
    }
}

const fn row(names: &'static [&'static str], asks: Asks, apply: Apply) -> Param {
    Param {
        names,
        guards_wipe: false,
        secret: false,
        asks,
        apply,
    }
}

const fn p(names: &'static [&'static str], asks: Asks, apply: Custom) -> Param {
    row(names, asks, Apply::Custom(apply))
}

const fn list(
    names: &'static [&'static str],
    asks: Asks,
    clear: fn(&mut Config),
    apply: Custom,
) -> Param {
    row(names, asks, Apply::List(clear, apply))
}

#[derive(Clone, Copy)]
pub(super) enum Side {
    Target,
    Discovery,
}

/// A CHAP credential's parts; the passwords are secrets, never shown, even
/// when missing.
#[derive(Clone, Copy)]
pub(super) enum Part {
    User,
    Pass,
    UserIn,
    PassIn,
}

impl Part {
    const fn secret(self) -> bool {
        matches!(self, Part::Pass | Part::PassIn)
    }

    fn of(self, c: &mut ChapParts) -> &mut Option<String> {
        match self {
            Part::User => &mut c.user,
            Part::Pass => &mut c.pass,
            Part::UserIn => &mut c.user_in,
            Part::PassIn => &mut c.pass_in,
        }
    }
}

/// The target's CHAP (dracut's rd.iscsi.*; they alone do not ask for
/// metalroot).
const fn target_chap(names: &'static [&'static str], part: Part) -> Param {
    Param {
        secret: part.secret(),
        ..row(names, No, Apply::Chap(Side::Target, part))
    }
}

/// The discovery's CHAP (metalroot's own, so they ask for metalroot).
const fn discovery_chap(names: &'static [&'static str], part: Part) -> Param {
    Param {
        secret: part.secret(),
        ..row(names, Always, Apply::Chap(Side::Discovery, part))
    }
}

/// A row whose bad value refuses the wipe (see `Param::guards_wipe`).
const fn guard(p: Param) -> Param {
    Param {
        guards_wipe: true,
        ..p
    }
}

use Apply::{Bool, Device, DracutBool, Legacy, MaybeNumber, MaybeText, Number, Text};
use Asks::{Always, No, When};

fn secret_value(k: &str, v: Option<&str>) -> Result<String, ParamError> {
    match v {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(ParamError::secret(k, "a value is required")),
    }
}

/// A comma-separated value's items, each through `parse`; the error names
/// the item that does not parse.
fn items<T>(
    k: &str,
    v: Option<&str>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, ParamError> {
    required(k, v)?
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|one| parse(one).map_err(|why| ParamError::new(k, one, why)))
        .collect()
}

/// metal.disk-allow: serial:<s> or wwn:<w>.
static DISK_ALLOW: Items<DiskId> = Items {
    field: |c| &mut c.disk_allow,
    parse: DiskId::from_str,
};

/// metal.torrent-peers.
static PEERS: Items<std::net::SocketAddr> = Items {
    field: |c| &mut c.fetch.torrent.torrent_peers,
    parse: peer,
};

/// A torrent peer: ip:port.
fn peer(one: &str) -> Result<std::net::SocketAddr, String> {
    one.parse()
        .map_err(|_| "expected ip:port (an IPv6 address in brackets)".into())
}

/// A network in CIDR form, as the helper reads it.
fn network(one: &str) -> Result<String, String> {
    let net: ipnet::IpNet = one
        .parse()
        .map_err(|_| "expected a network in CIDR form, e.g. 10.1.0.0/16")?;
    Ok(net.to_string())
}

/// metal.torrent-allow.
static NETWORKS: Items<String> = Items {
    field: |c| &mut c.fetch.torrent.torrent_allow,
    parse: network,
};

/// Bytes per second: a number with an optional K, M or G (powers of 1024).
fn rate(k: &str, v: Option<&str>) -> Result<u64, ParamError> {
    let s = required(k, v)?;
    let (n, mult) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    n.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&b| b > 0 && b <= u64::from(u32::MAX))
        .ok_or_else(|| {
            ParamError::new(
                k,
                s,
                "expected bytes per second, with an optional K, M or G (at most 4G)",
            )
        })
}

fn text(k: &str, v: Option<&str>) -> Result<String, ParamError> {
    let s = required(k, v)?;
    if s.chars().any(|c| c.is_control()) {
        return Err(ParamError::new(k, s, "holds a control character"));
    }
    Ok(s.to_string())
}

/// One of a value type's canonical names, the same the steps' flags take.
/// A systemd credential's name (`cred:` in front is accepted, as
/// metal.luks.key writes it).
fn credential_name(k: &str, v: Option<&str>) -> Result<String, ParamError> {
    let s = required(k, v)?;
    let name = s.strip_prefix("cred:").unwrap_or(s);
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(ParamError::new(
            k,
            s,
            "expected a systemd credential's name",
        ));
    }
    Ok(name.to_string())
}

fn choice<T: ValueEnum>(k: &str, v: Option<&str>, why: &str) -> Result<T, ParamError> {
    let s = required(k, v)?;
    T::from_str(s, false).map_err(|_| ParamError::new(k, s, why))
}

/// Accepted, and a note when set to true.
fn ignored(p: &mut Parsing, k: &str, v: Option<&str>, why: &str) -> Result<(), ParamError> {
    if boolean(k, v)? {
        p.c.ignored.push(format!("{k}: ignored, {why}"));
    }
    Ok(())
}

/// dracut's reading of a boolean (`getargbool`): only `0`, `no` and `off`
/// are false. A spelling metalroot reads otherwise elsewhere (`false`, `n`)
/// or does not know gets a warning: mdsquash took it as true.
fn dracut_bool(p: &mut Parsing, k: &str, v: Option<&str>) -> bool {
    match v {
        None | Some("1" | "yes" | "y" | "on" | "true") => true,
        Some("0" | "no" | "off") => false,
        Some(other) => {
            p.c.warnings.push(format!(
                "{k}={other:?}: dracut reads any value but 0, no and off as true; taking it as true, as dracut-metal-mdsquash does"
            ));
            true
        }
    }
}

/// rd.live.overlay=<devspec>[:<path>] or none.
fn overlay(p: &mut Parsing, k: &str, v: Option<&str>) -> Result<(), ParamError> {
    p.c.overlay = Some(parse_overlay(k, v)?);
    Ok(())
}

/// A boolean that is true (or not a boolean at all) asks for metalroot.
fn true_or_odd(v: Option<&str>) -> bool {
    boolean("", v).unwrap_or(true)
}

pub static PARAMS: &[Param] = &[
    // seed 000
    list(
        &["metal.server"],
        Always,
        |c| c.servers.clear(),
        |p, k, v| {
            p.c.servers.push(Source::parse(k, v)?);
            Ok(())
        },
    ),
    row(&["metal.debug"], Always, DracutBool(|c| &mut c.debug)),
    guard(row(
        &["metal.disks"],
        Always,
        Number((1, 64), |c| &mut c.disks),
    )),
    p(&["metal.md-level"], Always, |p, k, v| {
        p.c.layout.md_level = md_level(k, v)?;
        Ok(())
    }),
    guard(row(
        &["metal.no-wipe"],
        Always,
        DracutBool(|c| &mut c.no_wipe),
    )),
    guard(row(
        &["metal.keep-layout"],
        Always,
        Bool(|c| &mut c.wipe.keep_layout),
    )),
    row(
        &["metal.wipe-anyway"],
        Always,
        Bool(|c| &mut c.wipe.wipe_anyway),
    ),
    row(
        &["metal.wipe-delay"],
        Always,
        Legacy((2, 60), |c| &mut c.wipe.wipe_delay),
    ),
    guard(row(
        &["metal.min-disk-size"],
        Always,
        Number((0, 1 << 20), |c| &mut c.min_disk_size_gib),
    )),
    row(
        &["metal.ipv4"],
        Always,
        DracutBool(|c| &mut c.fetch.http.ipv4),
    ),
    row(
        &["metal.read-timeout"],
        Always,
        Number((5, 3600), |c| &mut c.fetch.http.read_timeout),
    ),
    row(
        &["metal.sqfs-md-size"],
        Always,
        Legacy((25, 100), |c| &mut c.layout.sqfs_size_gb),
    ),
    row(
        &["metal.oval-md-size"],
        Always,
        Legacy((25, 200), |c| &mut c.layout.oval_size_gb),
    ),
    row(
        &["metal.aux-md-size"],
        Always,
        Legacy((0, 200), |c| &mut c.layout.aux_size_gb),
    ),
    // dracut live
    p(
        &["root"],
        When(|v| v.is_some_and(|v| v.starts_with("live:") || v.starts_with("iscsi:"))),
        |p, k, v| {
            p.c.root = Some(parse_root(k, v)?);
            Ok(())
        },
    ),
    row(
        &["rd.live.image", "liveimg"],
        No,
        Bool(|c| &mut c.live_image),
    ),
    row(
        &["rd.live.dir", "live_dir"],
        No,
        Text(path_component, |c| &mut c.live_dir),
    ),
    row(
        &["rd.live.squashimg"],
        No,
        Text(path_component, |c| &mut c.squashimg),
    ),
    // dracut-ng's rd.overlay is also the boolean that replaced
    // rd.live.overlay.overlayfs.
    p(&["rd.overlay"], No, |p, k, v| {
        if v.is_none() || boolean(k, v).is_ok() {
            p.c.overlayfs = boolean(k, v)?
        } else {
            overlay(p, k, v)?
        }
        Ok(())
    }),
    p(&["rd.live.overlay", "overlay"], No, overlay),
    row(
        &["rd.live.overlay.overlayfs", "rd.overlayfs"],
        No,
        Bool(|c| &mut c.overlayfs),
    ),
    row(
        &["rd.live.overlay.reset", "rd.overlay.reset", "reset_overlay"],
        No,
        Bool(|c| &mut c.overlay_reset),
    ),
    row(
        &[
            "rd.live.overlay.readonly",
            "rd.overlay.readonly",
            "readonly_overlay",
        ],
        No,
        Bool(|c| &mut c.overlay_readonly),
    ),
    row(
        &["rd.live.overlay.size", "rd.overlay.size"],
        No,
        Number((1, 1 << 30), |c| &mut c.overlay_size_mib),
    ),
    row(&["rd.live.ram", "live_ram"], No, Bool(|c| &mut c.live_ram)),
    p(
        &["rd.live.overlay.thin", "rd.writable.fsimg"],
        No,
        |p, k, v| {
            ignored(p, k, v, "metalroot builds no device-mapper snapshot; the writable layer is an OverlayFS upper or none")
        },
    ),
    p(&["rd.live.check"], No, |p, k, v| {
        ignored(p, k, v, "the image is verified by SHA-256 instead")
    }),
    // dracut iSCSI
    list(
        &["netroot"],
        When(|v| v.is_some_and(|v| v.starts_with("iscsi"))),
        |c| c.netroots.clear(),
        |p, k, v| {
            match v {
                Some("iscsi") => p.c.netroot_iscsi = true,
                Some(s) if s.starts_with("iscsi:") => {
                    p.c.netroot_iscsi = true;
                    p.c.netroots
                        .push(iscsi_spec::parse(k, &s["iscsi:".len()..])?);
                }
                // netroot=nfs:… and friends belong to other modules.
                _ => {}
            }
            Ok(())
        },
    ),
    row(
        &["rd.iscsi.initiator", "iscsi_initiator"],
        No,
        MaybeText(iscsi_name, |c| &mut c.iscsi.initiator),
    ),
    row(
        &["rd.iscsi.target.name", "iscsi_target_name"],
        Always,
        MaybeText(iscsi_name, |c| &mut c.iscsi_manual.target_name),
    ),
    row(
        &["rd.iscsi.target.ip", "iscsi_target_ip"],
        No,
        MaybeText(host, |c| &mut c.iscsi_manual.target_ip),
    ),
    row(
        &["rd.iscsi.target.port", "iscsi_target_port"],
        No,
        MaybeNumber((1, 65535), |c| &mut c.iscsi_manual.target_port),
    ),
    row(
        &["rd.iscsi.target.group", "iscsi_target_group"],
        No,
        MaybeNumber((0, u32::MAX as u64), |c| &mut c.iscsi_manual.target_group),
    ),
    target_chap(&["rd.iscsi.username", "iscsi_username"], Part::User),
    target_chap(&["rd.iscsi.password", "iscsi_password"], Part::Pass),
    target_chap(&["rd.iscsi.in.username", "iscsi_in_username"], Part::UserIn),
    target_chap(&["rd.iscsi.in.password", "iscsi_in_password"], Part::PassIn),
    p(
        &["rd.iscsi.firmware", "iscsi_firmware"],
        When(true_or_odd),
        |p, k, v| {
            p.c.iscsi_firmware = boolean(k, v)?;
            Ok(())
        },
    ),
    p(&["rd.iscsi.login_retry_max"], No, |p, k, v| {
        p.c.iscsi.retries = Some(number(k, v, 0, 10000)?);
        Ok(())
    }),
    list(
        &["rd.iscsi.param"],
        No,
        |c| c.iscsi.params.clear(),
        |p, k, v| {
            let s = text(k, v)?;
            if !s.contains('=') || s.contains(' ') {
                return Err(ParamError::new(k, &s, "expected NAME=VALUE"));
            }
            if s.to_ascii_lowercase().contains("password") {
                return Err(ParamError::secret(
                    k,
                    "passwords may not be passed as rd.iscsi.param; use rd.iscsi.password",
                ));
            }
            p.c.iscsi.params.push(s);
            Ok(())
        },
    ),
    p(&["rd.iscsi.ibft"], When(true_or_odd), |p, k, v| {
        p.c.iscsi_ibft = boolean(k, v)?;
        Ok(())
    }),
    p(&["rd.iscsi.mp", "rd.iscsi.testroute"], No, |p, k, v| {
        boolean(k, v)?;
        p.c.ignored
            .push(format!("{k}: ignored, not needed by metalroot"));
        Ok(())
    }),
    row(&["rd.iscsi.waitnet"], No, Bool(|c| &mut c.iscsi_waitnet)),
    // Every other ip= value belongs to the network module.
    p(&["ip"], When(|v| v == Some("ibft")), |p, _, v| {
        p.c.ip_given = true;
        if v == Some("ibft") {
            p.c.iscsi_ibft = true
        }
        Ok(())
    }),
    // rd.multipath=default turns it on, a false boolean off.
    p(&["rd.multipath"], No, |p, _, v| {
        p.c.multipath = !matches!(
            v.map(str::to_ascii_lowercase).as_deref(),
            Some("0" | "no" | "n" | "off" | "false")
        );
        Ok(())
    }),
    // metalroot's own
    p(&["metal.sha256"], Always, |p, k, v| {
        let s = required(k, v)?.to_ascii_lowercase();
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParamError::new(k, &s, "expected 64 hexadecimal digits"));
        }
        p.c.fetch.sha256 = Some(s);
        Ok(())
    }),
    row(
        &["metal.server-spread"],
        Always,
        Bool(|c| &mut c.fetch.spread),
    ),
    p(&["metal.torrent"], Always, |p, k, v| {
        let s = text(k, v)?;
        crate::sys::swarm::metainfo(&s).map_err(|e| ParamError::new(k, &s, e))?;
        p.c.fetch.torrent.torrent = Some(s);
        Ok(())
    }),
    row(&["metal.torrent-peers"], Always, Apply::Items(&PEERS)),
    row(&["metal.torrent-allow"], Always, Apply::Items(&NETWORKS)),
    p(&["metal.torrent-port"], Always, |p, k, v| {
        p.c.fetch.torrent.torrent_port = number(k, v, 1, 65535)? as u16;
        Ok(())
    }),
    p(&["metal.torrent-upload"], Always, |p, k, v| {
        p.c.fetch.torrent.torrent_upload = rate(k, v)?;
        Ok(())
    }),
    row(
        &["metal.torrent-timeout"],
        Always,
        Number((1, 3600), |c| &mut c.fetch.torrent.torrent_timeout),
    ),
    row(
        &["metal.torrent-seed"],
        Always,
        Number((0, 7 * 86400), |c| &mut c.fetch.torrent.torrent_seed),
    ),
    p(&["metal.verify"], Always, |p, k, v| {
        let m = choice(k, v, "expected signature, sha256 or none")?;
        if m != Verify::Signature {
            p.c.warnings.push(format!(
                "{k}={m}: the image's signature is not checked{}",
                if m == Verify::None {
                    ", nor its sha256: any image the server hands out is booted"
                } else {
                    ", even when a trusted key is installed: a changed image with a matching .sha256 is booted"
                }
            ));
        }
        p.c.fetch.verify = Some(m);
        Ok(())
    }),
    p(&["metal.verify-key"], Always, |p, k, v| {
        p.c.fetch.verify_key = Some(credential_name(k, v)?);
        Ok(())
    }),
    p(&["metal.tpm-pcr"], Always, |p, k, v| {
        p.c.measure = match required(k, v)? {
            "off" | "no" => Measure::Off,
            _ => Measure::Always(number(k, v, 0, 23)?),
        };
        Ok(())
    }),
    p(&["metal.ca"], Always, |p, k, v| {
        let s = text(k, v)?;
        if !s.starts_with('/') {
            return Err(ParamError::new(k, &s, "expected an absolute path"));
        }
        p.c.fetch.http.ca = Some(s.into());
        Ok(())
    }),
    p(&["metal.ram"], Always, |p, k, v| {
        p.c.ram = Some(choice(k, v, "expected copy, squashfs or overlay")?);
        Ok(())
    }),
    p(&["metal.overlay"], Always, |p, k, v| {
        p.c.upper = Some(choice(k, v, "expected tmpfs or zram")?);
        Ok(())
    }),
    p(&["metal.zram-size"], Always, |p, k, v| {
        p.c.zram.size = Size::parse(k, v)?;
        Ok(())
    }),
    p(&["metal.zram-comp"], Always, |p, k, v| {
        let s = required(k, v)?;
        p.c.zram.comp = s.parse().map_err(|e: String| ParamError::new(k, s, e))?;
        Ok(())
    }),
    p(&["metal.zram-fs"], Always, |p, k, v| {
        p.c.zram.fs = match required(k, v)? {
            "xfs" => ZramFs::Xfs,
            "ext4" => ZramFs::Ext4,
            other => return Err(ParamError::new(k, other, "expected xfs or ext4")),
        };
        Ok(())
    }),
    row(&["metal.trap"], Always, Bool(|c| &mut c.trap)),
    guard(row(
        &["metal.disk-allow"],
        Always,
        Apply::Items(&DISK_ALLOW),
    )),
    guard(row(&["metal.dry-run"], Always, Bool(|c| &mut c.dry_run))),
    list(
        &["metal.iscsi.discovery"],
        Always,
        |c| c.iscsi_discovery.clear(),
        |p, k, v| {
            p.c.iscsi_discovery.push(portal(k, required(k, v)?)?);
            Ok(())
        },
    ),
    discovery_chap(&["metal.iscsi.discovery.username"], Part::User),
    discovery_chap(&["metal.iscsi.discovery.password"], Part::Pass),
    discovery_chap(&["metal.iscsi.discovery.in.username"], Part::UserIn),
    discovery_chap(&["metal.iscsi.discovery.in.password"], Part::PassIn),
    row(&["metal.luks"], Always, Device(|c| &mut c.luks)),
    row(
        &["metal.luks.name"],
        Always,
        Text(word, |c| &mut c.luks_name),
    ),
    p(&["metal.luks.key"], Always, |p, k, v| {
        let s = required(k, v)?;
        p.c.luks_key = Some(if let Some(name) = s.strip_prefix("cred:") {
            if name.is_empty() || name.contains('/') {
                return Err(ParamError::new(k, s, "expected cred:<credential name>"));
            }
            LuksKey::Credential(name.to_string())
        } else if s.starts_with("https://") {
            LuksKey::Url(s.to_string())
        } else {
            return Err(ParamError::new(
                k,
                &redact_url(s),
                "expected cred:<name> or an https:// URL (the key never goes on the command line)",
            ));
        });
        Ok(())
    }),
    row(&["metal.lvm"], Always, Bool(|c| &mut c.lvm)),
    row(&["metal.lower"], Always, Device(|c| &mut c.lower)),
    row(&["metal.lower.var"], Always, Device(|c| &mut c.lower_var)),
    row(
        &["metal.fetch-timeout"],
        Always,
        Number((10, 86400), |c| &mut c.fetch.timeout),
    ),
];

/// The row of a parameter by any of its names.
pub fn find(key: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.names.contains(&key))
}

/// Every name and alias, in table order.
pub fn names() -> impl Iterator<Item = &'static str> {
    PARAMS.iter().flat_map(|p| p.names.iter().copied())
}
