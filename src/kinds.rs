//! Value types shared by the parameters (`params`) and the steps' arguments
//! (`args`): parsed once from the command line, written into argv in their
//! canonical form and read back by clap.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// `metal.md-level`: what mdadm accepts as `--level`, normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MdLevel {
    Linear,
    Raid0,
    Raid1,
    Raid4,
    Raid5,
    Raid6,
    Raid10,
}

impl MdLevel {
    /// The kernel command line's spellings (dracut-metal-mdsquash's aliases).
    pub fn from_cmdline(v: &str) -> Option<MdLevel> {
        Some(match v.to_ascii_lowercase().as_str() {
            "linear" => MdLevel::Linear,
            "stripe" | "raid0" | "0" => MdLevel::Raid0,
            "mirror" | "raid1" | "1" => MdLevel::Raid1,
            "raid4" | "4" => MdLevel::Raid4,
            "raid5" | "5" => MdLevel::Raid5,
            "raid6" | "6" => MdLevel::Raid6,
            "raid10" | "10" => MdLevel::Raid10,
            _ => return None,
        })
    }

    /// The fewest members mdadm accepts for the level.
    pub fn min_disks(self) -> u64 {
        match self {
            MdLevel::Linear | MdLevel::Raid0 | MdLevel::Raid1 => 1,
            MdLevel::Raid4 | MdLevel::Raid5 | MdLevel::Raid10 => 2,
            MdLevel::Raid6 => 4,
        }
    }

    pub fn as_mdadm(self) -> &'static str {
        match self {
            MdLevel::Linear => "linear",
            MdLevel::Raid0 => "raid0",
            MdLevel::Raid1 => "raid1",
            MdLevel::Raid4 => "raid4",
            MdLevel::Raid5 => "raid5",
            MdLevel::Raid6 => "raid6",
            MdLevel::Raid10 => "raid10",
        }
    }
}

/// `metal.ram=`: the three boot-to-RAM modes of seed 002.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RamMode {
    /// Copy the image's tree into a tmpfs root.
    Copy,
    /// Mount the squashfs read-only as the root.
    Squashfs,
    /// The squashfs in RAM under a tmpfs overlay.
    Overlay,
}

impl RamMode {
    pub fn as_arg(self) -> &'static str {
        match self {
            RamMode::Copy => "copy",
            RamMode::Squashfs => "squashfs",
            RamMode::Overlay => "overlay",
        }
    }
}

/// `metal.overlay=`: a non-persistent upper layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Upper {
    Tmpfs,
    Zram,
}

impl Upper {
    pub fn as_arg(self) -> &'static str {
        match self {
            Upper::Tmpfs => "tmpfs",
            Upper::Zram => "zram",
        }
    }
}

/// `metal.zram-fs=`: the filesystem made on the zram upper device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ZramFs {
    Xfs,
    Ext4,
}

impl ZramFs {
    pub fn as_arg(self) -> &'static str {
        match self {
            ZramFs::Xfs => "xfs",
            ZramFs::Ext4 => "ext4",
        }
    }
}

/// `metal.zram-comp=`: a compression algorithm's name as zramctl takes it
/// (which ones exist is the kernel's business: checked as a word only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ZramComp(String);

impl FromStr for ZramComp {
    type Err = String;
    fn from_str(s: &str) -> Result<ZramComp, String> {
        if s.is_empty()
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            return Err("expected an algorithm name such as zstd, lz4 or lzo-rle".into());
        }
        Ok(ZramComp(s.to_string()))
    }
}

impl Default for ZramComp {
    fn default() -> Self {
        ZramComp(DEFAULT_ZRAM_COMP.to_string())
    }
}

impl fmt::Display for ZramComp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An entry of `metal.disk-allow=`: `serial:<s>` or `wwn:<w>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", content = "value", rename_all = "lowercase")]
pub enum DiskId {
    Serial(String),
    Wwn(String),
}

impl fmt::Display for DiskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskId::Serial(s) => write!(f, "serial:{s}"),
            DiskId::Wwn(w) => write!(f, "wwn:{w}"),
        }
    }
}

impl FromStr for DiskId {
    type Err = String;
    fn from_str(item: &str) -> Result<DiskId, String> {
        match item.split_once(':') {
            Some(("serial", s)) if !s.is_empty() => Ok(DiskId::Serial(s.to_string())),
            Some(("wwn", s)) if !s.is_empty() => Ok(DiskId::Wwn(s.to_ascii_lowercase())),
            _ => Err("expected serial:<serial> or wwn:<wwn>".to_string()),
        }
    }
}

/// A block device named the ways dracut and fstab name them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", content = "value", rename_all = "lowercase")]
pub enum DevSpec {
    Label(String),
    Uuid(String),
    PartUuid(String),
    PartLabel(String),
    Path(String),
}

impl FromStr for DevSpec {
    type Err = String;
    fn from_str(value: &str) -> Result<DevSpec, String> {
        let bad = |why: &str| why.to_string();
        let (kind, rest) = match value.split_once('=') {
            Some((k, r)) => (Some(k), r),
            None => (None, value),
        };
        let spec = match kind.map(str::to_ascii_uppercase).as_deref() {
            Some("LABEL" | "CDLABEL") => DevSpec::Label(rest.to_string()),
            Some("UUID") => DevSpec::Uuid(rest.to_string()),
            Some("PARTUUID") => DevSpec::PartUuid(rest.to_string()),
            Some("PARTLABEL") => DevSpec::PartLabel(rest.to_string()),
            Some(_) => {
                return Err(bad(
                    "expected LABEL=, CDLABEL=, UUID=, PARTUUID=, PARTLABEL= or a /dev path",
                ))
            }
            None if value.starts_with("/dev/") && value.len() > 5 => {
                DevSpec::Path(value.to_string())
            }
            None => {
                return Err(bad(
                    "expected LABEL=, CDLABEL=, UUID=, PARTUUID=, PARTLABEL= or a /dev path",
                ))
            }
        };
        let inner = spec.inner();
        if inner.is_empty() || inner.contains('/') && !matches!(spec, DevSpec::Path(_)) {
            return Err(bad("the device name is empty or holds a '/'"));
        }
        if inner.chars().any(|c| c.is_control()) {
            return Err(bad("the device name holds a control character"));
        }
        Ok(spec)
    }
}

impl DevSpec {
    fn inner(&self) -> &str {
        match self {
            DevSpec::Label(s)
            | DevSpec::Uuid(s)
            | DevSpec::PartUuid(s)
            | DevSpec::PartLabel(s)
            | DevSpec::Path(s) => s,
        }
    }

    pub fn label(&self) -> Option<&str> {
        match self {
            DevSpec::Label(l) => Some(l),
            _ => None,
        }
    }
}

impl fmt::Display for DevSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DevSpec::Label(s) => write!(f, "LABEL={s}"),
            DevSpec::Uuid(s) => write!(f, "UUID={s}"),
            DevSpec::PartUuid(s) => write!(f, "PARTUUID={s}"),
            DevSpec::PartLabel(s) => write!(f, "PARTLABEL={s}"),
            DevSpec::Path(s) => f.write_str(s),
        }
    }
}

/// A size for zram: `N[KMGT]` in bytes (binary units) or `N%` of RAM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    Bytes(u64),
    PercentOfRam(u8),
}

impl FromStr for Size {
    type Err = String;
    fn from_str(v: &str) -> Result<Size, String> {
        let bad = || "expected a size like 4G, 512M or 50%".to_string();
        if let Some(p) = v.strip_suffix('%') {
            let n: u8 = p.parse().map_err(|_| bad())?;
            return if (1..=100).contains(&n) {
                Ok(Size::PercentOfRam(n))
            } else {
                Err("a percentage must be 1 to 100".to_string())
            };
        }
        let (digits, mult) = match v.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => {
                let m: u64 = match c.to_ascii_uppercase() {
                    'K' => 1 << 10,
                    'M' => 1 << 20,
                    'G' => 1 << 30,
                    'T' => 1 << 40,
                    _ => return Err(bad()),
                };
                (&v[..i], m)
            }
            _ => (v, 1),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        match n.checked_mul(mult) {
            Some(b) if b > 0 => Ok(Size::Bytes(b)),
            _ => Err(bad()),
        }
    }
}

/// The form `zramctl --size` and the step binaries take.
impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Bytes(b) => write!(f, "{b}"),
            Size::PercentOfRam(p) => write!(f, "{p}%"),
        }
    }
}

/// An image source as the fetch step takes it: an http(s) URL, or
/// metalroot's `file://<dir>?LABEL=<label>`, a directory on a labelled
/// device (`<dir>` starts right after `//`: there is no host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    Url(String),
    Labelled { dir: String, label: String },
}

impl FromStr for ImageSource {
    type Err = String;
    fn from_str(s: &str) -> Result<ImageSource, String> {
        let Some(rest) = s.strip_prefix("file://") else {
            return Ok(ImageSource::Url(s.to_string()));
        };
        match rest.split_once("?LABEL=") {
            Some((dir, label)) if !label.is_empty() => Ok(ImageSource::Labelled {
                dir: dir.trim_matches('/').to_string(),
                label: label.to_string(),
            }),
            _ => Err("a file:// source needs ?LABEL=<label>".to_string()),
        }
    }
}

impl fmt::Display for ImageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageSource::Url(u) => f.write_str(u),
            ImageSource::Labelled { dir, label } => write!(f, "file://{dir}?LABEL={label}"),
        }
    }
}

/// `metal.verify=`: what the fetch checks the image against. Unset, the
/// fetch decides: `signature` when a trusted key is installed or named,
/// else `sha256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Verify {
    /// A minisign signature by a trusted key (`<image>.minisig`).
    Signature,
    /// metal.sha256, or the server's `<image>.sha256` (corruption, not
    /// tampering).
    Sha256,
    /// Nothing: the image is booted as it comes.
    None,
}

impl fmt::Display for Verify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verify::Signature => "signature",
            Verify::Sha256 => "sha256",
            Verify::None => "none",
        })
    }
}

// Defaults the parameters and the steps' arguments share.
pub const DEFAULT_LIVE_DIR: &str = "LiveOS";
pub const DEFAULT_SQUASHIMG: &str = "squashfs.img";
pub const DEFAULT_FETCH_TIMEOUT: u64 = 1800;
pub const DEFAULT_OVERLAY_SIZE_MIB: u64 = 32768;
pub const DEFAULT_ZRAM_SIZE: Size = Size::PercentOfRam(50);
pub const DEFAULT_ZRAM_COMP: &str = "zstd";
pub const DEFAULT_ZRAM_FS: ZramFs = ZramFs::Xfs;

// Paths the plan writes into argv and the steps use, as dracut names them.
/// Where the live medium is mounted, as dracut's dmsquash-live does.
pub const LIVE_MNT: &str = "/run/initramfs/live";
/// Where an image fetched to RAM is kept, as dracut's `rd.live.ram` does.
pub const RAM_IMAGE: &str = "/run/initramfs/squashed.img";
/// Where secrets moved off the command line live (tmpfs, 0700 dir, 0600 files).
pub const SECRETS_DIR: &str = "/run/metalroot/secrets";
/// The plan as `metalroot plan` prints it, for `metalroot status`.
pub const PLAN_FILE: &str = "/run/metalroot/plan.txt";
/// Trusted minisign public keys (`*.pub`), installed into the initrd.
pub const KEYS_DIR: &str = "/etc/metalroot/keys";
/// This boot's image: where it came from, its hash, who signed it, where it
/// was measured. In /run, so the real root keeps it after switch-root.
pub const IMAGE_RECORD: &str = "/run/metalroot/image.json";
/// The PCR the image is measured into unless metal.tpm-pcr says otherwise:
/// systemd's registry gives 15 to the root file system's identity
/// (systemd-pcrfs), which the image's hash is.
pub const DEFAULT_TPM_PCR: u64 = 15;
/// systemd's userspace TPM event log (systemd ≥ 255 writes its own
/// measurements there): TCG's Canonical Event Log in JSON, one record per
/// JSON-SEQ entry.
pub const EVENT_LOG: &str = "/run/log/systemd/tpm2-measure.log";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip() {
        for s in ["4G", "50%", "1", "512M"] {
            let v: Size = s.parse().unwrap();
            assert_eq!(v.to_string().parse::<Size>().unwrap(), v);
        }
        assert!("0".parse::<Size>().is_err());
        assert!("101%".parse::<Size>().is_err());
    }

    #[test]
    fn image_sources_round_trip() {
        for s in [
            "http://pit/x?a=b",
            "file://ephemeral/data?LABEL=PIT+DATA",
            "file://?LABEL=X",
        ] {
            assert_eq!(s.parse::<ImageSource>().unwrap().to_string(), s);
        }
        assert!("file://x".parse::<ImageSource>().is_err());
    }

    #[test]
    fn disk_ids_round_trip() {
        for s in ["serial:S1", "wwn:0x5002"] {
            assert_eq!(s.parse::<DiskId>().unwrap().to_string(), s);
        }
        assert!("serial:".parse::<DiskId>().is_err());
    }
}
